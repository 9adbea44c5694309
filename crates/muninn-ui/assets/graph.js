// graph.js: the lineage drawn as SVG. Services are boxes, streams cylinders; an arrow from a
// producer to a stream and from a stream to each consumer, labelled with the event types on it;
// a modifying consumer's arrow is drawn dashed in another colour, laid out left to right by
// layout.js so that events flow the way they are read.

import { svg, seg } from "/ui/lib.js";
import { layeredLayout } from "/ui/layout.js";

const CHAR_WIDTH = 7.2;

/** Nodes and edges of `edges` (the lineage API's), merged per (from, to). */
export function lineageGraph(edges) {
  const nodes = new Map();
  const links = new Map();
  const node = (id, kind, label, extra = {}) => {
    if (!nodes.has(id)) nodes.set(id, { id, kind, label, ...extra });
    return id;
  };
  for (const edge of edges) {
    const service = node(`service:${edge.service}`, "service", edge.service);
    const stream = node(`stream:${edge.broker}/${edge.stream}`, "stream", edge.stream, { broker: edge.broker });
    const [from, to] = edge.action === "produced" ? [service, stream] : [stream, service];
    const key = `${from}→${to}`;
    if (!links.has(key)) links.set(key, { from, to, eventTypes: new Set(), modifies: false, count: 0 });
    const merged = links.get(key);
    merged.eventTypes.add(edge.event_type);
    merged.modifies ||= edge.modifies;
    merged.count += edge.count;
  }
  return { nodes: [...nodes.values()], links: [...links.values()] };
}

function nodeSize(node) {
  const width = Math.max(90, node.label.length * CHAR_WIDTH + 28);
  return node.kind === "stream" ? { width, height: 54 } : { width, height: 40 };
}

function labelText(link) {
  const types = [...link.eventTypes].sort();
  // One name and how many more: the full list is in the arrow's tooltip.
  return types.length > 1 ? `${types[0]} +${types.length - 1}` : types[0];
}

/** Edge labels are drawn when there are at most this many edges; beyond, they are in each
 * edge's tooltip, so that a large fleet's graph stays readable. */
const MAX_LABELLED_EDGES = 80;

/** The point at `t` of a cubic Bézier [p0, p1, p2, p3]. */
function bezierAt([p0, p1, p2, p3], t) {
  const u = 1 - t;
  const at = (a, b, c, d) => u * u * u * a + 3 * u * u * t * b + 3 * u * t * t * c + t * t * t * d;
  return { x: at(p0.x, p1.x, p2.x, p3.x), y: at(p0.y, p1.y, p2.y, p3.y) };
}

/** An <svg> of the graph; nodes are links to their pages. */
export function drawLineage(graph) {
  const layout = layeredLayout(
    graph.nodes.map((node) => ({ id: node.id, ...nodeSize(node) })),
    graph.links.map((link) => ({ from: link.from, to: link.to })),
    { rankGap: graph.links.length > MAX_LABELLED_EDGES ? 70 : 120 });
  const { width, height } = layout;
  const labelled = graph.links.length <= MAX_LABELLED_EDGES;
  // Where the first column starts, so that a scrolled view can open on it.
  const firstColumn = [...layout.nodes.values()].filter((node) => node.layer === 0);
  const startY = Math.min(...firstColumn.map((node) => node.y - node.height / 2));

  const root = svg("svg", {
    xmlns: "http://www.w3.org/2000/svg", viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
    width: Math.ceil(width), height: Math.ceil(height), class: "lineage", role: "img",
    "data-start-y": Number.isFinite(startY) ? Math.round(startY) : 0,
    "aria-label": `Lineage: ${graph.nodes.filter((n) => n.kind === "service").length} services, ` +
      `${graph.nodes.filter((n) => n.kind === "stream").length} streams`,
  });
  root.append(svg("defs", {},
    svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" })),
    svg("marker", { id: "arrow-modifies", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head modifies" }))));
  root.append(svg("style", {}, `
    .lineage text { font: 12px system-ui, sans-serif; fill: #1b2733; }
    .lineage .edge { fill: none; stroke: #6b7c8f; stroke-width: 1.4; }
    .lineage .edge.modifies { stroke: #b35c00; stroke-dasharray: 5 3; }
    .lineage .arrow-head { fill: #6b7c8f; } .lineage .arrow-head.modifies { fill: #b35c00; }
    .lineage .service rect { fill: #e8f0fb; stroke: #3b6ea8; }
    .lineage .stream path { fill: #eef7ee; stroke: #3f8a4a; }
    .lineage .edge-label { font-size: 11px; fill: #3a4856; paint-order: stroke; stroke: #fbfcfd; stroke-width: 3px; }
    .lineage a:focus rect, .lineage a:focus path, .lineage a:hover rect, .lineage a:hover path { stroke-width: 3; }
    .lineage .edge-group:hover .edge { stroke-width: 3; }`));

  const routes = new Map(layout.edges.map((edge) => [`${edge.from}\u0000${edge.to}`, edge.points]));
  for (const link of graph.links) {
    const points = routes.get(`${link.from}\u0000${link.to}`);
    if (!points) continue;
    const [p0, p1, p2, p3] = points.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`);
    const types = [...link.eventTypes].sort().join(", ");
    const middle = bezierAt(points, 0.5);
    root.append(svg("g", { class: "edge-group" },
      svg("title", {}, `${types}${link.modifies ? " (modifies the payload)" : ""}: ${link.count.toLocaleString("en-US")} events`),
      svg("path", { d: `M${p0} C${p1} ${p2} ${p3}`, class: `edge${link.modifies ? " modifies" : ""}`,
        "marker-end": `url(#${link.modifies ? "arrow-modifies" : "arrow"})` }),
      labelled ? svg("text", { x: middle.x.toFixed(1), y: (middle.y - 4).toFixed(1), "text-anchor": "middle", class: "edge-label" },
        (link.modifies ? "✎ " : "") + labelText(link)) : null));
  }
  for (const node of graph.nodes) {
    const { x, y, width: w, height: hgt } = layout.nodes.get(node.id);
    const href = node.kind === "service" ? `/services/${seg(node.label)}` : `/streams/${seg(node.label)}`;
    const shape = node.kind === "service"
      ? svg("rect", { x: x - w / 2, y: y - hgt / 2, width: w, height: hgt, rx: 6 })
      : svg("path", { d: cylinder(x - w / 2, y - hgt / 2, w, hgt) });
    root.append(svg("a", { href, class: node.kind, "data-node": node.id,
      "aria-label": `${node.kind} ${node.label}` },
      svg("title", {}, `${node.kind} ${node.label}${node.broker ? ` (${node.broker})` : ""}`),
      shape,
      svg("text", { x, y: y + (node.kind === "stream" ? 8 : 4), "text-anchor": "middle" }, node.label)));
  }
  return root;
}

/** A cylinder's outline (a stream): top ellipse, sides, bottom arc. */
function cylinder(x, y, w, hgt) {
  const ry = 7;
  return `M${x},${y + ry} a${w / 2},${ry} 0 0,0 ${w},0 a${w / 2},${ry} 0 0,0 ${-w},0 ` +
    `v${hgt - 2 * ry} a${w / 2},${ry} 0 0,0 ${w},0 v${-(hgt - 2 * ry)}`;
}
