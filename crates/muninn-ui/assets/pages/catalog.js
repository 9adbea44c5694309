// pages/catalog.js: the event type, service and stream pages: who produces and consumes
// (modifying or read-only), on which streams, the schemas each producer sent, first and last
// seen, and a throughput chart from the counts (exact at any sampling rate) per service.

import { h, api, seg, withQuery, render, loading, empty, link, count, table, timeEl, ready, rangePicker } from "/ui/lib.js";

/** The step of the chart for each range: at most a few hundred points. */
const STEPS = { "15m": 60, "1h": 60, "6h": 300, "24h": 900, "7d": 3600 };
const COLOURS = ["#3b6ea8", "#c0504d", "#3f8a4a", "#8064a2", "#d98a00", "#2c9fa3", "#a0527e", "#6b7c8f"];

export async function eventTypePage({ main, name, params, current, navigate }) {
  render(main, loading(`event type ${name}`));
  const range = STEPS[params.get("range")] ? params.get("range") : "1h";
  // The schemas route refuses a type nothing retained names (400 on event_type).
  const unknownType = (error) => {
    if (error.status === 400 && error.field === "event_type") return null;
    throw error;
  };
  const [producers, consumers, schemas, throughput] = await Promise.all([
    api(`/api/v1/event-types/${seg(name)}/producers`),
    api(`/api/v1/event-types/${seg(name)}/consumers`),
    api(`/api/v1/event-types/${seg(name)}/schemas`).catch(unknownType),
    api(withQuery("/api/v1/throughput", { event_type: name, from: `-${range}`, step: `${STEPS[range]}s` })),
  ]);
  if (!current()) return;
  if (!schemas) {
    render(main, head("Event type", name), h("div", { class: "error", role: "alert" },
      h("h2", {}, "Not found"), h("p", {}, `No producer or consumer of an event type “${name}” is retained.`)));
    ready(main, "event-type");
    return;
  }
  const participants = (rows, consuming) => table([
    ["service", (row) => link.service(row.service)],
    ["stream", (row) => [link.stream(row.stream), ` ${row.broker}`]],
    ...(consuming ? [["handling", (row) => row.modifies
      ? h("span", { class: "badge modified" }, "modifies") : "reads only"]] : []),
    ["events", (row) => count(row.count)],
    ["schemas", (row) => row.schemas.join(", ") || "—"],
    ["first seen", (row) => timeEl(row.first_seen)],
    ["last seen", (row) => timeEl(row.last_seen)],
  ], rows);
  render(main,
    head("Event type", name, [
      `${producers.producers.length} producers · ${consumers.consumers.length} consumers · `,
      h("a", { href: withQuery("/lineage", { event_type: name }) }, "its lineage"),
    ]),
    chartSection(throughput, range, (value) => navigate(withQuery(location.pathname, { range: value }))),
    h("section", {}, h("h2", {}, "Producers"), participants(producers.producers, false)),
    h("section", {}, h("h2", {}, "Consumers"),
      consumers.consumers.length ? participants(consumers.consumers, true) : empty("No consumer is retained.")),
    h("section", {}, h("h2", {}, "Schemas"), schemaTables(schemas)));
  ready(main, "event-type");
}

function schemaTables(schemas) {
  if (schemas.schemas.length === 0) {
    return empty(`No producer span of this type named a schema (${count(schemas.spans_without_schema)} without one).`);
  }
  return [
    table([
      ["schema", (row) => row.schema],
      ["producer spans", (row) => count(row.spans)],
      ["producers", (row) => row.producers.map((service) => link.service(service))],
      ["first sent by", (row) => row.first_sent_by ? [
        row.first_sent_by.service,
        row.first_sent_by.instance ? ` (${row.first_sent_by.instance}` : " (",
        row.first_sent_by.version ? ` v${row.first_sent_by.version})` : ")", " ",
        link.trace(row.first_sent_by.trace_id, row.first_sent_by.span_id)] : "—"],
      ["first seen", (row) => timeEl(row.first_seen)],
      ["last seen", (row) => timeEl(row.last_seen)],
    ], schemas.schemas, "Oldest first"),
    table([
      ["producer", (row) => link.service(row.service)],
      ["current", (row) => row.current],
      ["schemas sent", (row) => row.schemas.map((use) => `${use.schema} (${count(use.spans)})`).join(", ")],
    ], schemas.producers, "Per producer"),
  ];
}

