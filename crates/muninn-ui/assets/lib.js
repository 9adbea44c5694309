// lib.js: what every page shares: building DOM, calling the API, showing times and durations,
// and saying when a page is ready (the browser tests wait for it and time it).

/** Builds an element: h("a", {href: "/x", class: "y"}, "text", child, [more]). */
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** An SVG element with attributes. */
export function svg(tag, attrs, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

/** An error the API answered, with its status and the field it names. */
export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

/** Where the API token is kept in this browser (a server with [auth] asks for one). */
const TOKEN_KEY = "muninn.token";

/** The API token this browser was given, or "". */
function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

/** GETs (or sends) JSON from the API; a non-2xx answer throws an ApiError with its message. */
export async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: { accept: "application/json" } };
  const token = storedToken();
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers["content-type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, `the server did not answer (${error.message})`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    // Muninn's errors are {error: {message, field}}; the Jaeger API's {errors: [{msg}]}.
    const detail = body && body.error ? body.error : {};
    const jaeger = body && Array.isArray(body.errors) && body.errors[0] ? body.errors[0].msg : null;
    const message = detail.message || jaeger || text || response.statusText;
    throw new ApiError(response.status, message, detail.field);
  }
  return body;
}

/** `path?name=value&…` with empty values left out. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** A path segment, encoded. */
export const seg = encodeURIComponent;

/** A time in the browser's zone, with UTC on hover. */
export function timeEl(iso) {
  if (!iso) return h("span", {}, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h("span", {}, iso);
  const local = date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  return h("time", { datetime: date.toISOString(), title: `${date.toISOString()} (UTC)` }, local);
}

/** Nanoseconds as a short duration: 850 µs, 12.3 ms, 4.1 s, 2 min 5 s. */
export function duration(nanos) {
  const abs = Math.abs(nanos);
  const sign = nanos < 0 ? "−" : "";
  if (abs < 1e3) return `${sign}${abs} ns`;
  if (abs < 1e6) return `${sign}${(abs / 1e3).toFixed(abs < 1e4 ? 1 : 0)} µs`;
  if (abs < 1e9) return `${sign}${(abs / 1e6).toFixed(abs < 1e7 ? 2 : 1)} ms`;
  if (abs < 60e9) return `${sign}${(abs / 1e9).toFixed(2)} s`;
  const minutes = Math.floor(abs / 60e9);
  return `${sign}${minutes} min ${Math.round((abs - minutes * 60e9) / 1e9)} s`;
}

/** A count with thousands separators. */
export const count = (n) => Number(n).toLocaleString("en-US");

/** Replaces the page's content (empty parts left out). */
export function render(main, ...children) {
  main.replaceChildren(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
}

/** A box saying what is happening while a page loads. */
export const loading = (what) => h("p", { class: "loading", role: "status" }, `Loading ${what}…`);

/** An error box: what was asked, and what the server said. A server that wants a token (401),
 * or a better one (403), gets a form that keeps one in this browser. */
export function errorBox(what, error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    return h("div", { class: "error", role: "alert" },
      h("h2", {}, error.status === 401 ? "This server asks for a token" : "This token may not see this"),
      h("p", {}, what),
      h("p", { class: "detail" }, error.message),
      tokenForm());
  }
  const notFound = error instanceof ApiError && error.status === 404;
  return h("div", { class: "error", role: "alert" },
    h("h2", {}, notFound ? "Not found" : "Something went wrong"),
    h("p", {}, what),
    h("p", { class: "detail" }, error.message || String(error)));
}

/** The API token form: kept in this browser's storage, sent with every call of the UI. */
function tokenForm() {
  const input = h("input", {
    type: "password", id: "api-token", name: "token", autocomplete: "off",
    spellcheck: "false", placeholder: "mnn_…", required: true,
  });
  const forget = storedToken()
    ? h("button", { type: "button", class: "secondary", onclick: () => {
      localStorage.removeItem(TOKEN_KEY);
      location.reload();
    } }, "Forget the token")
    : null;
  return h("form", { class: "token-form", onsubmit: (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, input.value.trim());
    location.reload();
  } },
  h("label", { for: "api-token" }, "API token with the read scope (muninn token new --scope read)"),
  input,
  h("button", { type: "submit" }, "Use this token"),
  forget);
}

/** An empty state: what was looked for, and what to try. */
export const empty = (text) => h("p", { class: "empty" }, text);

/** Marks the page ready: `data-ready` on <main> and the times in `window.muninnReady`
 * (milliseconds), which the browser tests read and print. */
export function ready(main, page) {
  main.dataset.ready = page;
  const now = performance.now();
  // `ms`: since this page's route began; `sinceLoad`: since the document's navigation began.
  window.muninnReady = { page, ms: now - (window.muninnNavigationStart || 0), sinceLoad: now };
}

/** A link to a catalog page. */
export const link = {
  eventType: (name) => h("a", { href: `/event-types/${seg(name)}`, class: "tag type" }, name),
  service: (name) => h("a", { href: `/services/${seg(name)}`, class: "tag service" }, name),
  stream: (name) => h("a", { href: `/streams/${seg(name)}`, class: "tag stream" }, name),
  trace: (id, span) =>
    h("a", { href: `/traces/${seg(id)}${span ? `?span=${seg(span)}` : ""}`, class: "mono" },
      id.slice(0, 12) + "…"),
  event: (id) => h("a", { href: `/events/${seg(id)}`, class: "mono" }, id),
};

/** A table from rows; `columns` are [heading, cell(row)] pairs. */
export function table(columns, rows, caption) {
  return h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map(([heading]) => h("th", { scope: "col" }, heading)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row)))))));
}

/** A key/value list of attributes. */
export function attributes(map) {
  const entries = Object.entries(map || {});
  if (entries.length === 0) return h("p", { class: "empty" }, "none");
  return h("dl", { class: "attributes" },
    entries.sort(([a], [b]) => a.localeCompare(b))
      .flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))]));
}

/** The time ranges the pickers offer, as the API's relative `from`. */
export const RANGES = [
  ["15m", "last 15 minutes"], ["1h", "last hour"], ["6h", "last 6 hours"],
  ["24h", "last 24 hours"], ["7d", "last 7 days"],
];

/** A <select> of RANGES bound to the URL parameter `range`. */
export function rangePicker(current, onChange) {
  return h("label", { class: "range" }, "Time range ",
    h("select", { name: "range", onchange: (event) => onChange(event.target.value) },
      RANGES.map(([value, text]) => h("option", { value, selected: value === current }, text))));
}
