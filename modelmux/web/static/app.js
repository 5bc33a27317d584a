// The ModelMux dashboard: reads /admin/events and the admin API; holds no state of its own.
// Every string from the server is set with textContent, never parsed as HTML.
import { $, api, el, fmt, say, state } from "./common.js";
import { showKeys, showUsage, wire } from "./tenancy.js";

const POINTS = 300;

function signedIn(session) {
  state.role = session.role;
  state.csrf = session.csrf;
  document.body.classList.toggle("viewer", session.role !== "admin");
  $("who").textContent = session.open ? "open (loopback, no key set)" : `signed in: ${session.role}`;
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = session.open;
  connect();
  route();
}

function signedOut() {
  state.role = state.csrf = null;
  if (state.events) state.events.close();
  state.events = null;
  for (const page of document.querySelectorAll(".page")) page.hidden = true;
  $("nav").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("signin").hidden = false;
}

function connect() {
  if (state.events) return;
  const source = new EventSource("/admin/events");
  source.addEventListener("snapshot", (event) => show(JSON.parse(event.data)));
  source.onerror = () => say("Live updates interrupted; retrying…");
  source.onopen = () => say("");
  state.events = source;
}

function makeChart(id, labels) {
  const target = $(id);
  const series = [{}].concat(labels.map((label, i) => ({
    label, stroke: ["#2e6fd8", "#c0392b", "#1e8e3e"][i], width: 2 })));
  const opts = { width: Math.max(300, target.clientWidth || 480), height: 200, series,
    scales: { x: { time: true } }, legend: { live: false } };
  return new uPlot(opts, [[], ...labels.map(() => [])], target);
}

function push(data, values) {
  data[0].push(Date.now() / 1000);
  values.forEach((value, i) => data[i + 1].push(value));
  if (data[0].length > POINTS) for (const column of data) column.shift();
}

function show(snap) {
  $("requests-total").textContent = String(snap.requests_total);
  $("rps").textContent = fmt(snap.requests_per_s, 2);
  $("in-flight").textContent = String(snap.in_flight);
  $("latency").textContent = `${fmt(snap.latency_ms.p50)} / ${fmt(snap.latency_ms.p99)}`;
  $("overhead").textContent = `${fmt(snap.overhead_ms.p50, 2)} / ${fmt(snap.overhead_ms.p99, 2)}`;
  const tokens = snap.tokens_per_s;
  $("tokens").textContent = tokens ? `${fmt(tokens.input)} / ${fmt(tokens.output)}` : "–";
  $("cost").textContent = fmt(snap.cost_per_hour_usd, 4);
  const cache = snap.cache;
  $("cache").textContent = !cache ? "no cache"
    : (cache.hit_ratio === null ? "–" : `${fmt(cache.hit_ratio * 100)} %`);
  const errors = $("errors");
  errors.replaceChildren();
  for (const [status, count] of Object.entries(snap.errors || {}))
    errors.append(el("li", `HTTP ${status}: ${count}`));
  for (const [code, count] of Object.entries(snap.upstream_errors || {}))
    errors.append(el("li", `upstream ${code}: ${count}`));
  if (!errors.children.length) errors.append(el("li", "none"));
  if (!state.series) state.series = { rps: [[], []], latency: [[], [], []] };
  push(state.series.rps, [snap.requests_per_s || 0]);
  push(state.series.latency, [snap.latency_ms.p50, snap.latency_ms.p99]);
  if (state.page === "overview" && typeof uPlot !== "undefined") {
    if (!state.charts.rps) state.charts.rps = makeChart("chart-rps", ["req/s"]);
    if (!state.charts.latency) state.charts.latency = makeChart("chart-latency", ["p50", "p99"]);
    state.charts.rps.setData(state.series.rps);
    state.charts.latency.setData(state.series.latency);
  }
  if (state.page === "providers") refreshProviders();
}

let providersBusy = false;
async function refreshProviders() {
  if (providersBusy) return;
  providersBusy = true;
  try {
    const body = await api("/admin/providers");
    const rows = [];
    for (const provider of body.data)
      for (const deployment of provider.deployments) rows.push(deploymentRow(deployment));
    const tbody = $("deployments").tBodies[0];
    const focused = document.activeElement && tbody.contains(document.activeElement);
    if (!focused) tbody.replaceChildren(...rows);
  } catch (error) {
    handle(error);
  } finally {
    providersBusy = false;
  }
}

function limitCell(deployment, name) {
  const cell = el("td");
  const override = deployment.overrides[name];
  cell.append(el("span", deployment.limits[name] ?? "none", override !== undefined ? { class: "override" } : {}));
  if (override !== undefined) cell.append(el("small", ` (config: ${deployment.configured[name] ?? "none"})`));
  return cell;
}

