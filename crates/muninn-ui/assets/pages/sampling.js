// pages/sampling.js: `/sampling`, the central sampling rules: list, create, edit and delete them
// (the API's validation errors shown next to the field they name), switch live debug, see what
// one service's SDK currently receives, and the collector's tail sampling when configured.

import { h, api, seg, withQuery, render, loading, empty, count, table, ready } from "/ui/lib.js";

const RULE_FIELDS = ["id", "service", "event_type", "rate", "live_debug", "description"];

export async function samplingPage({ main, params, current, navigate }) {
  render(main, loading("the sampling rules"));
  const [rules, services, tail] = await Promise.all([
    api("/api/v1/sampling/rules"),
    api("/api/v1/services"),
    api("/api/v1/sampling/tail").catch(() => ({ enabled: false })),
  ]);
  if (!current()) return;
  const editing = params.get("edit");
  const rule = editing ? rules.rules.find((one) => one.id === editing) : null;
  const checkService = params.get("service") || "";
  const resolved = checkService
    ? await api(withQuery("/api/v1/sampling/config", { service: checkService })).catch((error) => error)
    : null;
  if (!current()) return;

  const reload = () => navigate("/sampling", { replace: true });
  const rows = table([
    ["id", (one) => h("span", { class: "mono" }, one.id)],
    ["service", (one) => one.service || "every service"],
    ["event type", (one) => one.event_type || "every type"],
    ["rate", (one) => `${+(one.rate * 100).toFixed(4)}%`],
    ["live debug", (one) => h("button", {
      type: "button", class: "small", "aria-pressed": String(one.live_debug),
      title: one.service ? "send this service's spans at once, one by one" : "live debug needs a service",
      disabled: !one.service,
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          await api(`/api/v1/sampling/rules/${seg(one.id)}`, { method: "PUT", body: { ...one, live_debug: !one.live_debug } });
          reload();
        } catch (error) {
          event.target.disabled = false;
          event.target.after(h("span", { class: "field-error", role: "alert" }, error.message));
        }
      },
    }, one.live_debug ? "on" : "off")],
    ["description", (one) => one.description || ""],
    ["", (one) => [
      h("a", { href: withQuery("/sampling", { edit: one.id }), class: "button small secondary" }, "Edit"), " ",
      h("button", { type: "button", class: "small danger", "data-rule": one.id, "aria-label": `Delete rule ${one.id}`, onclick: async (event) => {
        if (!window.confirm(`Delete the rule ${one.id}?`)) return;
        event.target.disabled = true;
        try {
          await api(`/api/v1/sampling/rules/${seg(one.id)}`, { method: "DELETE" });
          reload();
        } catch (error) {
          event.target.disabled = false;
          event.target.after(h("span", { class: "field-error", role: "alert" }, error.message));
        }
      } }, "Delete")]],
  ], rules.rules, "Rules, sorted by id: the most specific rule matching a service and event type decides");

  render(main,
    h("header", { class: "page-head" }, h("h1", {}, "Sampling"),
      h("p", {}, "Rules decide which share of events the SDKs trace; every event is counted whatever the rate.")),
    h("section", {}, h("h2", {}, `Rules (${rules.rules.length})`),
      rules.rules.length ? rows : empty("No rules: every service traces every event.")),
    h("section", {}, h("h2", { id: "rule-form-heading" }, rule ? `Edit rule ${rule.id}` : "New rule"),
      editing && !rule ? h("p", { class: "error", role: "alert" }, `There is no rule ${editing}.`) : null,
      ruleForm(rule, reload)),
    h("section", {}, h("h2", {}, "What a service receives"),
      h("form", { class: "filters", onsubmit: (event) => {
        event.preventDefault();
        navigate(withQuery("/sampling", { service: new FormData(event.target).get("service") }));
      } },
      h("label", {}, "service", h("select", { name: "service" },
        services.services.map((entry) => h("option", { value: entry.service, selected: entry.service === checkService }, entry.service)))),
      h("button", { type: "submit" }, "Show")),
      resolved ? resolvedConfig(resolved) : null),
    h("section", {}, h("h2", {}, "Tail sampling"), tailStatus(tail)));
  ready(main, "sampling");
}