export async function servicePage({ main, name, params, current, navigate }) {
  render(main, loading(`service ${name}`));
  const range = STEPS[params.get("range")] ? params.get("range") : "1h";
  const [services, throughput] = await Promise.all([
    api("/api/v1/services"),
    api(withQuery("/api/v1/throughput", { service: name, from: `-${range}`, step: `${STEPS[range]}s` })),
  ]);
  if (!current()) return;
  const service = services.services.find((entry) => entry.service === name);
  if (!service) {
    render(main, head("Service", name), h("div", { class: "error", role: "alert" },
      h("h2", {}, "Not found"), h("p", {}, `No service named “${name}” produced or consumed anything retained.`)));
    ready(main, "service");
    return;
  }
  const flows = (rows, consuming) => rows.length ? table([
    ["event type", (row) => link.eventType(row.event_type)],
    ["stream", (row) => [link.stream(row.stream), ` ${row.broker}`]],
    ...(consuming ? [["handling", (row) => row.modifies ? h("span", { class: "badge modified" }, "modifies") : "reads only"]] : []),
    ["events", (row) => count(row.count)],
  ], rows) : empty(consuming ? "Consumes nothing retained." : "Produces nothing retained.");
  render(main,
    head("Service", name, [h("a", { href: withQuery("/lineage", { service: name }) }, "its lineage"), " · ",
      h("a", { href: withQuery("/search", { service: name }) }, "its traces")]),
    chartSection(throughput, range, (value) => navigate(withQuery(location.pathname, { range: value }))),
    h("section", {}, h("h2", {}, "Produces"), flows(service.produces, false)),
    h("section", {}, h("h2", {}, "Consumes"), flows(service.consumes, true)));
  ready(main, "service");
}

export async function streamPage({ main, name, params, current, navigate }) {
  render(main, loading(`stream ${name}`));
  const range = STEPS[params.get("range")] ? params.get("range") : "1h";
  const [streams, throughput] = await Promise.all([
    api("/api/v1/streams"),
    api(withQuery("/api/v1/throughput", { stream: name, from: `-${range}`, step: `${STEPS[range]}s` })),
  ]);
  if (!current()) return;
  const found = streams.streams.filter((entry) => entry.stream === name);
  if (found.length === 0) {
    render(main, head("Stream", name), h("div", { class: "error", role: "alert" },
      h("h2", {}, "Not found"), h("p", {}, `No stream named “${name}” is retained.`)));
    ready(main, "stream");
    return;
  }
  render(main,
    head("Stream", name, [h("a", { href: withQuery("/lineage", { stream: name }) }, "its lineage")]),
    chartSection(throughput, range, (value) => navigate(withQuery(location.pathname, { range: value }))),
    found.map((stream) => h("section", {},
      h("h2", {}, `On ${stream.broker}`),
      h("dl", { class: "fields" },
        h("dt", {}, "event types"), h("dd", {}, stream.event_types.map((type) => link.eventType(type))),
        h("dt", {}, "producers"), h("dd", {}, stream.producers.map((service) => link.service(service))),
        h("dt", {}, "consumers"), h("dd", {}, stream.consumers.length ? stream.consumers.map((service) => link.service(service)) : "none"),
        h("dt", {}, "produced"), h("dd", {}, count(stream.produced)),
        h("dt", {}, "consumed"), h("dd", {}, count(stream.consumed)),
        h("dt", {}, "first seen"), h("dd", {}, timeEl(stream.first_seen)),
        h("dt", {}, "last seen"), h("dd", {}, timeEl(stream.last_seen))))));
  ready(main, "stream");
}

function head(kind, name, more) {
  return h("header", { class: "page-head" }, h("p", { class: "kind" }, kind), h("h1", {}, name),
    more ? h("p", {}, more) : null);
}

/** The throughput chart (events per second per series) with its range picker. */
function chartSection(throughput, range, onRange) {
  const section = h("section", { class: "chart", "aria-labelledby": "throughput-heading" },
    h("div", { class: "section-head" }, h("h2", { id: "throughput-heading" }, "Throughput"), rangePicker(range, onRange)));
  const series = throughput.series;
  if (series.length === 0) {
    section.append(empty("No events in this time range."));
    return section;
  }
  const times = series[0].points.map((point) => point.time);
  const step = throughput.step_seconds;
  const data = [times, ...series.map((one) => one.points.map((point) => point.count / step))];
  const label = (one) => `${one.service} ${one.action} ${one.stream}${series.some((s) => s.event_type !== one.event_type) ? ` ${one.event_type}` : ""}`;
  const holder = h("div", { class: "chart-holder", role: "img",
    "aria-label": `Events per second, ${series.length} series: ${series.map(label).join("; ")}` });
  section.append(holder, h("p", { class: "note" }, `Events per second from the counts, one point per ${step} s. `,
    `Totals: ${series.map((one) => `${label(one)} ${count(one.total)}`).join(" · ")}`));
  const draw = () => {
    if (typeof uPlot === "undefined") return;
    holder.replaceChildren();
    const width = Math.max(280, holder.clientWidth || 800);
    // eslint-disable-next-line no-undef
    new uPlot({
      width, height: 240,
      series: [{}, ...series.map((one, idx) => ({
        label: label(one), stroke: COLOURS[idx % COLOURS.length], width: 1.5,
        dash: one.action === "consumed" ? [6, 3] : undefined,
        value: (_, v) => (v == null ? "—" : v.toFixed(2)),
      }))],
      axes: [{}, { label: "events/s", size: 60 }],
    }, data, holder);
  };
  requestAnimationFrame(draw);
  return section;
}