function deploymentRow(d) {
  const row = el("tr", null, { "data-deployment": d.id });
  const breaker = d.breaker.state + (d.breaker.pinned ? " (held)" : "");
  row.append(el("td", d.id, { class: "deployment-id" }),
    el("td", breaker, { class: `breaker state-${d.breaker.state}` }),
    el("td", d.in_flight), el("td", d.ewma_ttft_ms === null ? "–" : fmt(d.ewma_ttft_ms)),
    limitCell(d, "rpm"), limitCell(d, "tpm"),
    el("td", `${d.limits.rpm_available === null ? "–" : fmt(d.limits.rpm_available, 0)} / ` +
      `${d.limits.tpm_available === null ? "–" : fmt(d.limits.tpm_available, 0)}`));
  const controls = el("td", null, { class: "admin-only" });
  const open = d.breaker.state === "open";
  const toggle = el("button", open ? "Close breaker" : "Open breaker", { type: "button", class: "breaker-toggle" });
  toggle.addEventListener("click", () => control("/admin/breaker",
    { deployment: d.id, state: open ? "closed" : "open" }));
  const rpm = el("input", null, { type: "number", min: "1", placeholder: "rpm", class: "rpm-input" });
  const tpm = el("input", null, { type: "number", min: "1", placeholder: "tpm", class: "tpm-input" });
  rpm.value = d.overrides.rpm ?? "";
  tpm.value = d.overrides.tpm ?? "";
  const apply = el("button", "Set limits", { type: "button", class: "limits-apply" });
  apply.addEventListener("click", () => control("/admin/limits", {
    deployment: d.id, rpm: rpm.value ? Number(rpm.value) : null, tpm: tpm.value ? Number(tpm.value) : null }));
  controls.append(toggle, " ", rpm, tpm, apply);
  row.append(controls);
  return row;
}

async function control(path, payload) {
  try {
    const result = await api(path, { body: JSON.stringify(payload) });
    say(result.reloaded === false ? `Saved, but the reload failed: ${result.result}` : "");
    document.activeElement.blur();
    await refreshProviders();
  } catch (error) {
    handle(error);
  }
}

async function showConfig() {
  try {
    const body = await api("/admin/config");
    const last = body.last_reload;
    $("last-reload").textContent = last
      ? `${last.ok ? "applied" : "rejected"} at ${new Date(last.at * 1000).toISOString()}\n${last.result}`
      : "no reload since start";
    $("restart").replaceChildren(...body.restart_needed_for.map((key) => el("li", key)),
      ...(last && last.restart ? last.restart.map((line) => el("li", `pending: ${line}`)) : []));
    $("overrides").textContent = JSON.stringify(body.overrides, null, 2) +
      (body.overrides_problem ? `\n${body.overrides_problem}` : "");
    $("config-text").textContent = JSON.stringify(body.config, null, 2);
  } catch (error) {
    handle(error);
  }
}

function handle(error) {
  if (error.status === 401) { signedOut(); start("Your session ended; sign in again."); return; }
  say(error.message);
}

function route() {
  if (!state.role) return;
  const page = (location.hash || "#overview").slice(1);
  state.page = ["overview", "providers", "keys", "usage", "config"].includes(page) ? page : "overview";
  for (const section of document.querySelectorAll(".page"))
    section.hidden = section.id !== `page-${state.page}`;
  for (const link of document.querySelectorAll("nav a"))
    link.classList.toggle("active", link.dataset.page === state.page);
  if (state.page === "providers") refreshProviders();
  if (state.page === "config") showConfig();
  if (state.page === "keys") showKeys(handle);
  if (state.page === "usage") showUsage(handle);
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    signedIn(await api("/dashboard/session", { body: JSON.stringify({ key: $("key").value }) }));
    $("key").value = "";
    say("");
  } catch (error) {
    say(error.message);
  }
});

$("signout").addEventListener("click", async () => {
  try { await api("/dashboard/signout", { body: "{}" }); } catch (_) { /* gone already */ }
  signedOut();
});

window.addEventListener("hashchange", route);
wire(handle);
window.addEventListener("resize", () => {
  for (const [name, chart] of Object.entries(state.charts)) {
    const width = $(`chart-${name}`).clientWidth;
    if (width) chart.setSize({ width, height: 200 });
  }
});

function start(note) {
  api("/dashboard/session").then((session) => {
    if (session.role) { signedIn(session); return; }
    signedOut();
    say(note || "");
  }, (error) => { signedOut(); say(error.message); });
}

start();
