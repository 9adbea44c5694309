// pages/lineage.js: `/` and `/lineage`, the fleet's lineage drawn as a graph (services, streams,
// event types on the arrows, modifying consumers dashed), filtered by event type, service,
// stream and time range, with the catalog beside it and the diagram to download.

import { h, api, withQuery, render, loading, empty, link, count, ready, RANGES } from "/ui/lib.js";
import { lineageGraph, drawLineage } from "/ui/graph.js";

const FILTERS = ["event_type", "service", "stream"];

export async function lineagePage({ main, params, current, navigate }) {
  render(main, loading("the lineage"));
  const range = params.get("range") || "";
  const query = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
  const apiQuery = { ...query, from: range ? `-${range}` : "" };
  const [lineage, types, services, streams] = await Promise.all([
    api(withQuery("/api/v1/lineage", apiQuery)),
    api("/api/v1/event-types"), api("/api/v1/services"), api("/api/v1/streams"),
  ]);
  if (!current()) return;

  const form = h("form", { class: "filters", "aria-label": "Filter the lineage",
    onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      const next = {};
      for (const [name, value] of data.entries()) if (value) next[name] = value;
      navigate(withQuery("/lineage", next));
    } },
  FILTERS.map((name) => h("label", {}, name.replace("_", " "),
    h("input", { name, value: query[name], placeholder: "any (globs: order.*)", spellcheck: "false" }))),
  h("label", {}, "time range", h("select", { name: "range" },
    h("option", { value: "" }, "everything retained"),
    RANGES.map(([value, text]) => h("option", { value, selected: value === range }, text)))),
  h("button", { type: "submit" }, "Apply"),
  h("a", { href: "/lineage", class: "button secondary" }, "Clear"));

  const graph = lineageGraph(lineage.edges);
  const picture = graph.nodes.length
    ? drawLineage(graph)
    : empty(Object.values(query).some(Boolean) || range
      ? "No edges match these filters in this time range."
      : "Nothing is stored yet: once services send spans or counts, their lineage appears here.");
  const download = (format, extension) => h("a", {
    href: withQuery("/api/v1/lineage", { ...apiQuery, format }), download: `lineage.${extension}`,
  }, format === "mermaid" ? "Mermaid" : "DOT");
  const svgLink = h("a", { href: "#", onclick: (event) => {
    event.preventDefault();
    if (!(picture instanceof SVGElement)) return;
    const blob = new Blob([new XMLSerializer().serializeToString(picture)], { type: "image/svg+xml" });
    const anchor = h("a", { href: URL.createObjectURL(blob), download: "lineage.svg" });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
  } }, "SVG");

  const modifying = lineage.edges.filter((edge) => edge.modifies).length;
  render(main,
    h("header", { class: "page-head" },
      h("h1", {}, "Lineage"),
      h("p", {}, `${graph.nodes.filter((n) => n.kind === "service").length} services · `,
        `${graph.nodes.filter((n) => n.kind === "stream").length} streams · `,
        `${new Set(lineage.edges.map((edge) => edge.event_type)).size} event types · `,
        `${modifying} modifying consumer edge${modifying === 1 ? "" : "s"} (dashed)`)),
    form,
    h("div", { class: "lineage-layout" },
      h("section", { class: "graph", "aria-label": "Lineage graph" },
        h("div", { class: "graph-scroll" }, picture),
        picture instanceof SVGElement ? h("button", { type: "button", class: "small secondary", id: "graph-fit",
          "aria-pressed": "false", onclick: (event) => fit(event.target, !event.target.closest("section").querySelector(".graph-scroll").classList.contains("fit")) },
        "Fit to width") : null,
        h("p", { class: "downloads" }, "Download: ", download("mermaid", "mmd"), " · ", download("dot", "dot"), " · ", svgLink)),
      h("aside", { class: "catalog", "aria-label": "Catalog" },
        h("h2", {}, `Event types (${types.event_types.length})`),
        list(types.event_types, (entry) => [link.eventType(entry.event_type), ` ${count(entry.count)}`]),
        h("h2", {}, `Services (${services.services.length})`),
        list(services.services, (entry) => [link.service(entry.service)]),
        h("h2", {}, `Streams (${streams.streams.length})`),
        list(streams.streams, (entry) => [link.stream(entry.stream), ` ${entry.broker}`]))));
  // Fitted to the width when that keeps its text readable (scaled to at least 70%), else at
  // actual size, scrolling; the button switches.
  const button = main.querySelector("#graph-fit");
  if (button && picture instanceof SVGElement) {
    const scroll = main.querySelector(".graph-scroll");
    const scale = scroll.clientWidth / picture.width.baseVal.value;
    fit(button, scale >= 0.7);
    // At actual size, open on the first column (where events start), not on empty space.
    if (scale < 0.7) scroll.scrollTop = Math.max(0, Number(picture.dataset.startY) - 16);
  }
  ready(main, "lineage");
}

function fit(button, on) {
  button.closest("section").querySelector(".graph-scroll").classList.toggle("fit", on);
  button.setAttribute("aria-pressed", String(on));
}

function list(items, item) {
  if (items.length === 0) return empty("none yet");
  return h("ul", { class: "plain compact" }, items.map((entry) => h("li", {}, item(entry))));
}
