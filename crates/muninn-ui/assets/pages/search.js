// pages/search.js: `/search`, finding traces by service, operation, tags, duration and time
// range with the Jaeger API's semantics (`/api/traces`), as a list and a duration scatter plot.

import { h, svg, api, seg, withQuery, render, loading, empty, duration, timeEl, ready } from "/ui/lib.js";

const FIELDS = ["service", "operation", "tags", "minDuration", "maxDuration", "lookback", "limit"];
const LOOKBACKS = [["15m", "last 15 minutes"], ["1h", "last hour"], ["6h", "last 6 hours"], ["1d", "last day"], ["7d", "last 7 days"]];

export async function searchPage({ main, params, current, navigate }) {
  render(main, loading("services"));
  const asked = Object.fromEntries(FIELDS.map((name) => [name, params.get(name) || ""]));
  const service = asked.service || "";
  // The three requests go out at once: the traces do not wait for the form's lists.
  const found = service
    ? api(withQuery("/api/traces", { ...asked, lookback: asked.lookback || "1h", limit: asked.limit || 20 }))
      .then((answer) => ({ answer }), (error) => ({ error }))
    : null;
  const operationsAsked = service
    ? api(`/api/services/${seg(service)}/operations`).catch(() => ({ data: [] })) : null;
  const services = (await api("/api/services")).data || [];
  if (!current()) return;
  const operations = operationsAsked ? ((await operationsAsked).data || []) : [];
  if (!current()) return;

  const field = (name, label, input) => h("label", {}, label, input);
  const form = h("form", { class: "filters", "aria-label": "Find traces",
    onsubmit: (event) => {
      event.preventDefault();
      const next = {};
      for (const [name, value] of new FormData(event.target).entries()) if (value) next[name] = value;
      navigate(withQuery("/search", next));
    } },
  field("service", "service", h("select", { name: "service", required: true,
    onchange: (event) => navigate(withQuery("/search", { ...asked, service: event.target.value, operation: "" })) },
    h("option", { value: "" }, "choose a service"),
    services.map((name) => h("option", { value: name, selected: name === service }, name)))),
  field("operation", "operation", h("select", { name: "operation" },
    h("option", { value: "" }, "all"),
    operations.map((name) => h("option", { value: name, selected: name === asked.operation }, name)))),
  field("tags", "tags", h("input", { name: "tags", value: asked.tags, placeholder: '{"error":"true"}', spellcheck: "false" })),
  field("minDuration", "min duration", h("input", { name: "minDuration", value: asked.minDuration, placeholder: "e.g. 1.2s, 100ms", size: 8 })),
  field("maxDuration", "max duration", h("input", { name: "maxDuration", value: asked.maxDuration, placeholder: "e.g. 2s", size: 8 })),
  field("lookback", "time range", h("select", { name: "lookback" },
    LOOKBACKS.map(([value, text]) => h("option", { value, selected: value === (asked.lookback || "1h") }, text)))),
  field("limit", "limit", h("input", { name: "limit", type: "number", min: 1, max: 1500, value: asked.limit || 20, size: 5 })),
  h("button", { type: "submit" }, "Find traces"));

  const header = h("header", { class: "page-head" }, h("h1", {}, "Traces"));
  if (!service) {
    render(main, header, form, empty(services.length ? "Choose a service to find its traces." : "No service has sent spans yet."));
    ready(main, "search");
    return;
  }
  render(main, header, form, loading("traces"));
  const { answer, error } = await found;
  if (error) {
    if (!current()) return;
    // The API names the parameter it refused: show it next to that field.
    render(main, header, form, h("p", { class: "error", role: "alert" }, error.message));
    markField(form, error.message);
    ready(main, "search");
    return;
  }
  if (!current()) return;
  const traces = (answer.data || []).map(summary).sort((a, b) => b.start - a.start);
  render(main, header, form,
    traces.length === 0 ? empty("No traces match in this time range.") : [
      scatter(traces),
      h("p", {}, `${traces.length} traces, most recent first`),
      h("ol", { class: "results" }, traces.map((trace) => h("li", {},
        h("a", { href: `/traces/${seg(trace.id)}` }, h("strong", {}, `${trace.rootService}: ${trace.rootName}`)),
        h("span", { class: "mono" }, ` ${trace.id.slice(0, 12)}… `),
        ` ${trace.nSpans} spans · ${trace.services.size} services · ${duration(trace.durationNanos)} · `,
        trace.errors ? h("span", { class: "badge error" }, `${trace.errors} error${trace.errors === 1 ? "" : "s"}`) : null, " ",
        timeEl(new Date(trace.start / 1000).toISOString())))),
    ]);
  ready(main, "search");
}

/** A Jaeger trace as one result row. */
function summary(trace) {
  const spans = trace.spans || [];
  const processes = trace.processes || {};
  const starts = spans.map((span) => span.startTime);
  const ends = spans.map((span) => span.startTime + span.duration);
  const ids = new Set(spans.map((span) => span.spanID));
  const root = spans.find((span) => !(span.references || []).some((ref) => ref.refType === "CHILD_OF" && ids.has(ref.spanID)))
    || spans[0] || {};
  const service = (span) => (processes[span.processID] || {}).serviceName || "?";
  return {
    id: trace.traceID,
    start: Math.min(...starts),
    durationNanos: (Math.max(...ends) - Math.min(...starts)) * 1000,
    nSpans: spans.length,
    services: new Set(spans.map(service)),
    rootService: root.processID ? service(root) : "?",
    rootName: root.operationName || "?",
    errors: spans.filter((span) => (span.tags || []).some((tag) => tag.key === "error" && String(tag.value) === "true")).length,
  };
}

/** Durations over time, one dot per trace (a link to it). */
function scatter(traces) {
  const width = 800;
  const height = 180;
  const pad = 36;
  const t0 = Math.min(...traces.map((t) => t.start));
  const t1 = Math.max(...traces.map((t) => t.start));
  const maxDuration = Math.max(1, ...traces.map((t) => t.durationNanos));
  const x = (start) => pad + ((width - 2 * pad) * (start - t0)) / Math.max(1, t1 - t0);
  const y = (nanos) => height - pad / 2 - ((height - pad) * nanos) / maxDuration;
  return h("figure", { class: "scatter" },
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Trace durations over time" },
      svg("line", { x1: pad, y1: height - pad / 2, x2: width - pad / 2, y2: height - pad / 2, class: "axis-line" }),
      svg("text", { x: 2, y: 12, class: "axis-text" }, duration(maxDuration)),
      svg("text", { x: 2, y: height - pad / 2, class: "axis-text" }, "0"),
      traces.map((trace) => svg("a", { href: `/traces/${seg(trace.id)}` },
        svg("circle", { cx: x(trace.start).toFixed(1), cy: y(trace.durationNanos).toFixed(1), r: 4,
          class: trace.errors ? "dot error" : "dot" },
        svg("title", {}, `${trace.rootService}: ${trace.rootName}, ${duration(trace.durationNanos)}`))))),
    h("figcaption", {}, "Duration by start time; red: traces with errors."));
}

function markField(form, message) {
  const named = FIELDS.find((name) => message.includes(name));
  const input = named && form.querySelector(`[name="${named}"]`);
  if (!input) return;
  input.setAttribute("aria-invalid", "true");
  input.closest("label").append(h("span", { class: "field-error" }, message));
  input.focus();
}
