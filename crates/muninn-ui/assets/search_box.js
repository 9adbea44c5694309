// search_box.js: the search box on every page. What is typed may be an event id, a trace id, an
// event type, a service or a stream: each reading is checked against the server, one match goes
// straight to its page, several are offered as a choice, none says what was searched.

import { h, api, seg, ApiError } from "/ui/lib.js";

let catalog = null;

/** Event types, services and streams, fetched once per page load for suggestions. */
async function loadCatalog() {
  if (catalog) return catalog;
  const [types, services, streams] = await Promise.all([
    api("/api/v1/event-types"), api("/api/v1/services"), api("/api/v1/streams"),
  ]);
  catalog = {
    eventTypes: types.event_types.map((entry) => entry.event_type),
    services: services.services.map((entry) => entry.service),
    streams: [...new Set(streams.streams.map((entry) => entry.stream))],
  };
  return catalog;
}

/** Whether `path` answers 200 (404 is "no"; other errors are reported). */
async function exists(path) {
  try {
    await api(path);
    return true;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 400)) return false;
    throw error;
  }
}

/** Every page `query` could mean, each as {kind, label, href}. */
export async function resolve(query) {
  const text = query.trim();
  if (!text) return [];
  const known = await loadCatalog().catch(() => ({ eventTypes: [], services: [], streams: [] }));
  const found = [];
  if (known.eventTypes.includes(text)) {
    found.push({ kind: "event type", label: text, href: `/event-types/${seg(text)}` });
  }
  if (known.services.includes(text)) {
    found.push({ kind: "service", label: text, href: `/services/${seg(text)}` });
  }
  if (known.streams.includes(text)) {
    found.push({ kind: "stream", label: text, href: `/streams/${seg(text)}` });
  }
  const checks = [];
  if (/^[0-9a-fA-F]{32}$/.test(text)) {
    checks.push(exists(`/api/v1/traces/${text.toLowerCase()}`).then((yes) => yes &&
      { kind: "trace", label: text.toLowerCase(), href: `/traces/${text.toLowerCase()}` }));
  }
  if (text.length <= 512) {
    checks.push(exists(`/api/v1/events/${seg(text)}`).then((yes) => yes &&
      { kind: "event", label: text, href: `/events/${seg(text)}` }));
  }
  for (const result of await Promise.all(checks)) if (result) found.push(result);
  return found;
}

export function setUpSearchBox(navigate) {
  const form = document.getElementById("search-box");
  const input = document.getElementById("search-input");
  const list = document.getElementById("search-suggestions");
  const choices = document.getElementById("search-choices");
  const close = () => { choices.hidden = true; choices.replaceChildren(); };

  input.addEventListener("focus", async () => {
    if (list.childElementCount) return;
    const known = await loadCatalog().catch(() => null);
    if (!known) return;
    const option = (value, kind) => h("option", { value }, kind);
    list.replaceChildren(
      ...known.eventTypes.map((name) => option(name, "event type")),
      ...known.services.map((name) => option(name, "service")),
      ...known.streams.map((name) => option(name, "stream")));
  }, { once: false });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = input.value.trim();
    if (!query) return;
    close();
    choices.hidden = false;
    choices.append(h("p", { role: "status" }, `Looking for “${query}”…`));
    let found;
    try {
      found = await resolve(query);
    } catch (error) {
      choices.replaceChildren(h("p", { role: "alert", class: "error" }, `Search failed: ${error.message}`));
      return;
    }
    if (found.length === 1) {
      close();
      navigate(found[0].href);
      return;
    }
    const closeButton = h("button", { type: "button", class: "close", onclick: close, "aria-label": "Close" }, "×");
    if (found.length === 0) {
      choices.replaceChildren(h("div", { role: "alert", class: "not-found" }, closeButton,
        h("strong", {}, `Nothing found for “${query}”. `),
        "Searched as an event id, a trace id (32 hex characters), an event type, a service and a stream."));
      return;
    }
    choices.replaceChildren(h("div", { role: "dialog", "aria-label": "Choose what you meant" }, closeButton,
      h("p", {}, `“${query}” is more than one thing:`),
      h("ul", {}, found.map((choice) => h("li", {},
        h("a", { href: choice.href, onclick: close }, `${choice.kind}: ${choice.label}`))))));
    choices.querySelector("a").focus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
    if (event.key === "/" && document.activeElement === document.body) {
      event.preventDefault();
      input.focus();
    }
  });
}
