// partyflow: a Providers page in the editor's sidebar. Lists the model providers of config.toml, tests one, and
// adds or edits one (type, base URL, model and the NAME of the environment variable holding the key; a key value is
// never asked for, sent or shown). Changes are allowed to callers on the server's own machine only; the server
// checks that again, applies its security policy and records each change in the audit log.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const FIELDS = [
  ["name", "Name", "default"],
  ["type", "Type", "openai_compat"],
  ["base_url", "Base URL", "http://127.0.0.1:11434/v1"],
  ["model", "Model", "qwen2.5:7b-instruct"],
  ["api_key_env", "Key variable (name only)", "OPENAI_API_KEY"],
];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "style") node.style.cssText = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function call(method, path, body) {
  const response = await api.fetchApi(path, {
    method, headers: body ? { "Content-Type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data?.error ? `${data.error.message}${data.error.details ? ` (${data.error.details})` : ""}` : `HTTP ${response.status}`);
  return data;
}

async function render(root) {
  root.replaceChildren(el("div", { style: "padding:8px" }, "Loading providers…"));
  let listing;
  try {
    listing = await call("GET", "/partyflow/providers");
  } catch (error) {
    root.replaceChildren(el("div", { style: "padding:8px", "data-partyflow-providers-error": "" }, String(error.message)));
    return;
  }
  const status = el("div", { "data-partyflow-provider-status": "", style: "padding:4px 8px;white-space:pre-wrap" });
  const rows = listing.providers.map((p) => {
    const test = el("button", { class: "p-button p-button-sm", "data-provider-test": p.name, onclick: async () => {
      status.textContent = `asking ${p.name}…`;
      try {
        const result = await call("POST", `/partyflow/providers/${encodeURIComponent(p.name)}/test`);
        status.textContent = result.ok ? `${p.name} (${result.model}, ${result.seconds}s): ${result.reply}`
                                       : `${p.name} failed: ${result.error}`;
      } catch (error) { status.textContent = `${p.name}: ${error.message}`; }
    } }, "Test");
    const edit = el("button", { class: "p-button p-button-sm", onclick: () => fill(p) }, "Edit");
    const key = p.api_key_env ? `${p.api_key_env} ${p.key_set ? "is set" : "is NOT set"}` : "no key";
    return el("div", { "data-provider": p.name, style: "padding:6px 8px;border-bottom:1px solid var(--border-color)" },
      el("div", { style: "font-weight:600" }, p.name, el("span", { style: "font-weight:400;opacity:.7" }, ` · ${p.type}`)),
      el("div", { style: "opacity:.8;font-size:12px" }, `${p.base_url || p.path || "(default endpoint)"} · ${p.model || "(no default model)"} · ${key}`),
      el("div", { style: "display:flex;gap:6px;margin-top:4px" }, test, ...(listing.can_change ? [edit] : [])));
  });
  const inputs = {};
  const form = el("form", { style: "padding:8px;display:flex;flex-direction:column;gap:4px", onsubmit: async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(Object.entries(inputs).map(([k, input]) => [k, input.value.trim()]));
    const { name, ...fields } = values;
    try {
      await call("PUT", `/partyflow/providers/${encodeURIComponent(name)}`, fields);
      await render(root);
      root.querySelector("[data-partyflow-provider-status]").textContent = `saved ${name}`;
    } catch (error) { status.textContent = `not saved: ${error.message}`; }
  } });
  for (const [key, label, placeholder] of FIELDS) {
    inputs[key] = el("input", { name: key, placeholder, class: "p-inputtext p-component", autocomplete: "off" });
    form.append(el("label", { style: "font-size:12px" }, label), inputs[key]);
  }
  form.append(el("button", { type: "submit", class: "p-button p-button-sm", "data-provider-save": "" }, "Save provider"));
  function fill(p) { for (const [key] of FIELDS) inputs[key].value = p[key] ?? ""; }
  root.replaceChildren(
    el("div", { style: "padding:8px;font-weight:600" }, "Model providers (config.toml)"),
    ...(rows.length ? rows : [el("div", { style: "padding:8px" }, "No providers yet: add one below.")]),
    status,
    ...(listing.can_change ? [el("div", { style: "padding:8px 8px 0;font-weight:600" }, "Add or edit"), form]
                           : [el("div", { style: "padding:8px;opacity:.8" }, "Providers can be changed only from the server's own machine.")]),
  );
}

app.registerExtension({
  name: "partyflow.Providers",
  setup() {
    app.extensionManager?.registerSidebarTab?.({
      id: "partyflow-providers", icon: "pi pi-server", title: "Providers", tooltip: "Model providers",
      type: "custom", render: (root) => { render(root); },
    });
  },
});
