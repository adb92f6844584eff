// reach watch dashboard: a table of endpoints kept live over server-sent
// events, and a detail panel (latency plot, uptime, the doctor's findings).
// Data is only ever inserted as text, never as HTML.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const rows = new Map(); // "source/name" -> status
const trs = new Map();  // "source/name" -> its table row
let selected = null;    // "source/name"
let plotWindow = "1h";

function api(path) {
  const u = new URL(path, location.href);
  if (token) u.searchParams.set("token", token);
  return u.toString();
}

async function getJSON(path) {
  const r = await fetch(api(path), { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()));
  return r.json();
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

const keyOf = (st) => st.source + "/" + st.endpoint;

function ago(t) {
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 90) return Math.round(s) + "s ago";
  if (s < 5400) return Math.round(s / 60) + "m ago";
  if (s < 129600) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}

function ms(ns) {
  const v = ns / 1e6;
  return v < 10 ? v.toFixed(2) + " ms" : v.toFixed(0) + " ms";
}

function pct(p) { return p == null ? "–" : p.toFixed(p >= 99.95 || p === 0 ? 0 : 2) + "%"; }

function stateBadge(state) { return el("span", { class: "state " + state }, state); }

function renderRow(st) {
  let last = st.last && st.last.class ? st.last.class + " in " + ms(st.last.rtt_ns) : "–";
  const lastCell = el("td", {});
  if (st.last && st.last.layer) {
    // A URL target: the layer that decided (tcp, tls, http, mysql...), its cause, and the
    // certificate's expiry.
    last = st.last.layer + (st.last.layer_cause ? " " + st.last.layer_cause : " ok") + " in " + ms(st.last.rtt_ns);
    if (st.last.detail) lastCell.title = st.last.detail;
  }
  lastCell.append(last);
  if (st.last && st.last.cert_expiry) {
    const days = Math.floor((new Date(st.last.cert_expiry) - Date.now()) / 86400000);
    lastCell.append(el("div", { class: "cert", title: "certificate valid until " + new Date(st.last.cert_expiry).toLocaleString() },
      days < 0 ? "certificate expired" : "certificate expires in " + days + "d"));
  }
  const labels = el("td");
  for (const [k, v] of Object.entries(st.labels || {})) labels.append(el("span", { class: "label" }, k + "=" + v));
  const name = st.source === "local" ? st.endpoint : st.endpoint + " (" + st.source + ")";
  const tr = el("tr", { "data-key": keyOf(st), "data-state": st.state },
    el("td", {}, name), el("td", {}, el("code", {}, st.target || "")),
    el("td", {}, stateBadge(st.state), st.cause ? " " + st.cause : "",
      st.held ? el("span", { class: "held", title: "alerts held: " + st.held }, " held: " + st.held) : ""),
    el("td", { title: new Date(st.since).toLocaleString() }, ago(st.since)),
    lastCell, el("td", {}, pct(st.uptime_24h)), labels);
  if (keyOf(st) === selected) tr.classList.add("selected");
  tr.addEventListener("click", () => select(keyOf(st)));
  trs.set(keyOf(st), tr);
  return tr;
}

function renderTable() {
  const body = document.querySelector("#endpoints tbody");
  const sorted = [...rows.values()].sort((a, b) =>
    (a.state === "down" ? 0 : 1) - (b.state === "down" ? 0 : 1) || keyOf(a).localeCompare(keyOf(b)));
  trs.clear();
  body.replaceChildren(...sorted.map(renderRow));
  document.getElementById("empty").hidden = rows.size > 0;
  const down = sorted.filter((s) => s.state === "down").length;
  document.getElementById("summary").textContent = rows.size + " endpoints, " + down + " down";
}

// merge applies changed statuses: rows whose state is unchanged are replaced
// in place; a new endpoint or a state change re-sorts the table.
function merge(statuses) {
  let resort = false;
  for (const st of statuses) {
    const old = rows.get(keyOf(st));
    if (old && old.uptime_24h != null && st.uptime_24h == null) st.uptime_24h = old.uptime_24h;
    if (old && old.held && st.held === undefined) st.held = old.held; // the list's; the stream has none
    rows.set(keyOf(st), st);
    const tr = !resort && old && old.state === st.state && trs.get(keyOf(st));
    if (tr && tr.isConnected) tr.replaceWith(renderRow(st)); else resort = true;
  }
  if (resort) renderTable();
  if (selected && statuses.some((s) => keyOf(s) === selected)) loadDetail();
}

async function loadList() {
  const data = await getJSON("api/endpoints");
  rows.clear();
  merge(data.endpoints);
}

