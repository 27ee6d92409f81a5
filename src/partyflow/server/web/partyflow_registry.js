// partyflow: the manager dialog browses the packs of this server's configured catalogs.
// The editor's manager dialog asks the Comfy Registry (api.comfy.org) and Algolia directly from the browser.
// partyflow installs only what its own catalogs list (through its security policy, scans and audit log), so
// registry requests go to this server's registry-shaped routes instead, and Algolia requests fail at once so the
// dialog falls back to the registry search that this server answers. Only when the server says it offers them.
import { api } from "../../scripts/api.js";

const REGISTRY = "https://api.comfy.org";
const ALGOLIA = /^https:\/\/[^/]*(algolia\.net|algolianet\.com)\//;

function enabled() {
  return api.getServerFeature?.("partyflow.registry", false) === true;
}

function rewrite(url) {
  if (typeof url !== "string" || !enabled()) return url;
  if (url.startsWith(REGISTRY + "/")) return api.apiURL("/partyflow/registry" + url.slice(REGISTRY.length));
  if (ALGOLIA.test(url)) return api.apiURL("/partyflow/registry/algolia-unavailable");
  return url;
}

const open = XMLHttpRequest.prototype.open;
XMLHttpRequest.prototype.open = function (method, url, ...rest) {
  return open.call(this, method, rewrite(url instanceof URL ? url.href : url), ...rest);
};

const originalFetch = window.fetch.bind(window);
window.fetch = (input, init) => {
  if (typeof input === "string" || input instanceof URL) return originalFetch(rewrite(String(input)), init);
  if (input instanceof Request) {
    const target = rewrite(input.url);
    return originalFetch(target === input.url ? input : new Request(target, input), init);
  }
  return originalFetch(input, init);
};
