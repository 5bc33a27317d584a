// Helpers every dashboard page uses: element building (text only), the admin API, messages.

export const state = { role: null, csrf: null, events: null, page: null, charts: {}, series: null };

export const $ = (id) => document.getElementById(id);

export function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.dataset[key.slice(5)] = value;
    else node.setAttribute(key, value);
  }
  return node;
}

export function say(text) { $("message").textContent = text || ""; }

export async function api(path, options) {
  const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (init.body !== undefined) {
    init.method = init.method || "POST";
    init.headers["content-type"] = "application/json";
  }
  if (init.method && init.method !== "GET" && state.csrf) init.headers["x-csrf-token"] = state.csrf;
  const response = await fetch(path, init);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const text = body && body.error ? body.error.message : `HTTP ${response.status}`;
    const error = new Error(text);
    error.status = response.status;
    throw error;
  }
  return body;
}

export function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  return Number(value).toFixed(digits === undefined ? 1 : digits);
}