function select(key) {
  selected = key;
  renderTable();
  loadDetail();
}

function path(key) {
  const [source, ...rest] = key.split("/");
  return "api/endpoints/" + encodeURIComponent(source) + "/" + encodeURIComponent(rest.join("/"));
}

async function loadDetail() {
  if (!selected) return;
  const key = selected;
  const [d, lat] = await Promise.all([getJSON(path(key)), getJSON(path(key) + "/latency?window=" + plotWindow)]);
  if (key !== selected) return;
  document.getElementById("detail").hidden = false;
  document.getElementById("d-name").textContent = d.endpoint;
  document.getElementById("d-state").replaceWith(Object.assign(stateBadge(d.state), { id: "d-state" }));
  document.getElementById("d-meta").textContent =
    d.target + " — " + d.state + " since " + new Date(d.since).toLocaleString() + " (" + ago(d.since) + ")" +
    (d.source !== "local" ? " — seen from " + d.source : "");
  document.getElementById("d-uptime").textContent =
    "Uptime: last hour " + pct(d.uptime["1h"]) + ", last day " + pct(d.uptime["24h"]) + ", last 30 days " + pct(d.uptime["30d"]);
  renderDown(d);
  renderTransitions(d.transitions);
  renderPlot(lat);
}

function renderDown(d) {
  const box = document.getElementById("d-down");
  box.hidden = d.state !== "down";
  if (box.hidden) return;
  const diag = d.down && d.down.diagnosis;
  const body = document.querySelector("#d-findings tbody");
  if (!diag) {
    document.getElementById("d-verdict").textContent = "Down since " + ago(d.since) + ": " +
      ((d.last && d.last.class) || "") + ". The doctor is looking into it…";
    body.replaceChildren();
    return;
  }
  document.getElementById("d-verdict").replaceChildren(
    el("strong", {}, "Cause: " + diag.cause), " — " + (diag.verdict || diag.error || ""));
  body.replaceChildren(...(diag.findings || []).map((f) =>
    el("tr", { "data-cause": f.cause || "" }, el("td", {}, f.issue), el("td", {}, f.evidence || ""), el("td", {}, f.fix || ""))));
}

function renderTransitions(ts) {
  document.querySelector("#d-transitions tbody").replaceChildren(...ts.map((t) =>
    el("tr", {}, el("td", { title: new Date(t.time).toLocaleString() }, ago(t.time)),
      el("td", t.change ? { title: "after " + t.change } : {}, t.from + " → " + t.to + (t.change ? " (after a network change)" : "")),
      el("td", {}, t.class),
      el("td", {}, t.diagnosis ? t.diagnosis.cause : ""))));
}

// renderChanges lists the network changes the kernel announced, with the
// endpoints each sent down or brought up.
function renderChanges(cs) {
  document.getElementById("changes").hidden = cs.length === 0;
  document.querySelector("#changes-table tbody").replaceChildren(...cs.slice(0, 10).map((c) => {
    const eff = [];
    if (c.down.length) eff.push(c.down.length + " down: " + c.down.join(", "));
    if (c.up.length) eff.push(c.up.length + " up: " + c.up.join(", "));
    if (!eff.length) eff.push(c.rechecked.length ? c.rechecked.length + " re-probed, no change" : "no endpoint affected");
    return el("tr", { "data-change": c.id }, el("td", { title: new Date(c.time).toLocaleString() }, ago(c.time)),
      el("td", {}, (c.source === "local" ? "" : c.source + ": ") + c.summary), el("td", {}, eff.join("; ")));
  }));
}

// renderMaintenance lists the maintenance windows: those open now first.
function renderMaintenance(ws) {
  document.getElementById("maintenance").hidden = ws.length === 0;
  const sorted = [...ws].sort((a, b) => (b.active ? 1 : 0) - (a.active ? 1 : 0));
  document.querySelector("#maintenance-table tbody").replaceChildren(...sorted.map((w) =>
    el("tr", { "data-window": w.id, class: w.active ? "active" : "" },
      el("td", {}, w.id, w.reason ? el("div", { class: "muted" }, w.reason) : ""),
      el("td", {}, w.description),
      el("td", {}, (w.endpoints || []).join(", ") || "every endpoint"),
      el("td", {}, w.active ? "open until " + new Date(w.active_until).toLocaleString()
        : w.next ? "next " + new Date(w.next).toLocaleString() : "over"))));
}

function loadMaintenance() {
  getJSON("api/maintenance").then(renderMaintenance).catch(() => {});
}

