// pages/trace.js: `/traces/{id}`, one trace as a waterfall of its span tree, with the traces it
// continued from and in: span links are followed both ways (a producer's consumers in other
// traces, a consumer's publish), and a linked span opens in place.

import { h, api, seg, render, loading, timeEl, duration, link, ready, empty } from "/ui/lib.js";
import { waterfall, spanDetails, linkItem } from "/ui/waterfall.js";

/** Most spans drawn at once; a larger trace shows its first ones and says so. */
const MAX_ROWS = 2000;

export async function tracePage({ main, name, params, current }) {
  render(main, loading(`trace ${name}`));
  const trace = await api(`/api/v1/traces/${seg(name)}`);
  if (!current()) return;
  const rows = [];
  // A consumer under its publish waited from the publish's start: drawn as a gap.
  const walk = (nodes, depth, parent) => {
    for (const node of nodes) {
      if (rows.length >= MAX_ROWS) return;
      const lagNanos = node.kind === "consumer" && parent && parent.kind === "producer"
        ? node.start_time_unix_nano - parent.start_time_unix_nano : undefined;
      rows.push({ span: node, depth, lagNanos });
      walk(node.children || [], depth + 1, node);
    }
  };
  walk(trace.roots, 0, null);
  const starts = rows.map((row) => row.span.start_time_unix_nano);
  const ends = rows.map((row) => row.span.start_time_unix_nano + row.span.duration_ns);
  const errors = rows.filter((row) => row.span.status === "error").length;
  const details = (span) => spanDetails(span, spanExtras(span, trace));
  const timeline = waterfall(rows, { details, selected: params.get("span") });

  render(main,
    h("header", { class: "page-head" },
      h("p", { class: "kind" }, "Trace"),
      h("h1", { class: "mono" }, trace.trace_id),
      h("p", {}, `${trace.n_spans} spans · ${trace.services.length} services · `,
        `${duration(Math.max(...ends) - Math.min(...starts))} · started `,
        timeEl(new Date(Math.min(...starts) / 1e6).toISOString()),
        errors ? h("span", { class: "badge error" }, `${errors} error${errors === 1 ? "" : "s"}`) : null),
      h("p", {}, trace.services.map((service) => link.service(service))),
      h("p", {}, h("a", { href: `/api/v1/traces/${seg(trace.trace_id)}`, download: `trace-${trace.trace_id}.json` }, "download JSON"))),
    rows.length < trace.n_spans
      ? h("p", { class: "warning", role: "note" }, `Showing the first ${rows.length} of ${trace.n_spans} spans.`) : null,
    trace.unreadable_blocks.length
      ? h("p", { class: "warning", role: "note" },
        `${trace.unreadable_blocks.length} block(s) could not be read; spans from them may be missing.`) : null,
    h("section", { "aria-label": "Spans" }, timeline.element),
    continuations("Continued from", "Traces its events came from", trace.continued_from),
    continuations("Continued in", "Traces its events went on in", trace.continued_in));
  ready(main, "trace");
}

function continuations(title, description, list) {
  const id = title.toLowerCase().replace(/ /g, "-");
  return h("section", { "aria-labelledby": id },
    h("h2", { id }, title),
    list.length === 0 ? empty(`${description}: none stored.`) :
      h("ul", { class: "plain" }, list.map((other) => h("li", {},
        link.trace(other.trace_id), other.root_service ? ` (${other.root_service})` : "",
        other.event_ids.length ? [" · events ", other.event_ids.slice(0, 5).map((id) => [link.event(id), " "]),
          other.event_ids.length > 5 ? `and ${other.event_ids.length - 5} more` : ""] : "",
        other.links.length ? ` · ${other.links.length} span link${other.links.length === 1 ? "" : "s"}` : ""))));
}

/** For one span: the spans in other traces that link to it (the other direction of its own
 * links), and, for an event span, the other traces that carry its event. */
function spanExtras(span, trace) {
  const extras = [];
  const linkedFrom = [...trace.continued_in, ...trace.continued_from]
    .flatMap((other) => other.links)
    .filter((edge) => edge.linked_trace_id === span.trace_id && edge.linked_span_id === span.span_id);
  if (linkedFrom.length) {
    extras.push(h("h4", {}, "Linked from"),
      h("ul", { class: "links" }, linkedFrom.map((edge) => linkItem(edge.trace_id, edge.span_id))));
  }
  if (span.event_id) {
    const elsewhere = [...trace.continued_in.map((other) => ["continued in", other]),
      ...trace.continued_from.map((other) => ["came from", other])]
      .filter(([, other]) => other.event_ids.includes(span.event_id));
    if (elsewhere.length) {
      extras.push(h("h4", {}, "This event in other traces"),
        h("ul", { class: "plain" }, elsewhere.map(([how, other]) => h("li", {}, `${how} `, link.trace(other.trace_id),
          other.root_service ? ` (${other.root_service})` : ""))));
    }
    extras.push(h("p", {}, h("a", { href: `/events/${seg(span.event_id)}` }, "the whole journey of this event")));
  }
  return extras;
}