function ruleForm(rule, done) {
  const value = (name) => (rule && rule[name] !== undefined ? rule[name] : "");
  const input = (name, label, attrs = {}) => h("label", { "data-field": name }, label,
    h("input", { name, value: value(name), spellcheck: "false", ...attrs }));
  const form = h("form", { class: "rule-form", "aria-labelledby": "rule-form-heading", novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      for (const error of form.querySelectorAll(".field-error")) error.remove();
      for (const invalid of form.querySelectorAll("[aria-invalid]")) invalid.removeAttribute("aria-invalid");
      const data = new FormData(form);
      const body = { rate: data.get("rate") === "" ? null : Number(data.get("rate")) };
      if (Number.isNaN(body.rate)) body.rate = data.get("rate");
      for (const name of ["id", "service", "event_type", "description"]) {
        const text = (data.get(name) || "").trim();
        if (text) body[name] = text;
      }
      body.live_debug = data.get("live_debug") === "on";
      try {
        if (rule) await api(`/api/v1/sampling/rules/${seg(rule.id)}`, { method: "PUT", body: { ...body, id: rule.id } });
        else await api("/api/v1/sampling/rules", { method: "POST", body });
        done();
      } catch (error) {
        showError(form, error);
      }
    } },
  input("id", "id", { placeholder: "generated when empty", readonly: rule ? true : undefined, pattern: "[A-Za-z0-9._-]{1,64}" }),
  input("service", "service", { placeholder: "every service" }),
  input("event_type", "event type", { placeholder: "every type" }),
  input("rate", "rate (0 to 1)", { inputmode: "decimal", placeholder: "0.25", required: true }),
  h("label", { "data-field": "live_debug", class: "check" },
    h("input", { type: "checkbox", name: "live_debug", checked: rule && rule.live_debug }), " live debug"),
  input("description", "description"),
  h("div", { class: "actions" },
    h("button", { type: "submit" }, rule ? "Save" : "Create"),
    rule ? h("a", { href: "/sampling", class: "button secondary" }, "Cancel") : null),
  h("p", { class: "form-error", role: "alert" }));
  return form;
}

/** Shows the API's error next to the field it names (or under the form). */
function showError(form, error) {
  const named = error.field && RULE_FIELDS.find((name) => error.field === name || error.field.startsWith(`${name}`));
  const holder = named && form.querySelector(`[data-field="${named}"]`);
  if (holder) {
    const control = holder.querySelector("input");
    control.setAttribute("aria-invalid", "true");
    const id = `error-${named}`;
    control.setAttribute("aria-describedby", id);
    holder.append(h("span", { class: "field-error", id }, error.message));
    control.focus();
  } else {
    form.querySelector(".form-error").textContent = error.message;
  }
}

function resolvedConfig(config) {
  if (config instanceof Error) return h("p", { class: "error", role: "alert" }, config.message);
  const types = Object.entries(config.event_types);
  return h("div", {},
    h("p", {}, `${config.service}: every event type at ${(config.default_rate_ppm / 1e4).toFixed(2)}% `,
      config.live_debug ? h("span", { class: "badge retry" }, "live debug") : null),
    types.length ? table([["event type", ([type]) => type], ["rate", ([, ppm]) => `${(ppm / 1e4).toFixed(2)}%`]], types) : null);
}

function tailStatus(tail) {
  if (!tail.enabled) return empty("Not configured: the collector keeps every span it receives ([tail_sampling] in the configuration file turns it on).");
  const stats = tail.stats || {};
  return h("dl", { class: "fields" },
    h("dt", {}, "decision wait"), h("dd", {}, tail.config.decision_wait),
    h("dt", {}, "sample rate"), h("dd", {}, `${tail.config.sample_rate * 100}%`),
    h("dt", {}, "kept traces"), h("dd", {}, count(stats.kept_traces || 0)),
    h("dt", {}, "dropped traces"), h("dd", {}, count(stats.dropped_traces || 0)),
    h("dt", {}, "buffered now"), h("dd", {}, count(stats.buffered_traces || 0)));
}