let changesTimer = null;
function loadChanges() { // at most twice a second, however many events come
  if (changesTimer) return;
  changesTimer = setTimeout(() => {
    changesTimer = null;
    getJSON("api/changes").then(renderChanges).catch(() => {});
  }, 500);
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// renderPlot draws average and maximum connect time per bucket, and marks
// buckets with failed probes in red.
function renderPlot(lat) {
  const W = 600, H = 220, L = 48, B = 20, T = 8;
  const root = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img" });
  const pts = lat.points;
  const span = (lat.window === "24h" ? 86400 : 3600) * 1000;
  const t0 = Date.now() - span;
  const x = (t) => L + (W - L - 4) * Math.min(1, Math.max(0, (new Date(t).getTime() - t0) / span));
  const maxV = Math.max(1e6, ...pts.map((p) => p.max_rtt_ns));
  const y = (v) => H - B - (H - B - T) * (v / maxV);
  for (const f of [0, 0.5, 1]) {
    root.append(svg("line", { x1: L, x2: W, y1: y(maxV * f), y2: y(maxV * f), stroke: "#eceff1" }));
    const lbl = svg("text", { x: 2, y: y(maxV * f) + 4, "font-size": 10, fill: "#78909c" });
    lbl.textContent = ms(maxV * f);
    root.append(lbl);
  }
  const lbl = svg("text", { x: L, y: H - 4, "font-size": 10, fill: "#78909c" });
  lbl.textContent = lat.window === "24h" ? "last 24 hours" : "last hour";
  root.append(lbl);
  for (const p of pts) {
    if (p.ok < p.n) root.append(svg("rect", { x: x(p.time) - 1.5, y: T, width: 3, height: H - B - T, fill: "#ffcdd2" }));
  }
  const line = (key, color, width) => root.append(svg("polyline", {
    points: pts.map((p) => x(p.time).toFixed(1) + "," + y(p[key]).toFixed(1)).join(" "),
    fill: "none", stroke: color, "stroke-width": width }));
  line("max_rtt_ns", "#b0bec5", 1);
  line("avg_rtt_ns", "#1565c0", 1.5);
  if (pts.length <= 120) { // few points: a line alone would hide a lone one
    for (const p of pts) root.append(svg("circle", { cx: x(p.time), cy: y(p.avg_rtt_ns), r: 2, fill: p.ok < p.n ? "#c62828" : "#1565c0" }));
  }
  if (pts.length === 0) {
    const t = svg("text", { x: W / 2 - 40, y: H / 2, "font-size": 12, fill: "#78909c" });
    t.textContent = "no history yet";
    root.append(t);
  }
  document.getElementById("plot").replaceChildren(root);
}

function connect() {
  const live = document.getElementById("live");
  const es = new EventSource(api("api/events"));
  // A snapshot is the whole list (on connecting, and after a reload added or
  // removed endpoints): it replaces ours.
  es.addEventListener("snapshot", (e) => {
    live.textContent = "live"; live.classList.add("on");
    const sts = JSON.parse(e.data);
    for (const st of sts) { // the stream has no uptime: keep the list's
      const old = rows.get(keyOf(st));
      if (old && old.uptime_24h != null) st.uptime_24h = old.uptime_24h;
      if (old && old.held) st.held = old.held;
    }
    rows.clear();
    merge(sts);
  });
  es.addEventListener("status", (e) => { merge(JSON.parse(e.data)); loadChanges(); });
  es.onerror = () => { live.textContent = "reconnecting…"; live.classList.remove("on"); };
}

document.querySelectorAll("button.win").forEach((b) => b.addEventListener("click", () => {
  plotWindow = b.dataset.window;
  document.querySelectorAll("button.win").forEach((o) => o.classList.toggle("active", o === b));
  loadDetail();
}));

loadList().then(() => {
  const linked = rows.get(decodeURIComponent(location.hash.slice(1))); // alerts link to #source/name
  const first = linked || [...rows.values()].find((s) => s.state === "down") || rows.values().next().value;
  if (first) select(keyOf(first));
}).catch((e) => { document.getElementById("summary").textContent = String(e); });
connect();
loadChanges();
loadMaintenance();
setInterval(loadMaintenance, 30000);
setInterval(loadChanges, 10000);
// On a hub (reach watch with an agents: section) the matrix is one click away.
fetch(api("agents/matrix.json"), { method: "HEAD", cache: "no-store" }).then((r) => {
  if (!r.ok) return;
  const a = document.getElementById("matrix-link");
  a.href = api("agents/");
  a.hidden = false;
}).catch(() => {});
setInterval(() => { loadList().catch(() => {}); }, 60000); // refresh uptime and "ago"
