// waterfall.js: the timeline that journeys and traces share. One row per span: who, what, and a
// bar for its processing time; a consumer's wait since the publish is drawn as a gap before its
// bar; errors and retries are marked. Selecting a row opens its details beside the timeline
// (and puts `?span=` in the URL, so every span has a link); linked spans open in place.

import { h, api, seg, timeEl, duration, attributes, link } from "/ui/lib.js";

/**
 * rows: [{span, depth, lagNanos?, attempt?, joinedBy?, note?, brokerNanos?}] in display order.
 * Returns {element, select(spanId)}.
 * onSelect(span) is called when a row is chosen; details(span) builds the side panel.
 */
export function waterfall(rows, { details, selected }) {
  const starts = rows.map((row) => row.span.start_time_unix_nano - Math.max(0, row.lagNanos || 0));
  const ends = rows.map((row) => row.span.start_time_unix_nano + row.span.duration_ns);
  const t0 = Math.min(...starts);
  const total = Math.max(1, Math.max(...ends) - t0);
  const pct = (nanos) => `${((100 * nanos) / total).toFixed(3)}%`;

  const panel = h("aside", { class: "details", "aria-label": "Span details" },
    h("p", { class: "empty" }, "Choose a row to see the span's attributes, resource and links."));
  const list = h("ol", { class: "waterfall", "aria-label": "Spans in time order" });
  const axis = h("div", { class: "axis", "aria-hidden": "true" },
    [0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { style: `left:${f * 100}%` }, duration(Math.round(f * total)))));
  const byId = new Map();

  rows.forEach((row) => {
    const span = row.span;
    const start = span.start_time_unix_nano - t0;
    const lag = row.lagNanos && row.lagNanos > 0 ? row.lagNanos : 0;
    const failed = span.status === "error";
    const what = [span.action || span.kind, span.stream || span.name].filter(Boolean).join(" · ");
    const badges = [
      failed ? h("span", { class: "badge error", title: span.status_message || "error" }, "error") : null,
      row.attempt > 1 ? h("span", { class: "badge retry" }, `retry ${row.attempt - 1}`) : null,
      row.joinedBy === "link" ? h("span", { class: "badge link", title: "joined by a span link, not by the event id" }, "by link") : null,
      span.modified ? h("span", { class: "badge modified", title: "this consumer changed the payload" }, "modified") : null,
      row.note ? h("span", { class: "badge" }, row.note) : null,
    ];
    const bar = h("div", { class: "track" },
      lag ? h("span", { class: "lag", style: `left:${pct(start - lag)};width:${pct(lag)}`,
        title: `waited ${duration(lag)} since the publish` }) : null,
      h("span", {
        class: `bar ${span.kind}${failed ? " failed" : ""}`,
        style: `left:${pct(start)};width:max(2px,${pct(span.duration_ns)})`,
        title: `${duration(span.duration_ns)} processing`,
      }),
      row.brokerNanos !== undefined && row.brokerNanos >= t0 && row.brokerNanos <= t0 + total
        ? h("span", { class: "broker-mark", style: `left:${pct(row.brokerNanos - t0)}`,
          title: "the broker's timestamp of the message" }) : null,
      h("span", { class: "bar-label", style: `left:${pct(start)}` },
        lag ? `${duration(lag)} lag · ${duration(span.duration_ns)}` : duration(span.duration_ns)));
    const button = h("button", {
      type: "button", class: "row", id: `span-${span.span_id}`,
      "aria-pressed": "false",
      dataset: { spanId: span.span_id },
      onclick: () => choose(span.span_id, true),
    },
      h("span", { class: "who", style: `padding-left:${(row.depth || 0) * 0.9}rem` },
        h("strong", {}, span.service), h("span", { class: "what" }, what), badges),
      bar);
    list.append(h("li", {}, button));
    byId.set(span.span_id, { span, button });
  });

  function choose(spanId, fromClick) {
    const chosen = byId.get(spanId);
    if (!chosen) return false;
    for (const { button } of byId.values()) button.setAttribute("aria-pressed", "false");
    chosen.button.setAttribute("aria-pressed", "true");
    panel.replaceChildren(...details(chosen.span));
    if (fromClick) {
      const url = new URL(window.location.href);
      url.searchParams.set("span", spanId);
      history.replaceState(null, "", url.pathname + url.search);
    } else {
      chosen.button.scrollIntoView({ block: "nearest" });
    }
    return true;
  }

  const element = h("div", { class: "timeline" },
    h("div", { class: "waterfall-wrap" }, axis, list), panel);
  if (selected) choose(selected, false);
  return { element, select: (spanId) => choose(spanId, false) };
}

