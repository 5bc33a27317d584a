// The keys, teams and usage pages: /admin/keys, /admin/teams and /admin/usage as the API
// answers them. Names are set as text; a created key is shown once and never kept.
import { $, api, el, fmt, say } from "./common.js";

function off(id, error) {
  $(id).hidden = false;
  $(id).textContent = error.message;
}

async function spentBy(group) {
  try {
    const usage = await api(`/admin/usage?group_by=${group}`);
    return new Map(usage.data.map((row) => [row.group, row.cost_usd]));
  } catch (_) {
    return new Map();  // no spend log: spend unknown
  }
}

function money(spent, budget) {
  const used = spent === undefined ? "–" : fmt(spent, 4);
  return `${used} / ${budget === null || budget === undefined ? "none" : fmt(budget, 2)}`;
}

function keyRow(key, spent, handle) {
  const status = key.revoked_at ? "revoked" : (key.expires_at && key.expires_at * 1000 < Date.now()
    ? "expired" : "active");
  const row = el("tr", null, { "data-key": key.id });
  row.append(el("td", key.name, { class: "key-name" }), el("td", key.prefix),
    el("td", key.team_id ?? "–"), el("td", key.role), el("td", status, { class: "key-status" }),
    el("td", money(spent.get(key.id), key.max_budget_usd)));
  const cell = el("td", null, { class: "admin-only" });
  if (!key.revoked_at) {
    const revoke = el("button", "Revoke", { type: "button", class: "key-revoke" });
    revoke.addEventListener("click", async () => {
      try {
        await api(`/admin/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
        await showKeys(handle);
      } catch (error) { handle(error); }
    });
    cell.append(revoke);
  }
  row.append(cell);
  return row;
}

export async function showKeys(handle) {
  let keys;
  try {
    keys = await api("/admin/keys");
  } catch (error) {
    if (error.status === 404) { $("keys-on").hidden = true; off("keys-off", error); return; }
    handle(error);
    return;
  }
  $("keys-off").hidden = true;
  $("keys-on").hidden = false;
  const [byKey, byTeam] = await Promise.all([spentBy("key"), spentBy("team")]);
  $("keys").tBodies[0].replaceChildren(...keys.data.map((key) => keyRow(key, byKey, handle)));
  try {
    const teams = await api("/admin/teams");
    $("teams").tBodies[0].replaceChildren(...teams.data.map((team) => {
      const row = el("tr", null, { "data-team": team.id });
      row.append(el("td", team.name), el("td", money(byTeam.get(team.id), team.max_budget_usd)));
      return row;
    }));
  } catch (error) { handle(error); }
}

async function createKey(event, handle) {
  event.preventDefault();
  const body = { name: $("key-name").value, role: $("key-role").value };
  if ($("key-team").value) body.team = $("key-team").value;
  if ($("key-budget").value) body.max_budget_usd = Number($("key-budget").value);
  try {
    const created = await api("/admin/keys", { body: JSON.stringify(body) });
    $("new-key-value").textContent = created.key;
    $("new-key").hidden = false;
    $("key-form").reset();
    say("");
    await showKeys(handle);
  } catch (error) { handle(error); }
}

export async function showUsage(handle) {
  const group = $("usage-group").value;
  $("usage-csv").setAttribute("href", `/admin/usage?group_by=${group}&format=csv`);
  try {
    const usage = await api(`/admin/usage?group_by=${group}`);
    $("usage-off").hidden = true;
    $("usage").tBodies[0].replaceChildren(...usage.data.map((row) => {
      const tr = el("tr");
      tr.append(el("td", row.group ?? "–", { class: "usage-group" }), el("td", row.requests),
        el("td", row.input_tokens), el("td", row.output_tokens), el("td", fmt(row.cost_usd, 6)));
      return tr;
    }));
  } catch (error) {
    if (error.status === 404) { off("usage-off", error); return; }
    handle(error);
  }
}

export function wire(handle) {
  $("key-form").addEventListener("submit", (event) => createKey(event, handle));
  $("usage-group").addEventListener("change", () => showUsage(handle));
}
