// pages/journey.js: `/events/{id}`, one event's journey across services and traces: every hop
// in time order, the wait between publish and consume, retries, hops joined by a span link, and
// the traces the journey crosses.

import { h, api, seg, render, loading, timeEl, duration, count, link, ready } from "/ui/lib.js";
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
  // A journey can be huge (a fan-out to thousands of consumers): draw the first hops and say so.
  const MAX_ROWS = 2000;
  const rows = hops.slice(0, MAX_ROWS).map((hop) => ({
    span: hop, depth: 0, lagNanos: hop.lag_ns, attempt: hop.attempt, joinedBy: hop.joined_by,
    note: traceNote(hop),
    // Where the archive knows it: when the broker stamped the message (drawn on the row).
    brokerNanos: hop.archive && hop.archive.broker_timestamp
      ? Date.parse(hop.archive.broker_timestamp) * 1e6 : undefined,
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
    hops.length > MAX_ROWS
      ? h("p", { class: "warning", role: "note" }, `Showing the first ${MAX_ROWS} of ${hops.length} hops.`) : null,
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
    const slot = h("div", { class: "archived" });
    const ms = archive.broker_ms || {};
    extras.push(h("h4", {}, "Archived message"),
      archive.archived === false ? h("p", { class: "empty" }, "The archive does not hold this message.") : null,
      archive.broker_timestamp ? h("p", {}, "Broker time ", timeEl(archive.broker_timestamp),
        ms.after_publish_ms !== undefined ? ` · ${ms.after_publish_ms.toFixed(1)} ms after the publish ended` : "",
        ms.before_consume_ms !== undefined ? ` · ${ms.before_consume_ms.toFixed(1)} ms in the broker before the consume` : "") : null,
      target && archive.archived !== false ? h("button", { type: "button", class: "small show-archived", onclick: async (event) => {
        event.target.disabled = true;
        slot.replaceChildren(h("p", { class: "loading" }, "Reading the archive…"));
        try {
          const answer = await api(target);
          const messages = answer.messages || [answer];
          slot.replaceChildren(...(messages.length ? messages.map(archivedMessage)
            : [h("p", { class: "empty" }, "No archived message carries this event id.")]));
          slot.scrollIntoView({ block: "start" });
        } catch (error) {
          slot.replaceChildren(h("p", { class: "error" }, `The archive: ${error.message}`));
          event.target.disabled = false;
        }
      } }, archive.message ? "show the archived message" : "show the event's archived messages") : null,
      slot,
      replayCommands(hop));
  }
  return extras;
}

/** One archived message: where it is, its key and headers in the broker's order, its payload. */
function archivedMessage(message) {
  const bytes = (text, base64) => (text !== undefined && text !== null ? text : base64 ? `base64 ${base64}` : "null");
  const payload = message.payload;
  const body = payload.kind === "json" || payload.kind === "text" ? payload.text
    : payload.kind === "binary" ? `hex ${payload.hex}` : "(no payload)";
  return h("div", { class: "message" },
    h("p", { class: "mono" }, `${message.broker} ${message.stream}${message.subject ? ` (${message.subject})` : ""} `,
      `partition ${message.partition} offset ${message.offset}`),
    h("dl", { class: "fields" },
      h("dt", {}, "broker time"), h("dd", {}, timeEl(message.timestamp), ` (${message.timestamp_type.replace(/_/g, " ")})`),
      h("dt", {}, "key"), h("dd", { class: "mono" }, bytes(message.key, message.key_base64))),
    h("h5", {}, `Headers (${message.headers.length})`),
    message.headers.length ? h("dl", { class: "attributes" }, message.headers.flatMap((header) =>
      [h("dt", {}, header.name), h("dd", { class: "mono" }, bytes(header.value, header.value_base64))])) : null,
    h("h5", {}, `Payload (${count(payload.size)} bytes${payload.truncated ? ", shown in part" : ""})`),
    h("pre", { class: "payload" }, body),
    h("a", { href: message.download, download: "" }, "download the exact bytes"));
}

/** How to replay the message or the journey: the CLI's commands (a button needs the
 * authenticated admin role, which the API does not have yet). */
function replayCommands(hop) {
  const commands = [];
  if (hop.stream && hop.event_id) {
    commands.push(`muninn replay --stream ${hop.stream}${hop.partition !== undefined ? ` --partition ${hop.partition}` : ""} ` +
      `--filter event_id=${hop.event_id} --to kafka://BROKER/TOPIC --dry-run`);
  }
  if (hop.event_id) commands.push(`muninn replay --journey ${hop.event_id} --to kafka://BROKER/TOPIC --dry-run`);
  if (commands.length === 0) return null;
  return [h("h5", {}, "Replay (the message, then the whole journey)"),
    commands.map((command) => h("pre", { class: "command" }, command))];
}