/** The side panel's sections for one span; `extra` are page-specific sections. */
export function spanDetails(span, extra = []) {
  const fields = [
    ["service", span.service], ["name", span.name], ["kind", span.kind],
    ["action", span.action], ["status", span.status + (span.status_message ? `: ${span.status_message}` : "")],
    ["duration", duration(span.duration_ns)],
  ];
  const eventFields = [
    ["event id", span.event_id && link.event(span.event_id)],
    ["event type", span.event_type && link.eventType(span.event_type)],
    ["schema", span.schema], ["stream", span.stream && link.stream(span.stream)],
    ["broker", span.broker], ["partition", span.partition], ["offset", span.offset],
    ["message id", span.message_id], ["modified", span.event_id ? String(span.modified) : undefined],
  ].filter(([, value]) => value !== undefined && value !== null);
  const permalink = `/traces/${seg(span.trace_id)}?span=${seg(span.span_id)}`;
  return [
    h("h3", {}, `${span.service}: ${span.name}`),
    h("p", {}, timeEl(span.start_time), " · ",
      h("a", { href: permalink, class: "permalink" }, "link to this span")),
    h("dl", { class: "fields" }, fields.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value ?? "—")]),
      h("dt", {}, "trace"), h("dd", {}, link.trace(span.trace_id)),
      h("dt", {}, "span"), h("dd", { class: "mono" }, span.span_id),
      span.parent_span_id ? [h("dt", {}, "parent"), h("dd", { class: "mono" }, span.parent_span_id)] : null),
    eventFields.length ? [h("h4", {}, "Event"), h("dl", { class: "fields" },
      eventFields.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]))] : null,
    span.links && span.links.length ? [h("h4", {}, "Links to"),
      h("ul", { class: "links" }, span.links.map((target) => linkItem(target.trace_id, target.span_id)))] : null,
    extra,
    h("h4", {}, "Attributes"), attributes(span.attributes),
    h("h4", {}, "Resource"), attributes(span.resource),
  ].flat(Infinity).filter(Boolean);
}

/** A linked span: a link to its trace, and a button that opens it here, below, keeping the
 * span we came from on screen. */
export function linkItem(traceId, spanId, note) {
  const slot = h("div", { class: "linked-slot" });
  const open = h("button", { type: "button", class: "small", "aria-expanded": "false",
    onclick: async () => {
      if (open.getAttribute("aria-expanded") === "true") {
        slot.replaceChildren();
        open.setAttribute("aria-expanded", "false");
        open.textContent = "open here";
        return;
      }
      open.setAttribute("aria-expanded", "true");
      open.textContent = "close";
      slot.replaceChildren(h("p", { class: "loading" }, "Loading the linked span…"));
      try {
        const trace = await api(`/api/v1/traces/${seg(traceId)}`);
        const span = findSpan(trace.roots, spanId);
        slot.replaceChildren(span
          ? h("div", { class: "linked-span" }, spanDetails(span).slice(0, 4))
          : h("p", { class: "empty" }, `Span ${spanId} is not stored in trace ${traceId}.`));
      } catch (error) {
        slot.replaceChildren(h("p", { class: "error" }, `Trace ${traceId}: ${error.message}`));
      }
    } }, "open here");
  return h("li", {}, note ? `${note} ` : null, link.trace(traceId, spanId),
    h("span", { class: "mono" }, ` span ${spanId} `), open, slot);
}

/** The span `spanId` in a trace's tree. */
export function findSpan(nodes, spanId) {
  const stack = [...nodes];
  while (stack.length) {
    const node = stack.pop();
    if (node.span_id === spanId) return node;
    stack.push(...(node.children || []));
  }
  return null;
}
