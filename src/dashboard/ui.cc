// The web UI: a single page, its CSS and JavaScript inline, so that nothing is downloaded at
// run time. It polls /api/cluster_status and /api/jobs/ every few seconds (a capped number of
// rows), asks for the token once when the API answers 401, and lets the server keep it in an
// HttpOnly cookie (POST /api/auth/login).
#include "src/dashboard/server.h"

namespace shoal::dashboard {

const std::string& UiPage() {
  static const std::string kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shoal dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#17324d;color:#fff;padding:10px 20px;display:flex;align-items:center;gap:16px}
header h1{font-size:18px;margin:0}#updated{font-size:12px;opacity:.8;margin-left:auto}
main{padding:16px 20px;display:grid;gap:16px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px}
h2{font-size:15px;margin:0 0 8px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
.ALIVE,.SUCCEEDED{color:#17803d}.DEAD,.FAILED{color:#b42318}.PENDING{color:#9a6700}.RUNNING{color:#0b62c4}.STOPPED{color:#57606a}
.none{color:#6b7280;font-style:italic}pre{background:#0f1720;color:#d9e1ea;padding:8px;max-height:300px;overflow:auto;font-size:12px}
button{font-size:12px}.bar{display:inline-block;height:8px;background:#dbe4ee;width:80px;vertical-align:middle}
.bar span{display:block;height:8px;background:#2f81f7}#login{display:none}
.pager{font-size:12px;color:#57606a;margin-top:6px}
</style></head><body>
<header><h1>Shoal</h1><span id="cluster"></span><span id="updated"></span></header>
<main>
<section id="login"><h2>Sign in</h2>
<p>This dashboard needs its token (file <code>auth_token</code> in the head's session directory).</p>
<form id="login-form"><input id="token" type="password" placeholder="token" autocomplete="off">
<button type="submit">Sign in</button> <span id="login-error" class="FAILED"></span></form></section>
<section><h2>Nodes</h2><div id="nodes" class="none">loading…</div></section>
<section><h2>Cluster resources</h2><div id="resources" class="none">loading…</div></section>
<section><h2>Resource demands (pending and infeasible)</h2><div id="demands" class="none">loading…</div></section>
<section><h2>Jobs</h2><div id="jobs" class="none">loading…</div><div id="log-view"></div></section>
<section><h2>Actors</h2><div id="actors" class="none">none</div></section>
<section><h2>Placement groups</h2><div id="placement-groups" class="none">none</div></section>
<section><h2>Recent tasks</h2><div id="tasks" class="none">none</div></section>
</main>
<script>
"use strict";
const PAGE = 50;  // rows a list shows at first, and adds per "show more"
const limits = {nodes: PAGE, actors: PAGE, "placement-groups": PAGE, tasks: PAGE, jobs: PAGE};
let openLog = null;
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v); }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function table(headers, rows) {
  return el("table", {}, el("tr", {}, ...headers.map(h => el("th", {}, h))),
            ...rows.map(r => el("tr", {}, ...r.map(c => el("td", {}, c)))));
}
function fmt(name, v) {
  if (name === "memory" || name === "object_store_memory") return (v / 2 ** 30).toFixed(2) + " GiB";
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}
function usage(total, avail) {
  const parts = [];
  for (const name of Object.keys(total).sort()) {
    // Placement group bundles' own names (CPU_group_0_<id>...): the group list shows them.
    if (name.startsWith("node:") || /_group_(\d+_)?[0-9a-f]{36}$/.test(name)) continue;
    const used = Math.max(0, total[name] - (avail[name] || 0));
    const pct = total[name] > 0 ? Math.round(100 * used / total[name]) : 0;
    const bar = el("span", {class: "bar", title: pct + "%"}, el("span", {style: "width:" + pct + "%"}));
    parts.push(el("div", {}, name + " " + fmt(name, used) + " / " + fmt(name, total[name]) + " ", bar));
  }
  return el("div", {}, ...parts);
}
function replace(id, node) { const box = document.getElementById(id); box.className = ""; box.replaceChildren(node); }
// The table of list `id`, with "showing N of TOTAL" and a button that asks for a page more.
function paged(id, tbl, shown, total) {
  if (!(total > shown)) return replace(id, tbl);
  const more = el("button", {class: "more", onclick: () => { limits[id] += PAGE; refresh(); }},
                  "show " + Math.min(PAGE, total - shown) + " more");
  replace(id, el("div", {}, tbl, el("div", {class: "pager"}, "showing " + shown + " of " + total + " ", more)));
}
function none(id, text) { const box = document.getElementById(id); box.className = "none"; box.textContent = text; }
async function api(path, options) {
  const r = await fetch(path, Object.assign({credentials: "same-origin", headers: {"Content-Type": "application/json"}}, options || {}));
  if (r.status === 401) { signedIn = false; document.getElementById("login").style.display = "block"; throw new Error("unauthenticated"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || ("HTTP " + r.status));
  return body;
}
function renderStatus(s) {
  document.getElementById("cluster").textContent = "GCS " + s.gcs_address + " (" + s.storage + ")";
  const nodes = s.nodes.slice(0, limits.nodes);
  const caps = n => (n.labels || {})["shoal.io/gpu-memory-caps"];
  const gpus = n => (n.gpu_used_per_device || []).map((u, i) => "GPU" + i + " " + u.toFixed(2) + "/1").join(", ") +
                    (caps(n) ? " (memory caps: " + caps(n) + ")" : "");
  if (!nodes.length) none("nodes", "none"); else paged("nodes", table(["node", "address", "state", "role", "resources used / total", "GPU devices used"],
      nodes.map(n => [n.node_id.slice(0, 12), n.address + ":" + n.raylet_port, el("span", {class: n.state}, n.state),
                      n.is_head ? "head" : "worker", usage(n.resources_total, n.resources_available), gpus(n)])), nodes.length, s.num_nodes);
  replace("resources", usage(s.total, s.available));
  if (!s.demands.length) none("demands", "none");
  else replace("demands", table(["shape", "count", "kind"], s.demands.map(d =>
      [Object.entries(d.shape).map(([k, v]) => k + ": " + v).join(", "), d.count,
       el("span", {class: d.infeasible ? "FAILED" : "PENDING"}, d.infeasible ? "infeasible" : "pending")])));
  if (s.actors && s.actors.length) paged("actors", table(["actor", "class", "name", "state", "node", "restarts", "death cause"], s.actors.map(a => [a.actor_id.slice(0, 12), a.class_name, a.name, a.state, (a.node_id || "").slice(0, 12), String(a.num_restarts), a.death_cause])), s.actors.length, s.num_actors);
  else none("actors", "none");
  const groups = s.placement_group_list || [];
  if (groups.length) paged("placement-groups", table(["group", "name", "strategy", "state", "bundles (resources @ node)", "why pending"],
      groups.map(g => [g.placement_group_id.slice(0, 12), g.name, g.strategy,
        el("span", {class: g.state === "CREATED" ? "SUCCEEDED" : g.state === "REMOVED" ? "STOPPED" : "PENDING"}, g.state),
        g.bundles.map(b => "{" + Object.entries(b.resources).map(([k, v]) => k + ": " + v).join(", ") + "}" +
                           (b.node_id ? " @ " + b.node_id.slice(0, 12) : "")).join("; "),
        g.infeasible ? "infeasible: " + g.pending_reason : g.pending_reason])), groups.length, s.num_placement_groups);
  else none("placement-groups", "none");
  if (s.tasks && s.tasks.length) paged("tasks", table(["task", "name", "state", "node", "error"], s.tasks.map(t => [t.task_id.slice(0, 16), t.name, t.state, (t.node_id || "").slice(0, 12), t.error_type])), s.tasks.length, s.num_tasks);
  else none("tasks", "none");
}
async function showLogs(id) {
  openLog = id;
  const body = await api("/api/jobs/" + encodeURIComponent(id) + "/logs");
  const view = document.getElementById("log-view");
  view.replaceChildren(el("h2", {}, "Logs of " + id + " ", el("button", {onclick: () => { openLog = null; view.replaceChildren(); }}, "close")),
                       el("pre", {id: "log-text"}, body.logs.slice(-200000) || "(empty)"));
}
async function stopJob(id) { try { await api("/api/jobs/" + encodeURIComponent(id) + "/stop", {method: "POST"}); refresh(); } catch (e) { alert(e.message); } }
function renderJobs(jobs, total) {
  if (!jobs.length) return none("jobs", "none");
  paged("jobs", table(["submission id", "status", "entrypoint", "started", "message", ""],
    jobs.map(j => [j.submission_id, el("span", {class: j.status}, j.status), j.entrypoint,
      new Date(j.start_time).toLocaleTimeString(), j.message || "",
      el("span", {}, el("button", {onclick: () => showLogs(j.submission_id)}, "logs"), " ",
         ...(j.status === "PENDING" || j.status === "RUNNING" ? [el("button", {onclick: () => stopJob(j.submission_id)}, "stop")] : []))])),
    jobs.length, total);
}
let signedIn = false;
async function refresh() {
  try {
    if (!signedIn) {
      // Asked first, so that a browser without the cookie never sees a 401 (a console error).
      const r = await fetch("/api/auth/status", {credentials: "same-origin"});
      signedIn = (await r.json()).authenticated;
      if (!signedIn) { document.getElementById("login").style.display = "block"; throw new Error("unauthenticated"); }
    }
    const [status, jobs] = await Promise.all([
      api("/api/cluster_status?limit=" + limits.nodes + "&actor_limit=" + limits.actors + "&task_limit=" + limits.tasks +
          "&group_limit=" + limits["placement-groups"]),
      api("/api/jobs/?limit=" + limits.jobs)]);
    document.getElementById("login").style.display = "none";
    renderStatus(status);
    renderJobs(jobs, Object.values(status.jobs_by_status || {}).reduce((a, b) => a + b, 0));
    if (openLog) await showLogs(openLog);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("updated").textContent = e.message === "unauthenticated" ? "sign in to see the cluster" : "error: " + e.message;
  }
}
document.getElementById("login-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const r = await fetch("/api/auth/login", {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
                                            body: JSON.stringify({token: document.getElementById("token").value})});
  if (r.ok) { document.getElementById("token").value = ""; document.getElementById("login-error").textContent = ""; refresh(); }
  else document.getElementById("login-error").textContent = "wrong token";
});
refresh();
setInterval(refresh, 3000);
</script></body></html>
)HTML";
  return kPage;
}

}  // namespace shoal::dashboard
