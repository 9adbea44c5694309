// pages/journey.js: `/events/{id}`, one event's journey across services and traces: every hop
// in time order, the wait between publish and consume, retries, hops joined by a span link, and
// the traces the journey crosses.

import { h, api, seg, render, loading, timeEl, duration, link, ready } from "/ui/lib.js";
import { waterfall, spanDetails, linkItem } from "/ui/waterfall.js";

export async function journeyPage({ main, name, params, current }) {
  render(main, loading(`the journey of event ${name}`));
  const journey = await api(`/api/v1/events/${seg(name)}`);
  if (!current()) return;
  const hops = journey.hops;
  const first = hops[0];
  const last = hops[hops.length - 1];
  const span = last.start_time_unix_nano + last.duration_ns - first.start_time_unix_nano;
  const consumers = hops.filter((hop) => hop.action === "consumed");
  const failed = hops.filter((hop) => hop.status === "error").length;

  // Across traces, each hop says which one it is in.
  const traceNote = (hop) => journey.traces.length > 1 ? `trace ${journey.traces.indexOf(hop.trace_id) + 1}` : null;
  const rows = hops.map((hop) => ({
    span: hop, depth: 0, lagNanos: hop.lag_ns, attempt: hop.attempt, joinedBy: hop.joined_by,
    note: traceNote(hop),
  }));
  const details = (hop) => spanDetails(hop, hopExtras(hop));
  const timeline = waterfall(rows, { details, selected: params.get("span") });

  render(main,
    h("header", { class: "page-head" },
      h("p", { class: "kind" }, "Event"),
      h("h1", { class: "mono" }, journey.event_id),
      h("p", {}, journey.event_types.map((type) => link.eventType(type)), " · ",
        `${hops.length} hops in ${journey.traces.length} trace${journey.traces.length === 1 ? "" : "s"} · `,
        `${consumers.length} consumes · ${duration(span)} end to end`,
        failed ? h("span", { class: "badge error" }, `${failed} failed`) : null),
      h("p", {}, "From ", timeEl(first.start_time), " to ", timeEl(last.start_time))),
    journey.unreadable_blocks.length
      ? h("p", { class: "warning", role: "note" },
        `${journey.unreadable_blocks.length} block(s) could not be read; hops from them may be missing.`)
      : null,
    h("section", { "aria-label": "Journey" }, timeline.element),
    h("section", { "aria-labelledby": "traces-heading" },
      h("h2", { id: "traces-heading" }, "Traces it crossed"),
      h("ol", {}, journey.traces.map((trace) => h("li", {}, link.trace(trace),
        ` ${hops.filter((hop) => hop.trace_id === trace).length} hops`)))));
  ready(main, "journey");
}

/** A hop's own sections: the span a link joins it with, and its archived message. */
function hopExtras(hop) {
  const extras = [];
  if (hop.joined_by === "link" && hop.linked_span) {
    extras.push(h("h4", {}, "Joined by a link with"),
      h("ul", { class: "links" }, linkItem(hop.linked_span.trace_id, hop.linked_span.span_id)));
  }
  if (hop.lag_ns !== undefined) {
    extras.push(h("p", {}, `Waited ${duration(hop.lag_ns)} between the publish and this consume.`));
  }
  if (hop.archive) {
    const archive = hop.archive;
    const target = archive.message || archive.event;
    extras.push(h("h4", {}, "Archived message"),
      archive.archived === false ? h("p", { class: "empty" }, "The archive does not hold this message.") : null,
      archive.broker_timestamp ? h("p", {}, "Broker time ", timeEl(archive.broker_timestamp),
        archive.broker_ms && archive.broker_ms.before_consume_ms !== undefined
          ? ` · ${archive.broker_ms.before_consume_ms.toFixed(1)} ms in the broker before the consume` : "") : null,
      target ? h("p", {}, h("a", { href: target, target: "_blank", rel: "noopener" }, "open the archived message (JSON)")) : null);
  }
  return extras;
}
