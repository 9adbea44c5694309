// app.js: the UI's entry point. Routes the URL to a page, keeps navigation inside the page
// (links and back/forward without reloads), and sets up the search box on every page.

import { render, errorBox } from "/ui/lib.js";
import { setUpSearchBox } from "/ui/search_box.js";
import { journeyPage } from "/ui/pages/journey.js";
import { tracePage } from "/ui/pages/trace.js";
import { lineagePage } from "/ui/pages/lineage.js";
import { eventTypePage, servicePage, streamPage } from "/ui/pages/catalog.js";
import { searchPage } from "/ui/pages/search.js";
import { samplingPage } from "/ui/pages/sampling.js";

/** [pattern, page, title]: the first pattern matching the path renders the page. */
const ROUTES = [
  [/^\/$/, lineagePage, "Lineage"],
  [/^\/lineage$/, lineagePage, "Lineage"],
  [/^\/events\/(.+)$/, journeyPage, "Event"],
  [/^\/traces\/(.+)$/, tracePage, "Trace"],
  [/^\/event-types\/(.+)$/, eventTypePage, "Event type"],
  [/^\/services\/(.+)$/, servicePage, "Service"],
  [/^\/streams\/(.+)$/, streamPage, "Stream"],
  [/^\/search$/, searchPage, "Traces"],
  [/^\/sampling$/, samplingPage, "Sampling"],
];

const main = document.getElementById("main");
let generation = 0;

/** Renders the page for the current URL. A page started before the latest navigation does not
 * draw over it (each page checks `current()`). */
async function route() {
  window.muninnNavigationStart = performance.now();
  delete main.dataset.ready;
  const mine = ++generation;
  const current = () => mine === generation;
  const url = new URL(window.location.href);
  for (const [pattern, page, title] of ROUTES) {
    const match = url.pathname.match(pattern);
    if (!match) continue;
    let name = "";
    try {
      name = match[1] !== undefined ? decodeURIComponent(match[1]) : "";
    } catch {
      name = match[1];
    }
    document.title = name ? `${title} ${name} · Muninn` : `${title} · Muninn`;
    markNav(url.pathname);
    try {
      await page({ main, name, params: url.searchParams, current, navigate });
    } catch (error) {
      if (current()) {
        render(main, errorBox(`${title} ${name}`, error));
        main.dataset.ready = "error";
        window.muninnReady = { page: "error", sinceLoad: performance.now() };
      }
    }
    return;
  }
  render(main, errorBox(`The page ${url.pathname}`, new Error("Muninn has no such page.")));
  main.dataset.ready = "error";
  window.muninnReady = { page: "error", sinceLoad: performance.now() };
}

function markNav(path) {
  for (const anchor of document.querySelectorAll("header nav a")) {
    const here = path === anchor.getAttribute("href") ||
      (path === "/" && anchor.getAttribute("href") === "/lineage");
    if (here) anchor.setAttribute("aria-current", "page");
    else anchor.removeAttribute("aria-current");
  }
}

/** Goes to `href` inside the page: history entry, render, focus on the content. */
export function navigate(href, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  route().then(() => main.focus({ preventScroll: true }));
  window.scrollTo(0, 0);
}

// Same-origin links to pages navigate in place; downloads, API links, new tabs do not.
document.addEventListener("click", (event) => {
  const anchor = event.target.closest("a[href]");
  if (!anchor || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (anchor.getAttribute("target") || anchor.hasAttribute("download")) return;
  // An SVG <a>'s `href` is not a string: read the attribute.
  const url = new URL(anchor.getAttribute("href"), window.location.href);
  if (url.origin !== window.location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/ui/")) return;
  if (url.pathname === window.location.pathname && url.search === window.location.search && url.hash) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});

window.addEventListener("popstate", () => route());

setUpSearchBox(navigate);
route();
