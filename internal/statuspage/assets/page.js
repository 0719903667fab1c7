// paddock's status page: reads /api/history once, then follows
// /api/events (Server-Sent Events) and renders what they say. It builds
// the DOM with textContent only (no HTML from data), and loads nothing
// from elsewhere.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const MAX_EVENTS = 200;

const state = {
  status: null,
  skew: 0,              // server clock minus ours, in ms
  history: { intervalMs: 5000, windowMs: 600000, apps: {}, workers: {} },
  exited: new Map(),    // "app/id" -> pid of an exit event not yet in a status
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function bytes(n) {
  if (n === undefined || n === null) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function percent(p) {
  return p === undefined || p === null ? "-" : p.toFixed(1) + "%";
}

function duration(ms) {
  if (!(ms >= 0)) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m" + String(s % 60).padStart(2, "0") + "s";
  const h = Math.floor(m / 60);
  if (h < 24) return h + "h" + String(m % 60).padStart(2, "0") + "m";
  return Math.floor(h / 24) + "d" + String(h % 24).padStart(2, "0") + "h";
}

function serverNow() { return Date.now() + state.skew; }

function key(app, id) { return app + "/" + id; }

// shownState is what a person reads in a worker's STATE column.
function shownState(w) {
  if (state.exited.get(key(w.app, w.id)) === w.pid && w.pid !== 0) return ["exited", "exited"];
  switch (w.state) {
    case "backoff": {
      let s = "exited";
      if (w.restartAt) s += ", restart in " + duration(Date.parse(w.restartAt) - serverNow());
      return ["exited", s];
    }
    case "done": return ["exited", "exited"];
    case "stopping": return ["stopping", "stopping"];
    case "running": return w.ready ? ["running", "running"] : ["starting", "starting"];
  }
  return ["", w.state];
}

function renderSupervisor(st) {
  const s = st.supervisor;
  const up = duration(serverNow() - Date.parse(s.startedAt));
  document.getElementById("supervisor").textContent =
    `pid ${s.pid} · ${s.version} · up ${up} · ${s.manifests.join(", ")}`;
  document.title = `paddock · ${st.apps.length} apps, ${st.workers.filter(w => w.pid).length} workers`;
}

function appNotes(a) {
  const notes = [];
  if (a.crashLoop) notes.push(el("span", { class: "note bad" }, "crash loop: " + a.crashLoop.summary));
  if (a.rolledBack) notes.push(el("span", { class: "note warn" }, `rolled back from ${a.rolledBack.from} to ${a.rolledBack.to}`));
  if (a.waiting) notes.push(el("span", { class: "note warn" }, a.waiting));
  if (a.override) notes.push(el("span", { class: "note" }, `scaled (manifest: ${a.manifestInstances})`));
  if (a.lastExit) {
    const e = a.lastExit;
    const how = e.signal ? e.signal : "code " + e.code;
    notes.push(el("span", { class: "note muted" },
      `last exit: ${a.name}/${e.worker}${e.pid ? " pid " + e.pid : ""} ${how}, ${duration(serverNow() - Date.parse(e.at))} ago`));
  }
  return notes;
}

function renderApps(st) {
  const body = document.querySelector("#apps tbody");
  body.replaceChildren(...st.apps.map(a => el("tr", { "data-app": a.name },
    el("td", {}, el("strong", {}, a.name)),
    el("td", { class: "num" }, `${a.ready}/${a.instances}`),
    el("td", { class: "num" }, a.running),
    el("td", { class: "num" }, percent(a.cpuPercent)),
    el("td", { class: "num" }, bytes(a.rssBytes)),
    el("td", {}, a.schedulingPolicy || "-"),
    el("td", {}, (a.listen || []).join(", ") || "-"),
    el("td", { class: "muted" }, a.generation),
    el("td", {}, ...appNotes(a)))));
  document.getElementById("no-apps").hidden = st.apps.length > 0;
}

function renderRollouts(st) {
  const items = [];
  for (const a of st.apps) {
    const ro = a.rollout;
    if (!ro && !a.rolledBack) continue;
    const row = el("div", { class: "rollout", "data-app": a.name }, el("strong", {}, a.name));
    if (ro) {
      row.append(el("progress", { max: ro.instances, value: ro.newReady }),
        el("span", { class: ro.stalled ? "stalled" : "" }, ro.summary));
    } else {
      row.append(" ", el("span", { class: "stalled" },
        `rolled back from ${a.rolledBack.from} to ${a.rolledBack.to}: ${a.rolledBack.reason}`));
    }
    items.push(row);
  }
  document.getElementById("rollouts").replaceChildren(...items);
  document.getElementById("rollouts-section").hidden = items.length === 0;
}

function renderWorkers(st) {
  const body = document.querySelector("#workers tbody");
  const now = serverNow();
  body.replaceChildren(...st.workers.map(w => {
    const [cls, text] = shownState(w);
    const live = w.pid !== 0 && cls !== "exited";
    const k = key(w.app, w.id);
    return el("tr", { "data-worker": k, "data-pid": w.pid },
      el("td", {}, w.app),
      el("td", { class: "num" }, w.id),
      el("td", { class: "num pid" }, w.pid || "-"),
      el("td", { class: "state " + cls }, text),
      el("td", {}, w.ready ? "yes" : "no"),
      el("td", { class: "num" }, live ? duration(now - Date.parse(w.startedAt)) : "-"),
      el("td", { class: "num" }, w.restarts),
      el("td", { class: "num" }, live ? percent(w.cpuPercent) : "-"),
      el("td", { class: "num" }, live ? bytes(w.rssBytes) : "-"),
      el("td", {}, sparkline(state.history.workers[k] || [])),
      el("td", { class: "muted" }, w.generation));
  }));
}

function sparkline(pts) {
  const w = 100, h = 18;
  const s = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img" });
  const recent = pts.slice(-24);
  if (recent.length < 2) return s;
  const max = Math.max(1, ...recent.map(p => p.cpu));
  const xs = i => (i / (recent.length - 1)) * (w - 2) + 1;
  const ys = v => h - 1 - (v / max) * (h - 2);
  s.append(svg("polyline", { class: "cpu", points: recent.map((p, i) => `${xs(i)},${ys(p.cpu)}`).join(" ") }));
  return s;
}

// chart draws one measure (cpu or rss) of an app and its workers over the
// window: the app's sum bold, each worker thin.
function chart(title, measure, cls, appPts, workerSeries, fmt) {
  const w = 360, h = 120, left = 56, bottom = 16;
  // The time axis spans the readings kept, from one minute up to the
  // window, so that the first minutes of a page are not a dot at its edge.
  const now = serverNow();
  const oldest = Math.min(now, ...[appPts, ...workerSeries].flat().map(p => p.t));
  const span = Math.min(state.history.windowMs, Math.max(60000, now - oldest));
  const from = now - span;
  const all = [appPts, ...workerSeries].flat().filter(p => p.t >= from);
  const max = Math.max(measure === "cpu" ? 1 : 1024 * 1024, ...all.map(p => p[measure])) * 1.1;
  const x = t => left + ((t - from) / span) * (w - left - 4);
  const y = v => (h - bottom) - (v / max) * (h - bottom - 6);
  const s = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": title });
  for (const f of [0, 0.5, 1]) {
    s.append(svg("line", { class: "grid", x1: left, x2: w - 4, y1: y(max * f / 1.1), y2: y(max * f / 1.1) }));
    const t = svg("text", { x: left - 4, y: y(max * f / 1.1) + 3, "text-anchor": "end" });
    t.textContent = fmt(max * f / 1.1);
    s.append(t);
  }
  const ago = svg("text", { x: left, y: h - 3 });
  ago.textContent = `-${Math.round(span / 60000)} min`;
  const nowText = svg("text", { x: w - 4, y: h - 3, "text-anchor": "end" });
  nowText.textContent = "now";
  s.append(ago, nowText);
  const line = (pts, extra) => {
    const visible = pts.filter(p => p.t >= from);
    if (visible.length === 0) return;
    const points = visible.length === 1
      ? `${x(visible[0].t) - 1},${y(visible[0][measure])} ${x(visible[0].t)},${y(visible[0][measure])}`
      : visible.map(p => `${x(p.t).toFixed(1)},${y(p[measure]).toFixed(1)}`).join(" ");
    s.append(svg("polyline", { class: cls + extra, points }));
  };
  for (const pts of workerSeries) line(pts, " worker");
  line(appPts, "");
  return el("div", { class: "chart" }, el("h3", {}, title), s);
}

function renderCharts() {
  const st = state.status;
  if (!st) return;
  const hist = state.history;
  const charts = [];
  for (const a of st.apps) {
    const prefix = a.name + "/";
    const workers = Object.keys(hist.workers).filter(k => k.startsWith(prefix)).map(k => hist.workers[k]);
    const appPts = hist.apps[a.name] || [];
    charts.push(chart(`${a.name} · CPU`, "cpu", "cpu", appPts, workers, v => v.toFixed(v < 10 ? 1 : 0) + "%"));
    charts.push(chart(`${a.name} · memory`, "rss", "mem", appPts, workers, bytes));
  }
  document.getElementById("charts").replaceChildren(...charts);
  document.getElementById("window").textContent =
    `(last ${Math.round(hist.windowMs / 60000)} min, every ${hist.intervalMs / 1000}s)`;
}

function render() {
  const st = state.status;
  if (!st) return;
  renderSupervisor(st);
  renderApps(st);
  renderRollouts(st);
  renderWorkers(st);
  renderCharts();
}

function eventClass(type) {
  if (/exit|kill|stalled|failed|lost|crash|exceeded|missed|rollback|dropped/.test(type)) return "bad";
  if (/ready|online|fork|ended|restored|resumed/.test(type)) return "ok";
  return "warn";
}

function addEvent(e) {
  const who = e.app ? (e.worker ? `${e.app}/${e.worker}` : e.app) : "";
  const parts = [];
  if (e.pid) parts.push("pid " + e.pid);
  if (e.exitCode !== undefined) parts.push(e.signal ? "signal " + e.signal : "code " + e.exitCode);
  else if (e.signal) parts.push(e.signal);
  if (e.intended === false) parts.push("unexpected");
  if (e.delay) parts.push(e.delay);
  if (e.detail) parts.push(e.detail);
  const t = new Date(e.time);
  const li = el("li", { class: eventClass(e.type) },
    el("span", { class: "muted" }, t.toLocaleTimeString([], { hour12: false }) + " "),
    el("span", { class: "type" }, e.type), " ",
    el("strong", {}, who), " ", parts.join(" · "));
  const list = document.getElementById("events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

function onEvent(e) {
  addEvent(e);
  if (e.type === "exit" && e.app && e.worker) {
    // The worker shows as exited at once; the status that follows says
    // what came next.
    state.exited.set(key(e.app, e.worker), e.pid);
    if (state.status) renderWorkers(state.status);
  }
}

function onStatus(msg) {
  state.skew = msg.now - Date.now();
  state.status = msg.status;
  for (const [k, pid] of state.exited) {
    const w = msg.status.workers.find(w => key(w.app, w.id) === k);
    if (!w || w.pid !== pid) state.exited.delete(k);
  }
  render();
}

function onSample(smp) {
  const h = state.history;
  const from = smp.t - h.windowMs;
  const add = (series, name, p) => {
    const pts = series[name] || (series[name] = []);
    pts.push(p);
    while (pts.length && pts[0].t < from) pts.shift();
  };
  for (const [name, p] of Object.entries(smp.apps || {})) add(h.apps, name, p);
  for (const [k, p] of Object.entries(smp.workers || {})) add(h.workers, k, p);
  for (const series of [h.apps, h.workers]) {
    for (const k of Object.keys(series)) {
      if (!series[k].length || series[k][series[k].length - 1].t < from) delete series[k];
    }
  }
}

async function loadHistory() {
  try {
    const r = await fetch("/api/history", { cache: "no-store" });
    if (r.ok) state.history = await r.json();
  } catch (err) {
    // The stream's samples fill the charts anyway.
  }
  render();
}

function setConnected(up) {
  const c = document.getElementById("conn");
  c.textContent = up ? "live" : "reconnecting…";
  c.className = "conn " + (up ? "up" : "down");
}

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("open", () => { setConnected(true); loadHistory(); });
  es.addEventListener("error", () => setConnected(false));
  es.addEventListener("status", m => onStatus(JSON.parse(m.data)));
  es.addEventListener("sample", m => onSample(JSON.parse(m.data)));
  es.addEventListener("event", m => onEvent(JSON.parse(m.data)));
  es.addEventListener("lost", m => addEvent({ time: new Date().toISOString(), type: "events-lost",
    detail: JSON.parse(m.data).lost + " events missed by this page" }));
}

// Uptimes and countdowns move between two statuses.
setInterval(() => { if (state.status) { renderSupervisor(state.status); renderWorkers(state.status); } }, 1000);
connect();
