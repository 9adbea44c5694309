// graph.js: the lineage drawn as SVG. Services are boxes, streams cylinders; an arrow from a
// producer to a stream and from a stream to each consumer, labelled with the event types on it;
// a modifying consumer's arrow is drawn dashed in another colour. dagre lays the graph out
// (left to right, so events flow the way they are read).

import { svg, seg } from "/ui/lib.js";

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
  return types.length > 3 ? `${types.slice(0, 2).join(", ")} +${types.length - 2}` : types.join(", ");
}

/** An <svg> of the graph; nodes are links to their pages. */
export function drawLineage(graph) {
  const layout = new dagre.graphlib.Graph({ multigraph: false });
  layout.setGraph({ rankdir: "LR", nodesep: 22, ranksep: 90, edgesep: 12, marginx: 16, marginy: 16 });
  layout.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.nodes) layout.setNode(node.id, { ...nodeSize(node) });
  for (const link of graph.links) {
    const label = labelText(link);
    layout.setEdge(link.from, link.to, { width: label.length * 6.2, height: 14, labelpos: "c" });
  }
  dagre.layout(layout);
  const { width, height } = layout.graph();

  const root = svg("svg", {
    xmlns: "http://www.w3.org/2000/svg", viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
    width: Math.ceil(width), height: Math.ceil(height), class: "lineage", role: "img",
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
    .lineage .edge-label { font-size: 11px; fill: #3a4856; }
    .lineage a:focus rect, .lineage a:focus path, .lineage a:hover rect, .lineage a:hover path { stroke-width: 3; }`));

  for (const link of graph.links) {
    const edge = layout.edge(link.from, link.to);
    const points = edge.points;
    const d = points.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
    const types = [...link.eventTypes].sort().join(", ");
    root.append(svg("g", { class: "edge-group" },
      svg("title", {}, `${types}${link.modifies ? " (modifies the payload)" : ""}: ${link.count.toLocaleString("en-US")} events`),
      svg("path", { d, class: `edge${link.modifies ? " modifies" : ""}`,
        "marker-end": `url(#${link.modifies ? "arrow-modifies" : "arrow"})` }),
      svg("text", { x: edge.x, y: edge.y + 4, "text-anchor": "middle", class: "edge-label" },
        (link.modifies ? "✎ " : "") + labelText(link))));
  }
  for (const node of graph.nodes) {
    const { x, y, width: w, height: hgt } = layout.node(node.id);
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
