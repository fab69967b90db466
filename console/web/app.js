// The operations console: login with a unit token, then the map and work list (live over
// /api/stream), time travel over the incident event log, and the 考核 indicators.
//
// window.cbConsole exposes what the page shows (ids listed, the time travelled to, when each
// incident first appeared) for the browser tests and the latency benchmark; nothing reads it back.

import { Api, ApiError } from "./api.js";
import { CityMap, dueClass, esc } from "./map.js";
import * as t from "./i18n.js";
import { renderIndicators } from "./indicators.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "citybrain.token";

const status = {
  ready: false, live: false, mode: "live", at: null, shown: [], seen: {}, communities: 0, errors: [],
  // Where the page's time goes (renders, re-reads, events): read by scripts/console-bench.sh.
  perf: { renders: 0, render_ms: 0, render_max_ms: 0, rereads: 0, reread_ms: 0, events: 0, cells_events: 0, cells: 0, cells_ms: 0, longtask_ms: 0 },
};
try {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) status.perf.longtask_ms += e.duration;
  }).observe({ type: "longtask" });
} catch {
  // no long-task timing in this browser
}
window.cbConsole = status;

const state = {
  api: null,
  map: null,
  config: {},
  me: null,
  units: new Map(), // code → unit
  live: new Map(), // incident_id → Incident, open ones
  liveCells: [],
  history: null, // [Incident] while time travelling
  historyAt: null,
  now: 0, // the engine's time as last seen (ms): deadlines are measured in event time
  firstEventAt: null,
  selected: null,
  filters: { level: "", unit: "", department: "", severity: "" },
  stream: null,
  timers: [],
};

window.addEventListener("error", (e) => status.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => status.errors.push(String(e.reason)));

main();

async function main() {
  try {
    state.config = await (await fetch("/config.json", { cache: "no-store" })).json();
  } catch {
    state.config = {};
  }
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    login($("token").value.trim());
  });
  $("logout").addEventListener("click", () => logout(""));
  if (sessionStorage.getItem("citybrain.message")) {
    sessionStorage.removeItem("citybrain.message");
    $("login-error").textContent = "登录已失效，请重新登录 Session expired: log in again";
  }
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) login(saved);
  else $("token").focus();
}

async function login(token) {
  if (!token) return;
  $("login-error").textContent = "";
  const api = new Api(token);
  try {
    state.me = await api.get("/api/me");
  } catch (e) {
    $("login-error").textContent =
      e instanceof ApiError && e.status === 401 ? "令牌无效 Invalid token" : `无法连接 Cannot reach the server (${e.message})`;
    sessionStorage.removeItem(TOKEN_KEY);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.api = api;
  $("login").hidden = true;
  $("app").hidden = false;
  $("me").textContent = `${state.me.name} · ${t.level(state.me.level)}`;
  $("me").dataset.unit = state.me.unit;
  await start();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  // A fresh page drops every timer, stream and layer of the previous login.
  if (message) sessionStorage.setItem("citybrain.message", message);
  location.reload();
}

async function start() {
  const api = state.api;
  state.map = new CityMap($("map"), state.config, select);
  status.map = state.map; // for the browser tests and debugging
  wireControls();
  try {
    const [units, jurisdictions, cells, incidents, first] = await Promise.all([
      api.get("/api/units"),
      api.get("/api/jurisdictions"),
      api.get("/api/cells"),
      api.get("/api/incidents", { state: "open" }),
      api.get("/api/events", { after: 0, limit: 1 }),
    ]);
    state.units = new Map(units.map((u) => [u.code, u]));
    state.map.setJurisdictions(jurisdictions);
    status.communities = state.map.communities;
    state.liveCells = cells.cells || [];
    observe(cells.at);
    state.map.setCells(state.liveCells);
    setLive(incidents);
    if (first && first.length) state.firstEventAt = Date.parse(first[0].at);
    fillFilters();
    render();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return logout("expired");
    status.errors.push(String(e));
    $("list-head").textContent = `加载失败 Loading failed: ${e.message}`;
  }
  openStream();
  state.timers.push(setInterval(tick, 1000));
  state.timers.push(setInterval(blink, 500));
  status.ready = true;
}

// ---- live data -------------------------------------------------------------------------------

function observe(iso) {
  const ms = Date.parse(iso);
  if (Number.isFinite(ms) && ms > state.now) state.now = ms;
}

function setLive(incidents) {
  state.live = new Map(incidents.map((i) => [i.incident_id, i]));
  for (const i of incidents) observe(i.last_seen);
}

let refreshing = false;
let refreshAgain = false;
/** Re-reads the open incidents; calls arriving meanwhile coalesce into one more read. */
async function refreshLive() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    do {
      refreshAgain = false;
      const started = performance.now();
      setLive(await state.api.get("/api/incidents", { state: "open" }));
      const fetched = performance.now();
      fillDepartments();
      if (!state.history) render();
      status.perf.rereads++;
      status.perf.reread_ms += fetched - started;
    } while (refreshAgain);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) logout("expired");
  } finally {
    refreshing = false;
  }
}

const STATE_AFTER = {
  opened: "open", dispatched: "open", returned: "open", acknowledged: "acknowledged",
  handled: "handled", closed: "closed", rework: "rework", voided: "voided",
};

/**
 * Applies an incident event to the page's copy: events carry the state, level, unit, deadline,
 * location and count after them, and `opened` events the title and department, so the map and
 * the list change without another request. An event about an incident the page does not hold
 * (opened before a reconnect, say) fetches that one incident; a full re-read 5 s after each
 * burst (scheduleRefresh) reconciles anything else.
 */
function applyEvent(ev) {
  const id = ev.incident_id;
  const current = state.live.get(id);
  const next = ev.state ?? STATE_AFTER[ev.type] ?? current?.state ?? "open";
  // The stream sends only what the caller may see (held in its subtree, or placed there).
  if (next === "closed" || next === "voided") {
    state.live.delete(id);
  } else {
    if (!current && ev.type !== "opened") fetchOne(id);
    const moved = ["escalated", "dispatched", "returned"].includes(ev.type);
    state.live.set(id, {
      title: ev.opening?.title ?? ev.title ?? ev.rule,
      department: ev.opening?.department ?? "",
      opened_at: ev.at,
      ...current,
      since: moved ? ev.at : current?.since ?? ev.at,
      incident_id: id,
      state: next,
      level: ev.level,
      unit: ev.unit,
      unit_name: ev.unit_name ?? current?.unit_name ?? ev.unit,
      due_at: ev.due_at,
      severity: ev.severity,
      rule: ev.rule,
      key: ev.key,
      location: ev.location ?? current?.location,
      count: ev.count ?? current?.count ?? 1,
      overdue: ev.type === "overdue" ? true : moved || ev.type === "extended" ? false : current?.overdue ?? false,
    });
  }
  if (!state.history) scheduleRender();
}

async function fetchOne(id) {
  try {
    const inc = await state.api.get(`/api/incidents/${encodeURIComponent(id)}`);
    delete inc.timeline;
    if (["closed", "voided"].includes(inc.state)) state.live.delete(id);
    else state.live.set(id, inc);
    if (!state.history) scheduleRender();
  } catch {
    // gone or no longer visible: the next full re-read settles it
  }
}

let refreshTimer = null;
/**
 * Re-reads the open incidents 5 s after a burst of events starts (one read per 5 s at most): a
 * safety net under the events applied at once. Every second was too often for a busy city: on
 * 500 open incidents and 17 events/s the re-reads took more of the page's time than the events.
 */
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refreshLive();
  }, 5000);
}

let renderQueued = false;
/** One render per animation frame however many events arrive in it. */
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    if (!state.history) render();
  });
}

function openStream() {
  const abort = new AbortController();
  state.stream = abort;
  let connectedBefore = false;
  state.api
    .stream(
      (type, data) => {
        if (type === "incident") {
          observe(data.at);
          if (!state.firstEventAt) state.firstEventAt = Date.parse(data.at);
          status.perf.events++;
          applyEvent(data);
          scheduleRefresh();
          if (state.selected === data.incident_id && !state.history) showDetail(data.incident_id);
        } else if (type === "cells") {
          status.perf.cells_events++;
          // The whole heat layer as /api/cells has it (cells gone from it are gone).
          state.liveCells = Array.isArray(data) ? data : data.cells || [];
          if (data.at) observe(data.at);
          scheduleCells();
        } else if (type === "lagged") {
          // The server dropped events this page was too slow to take: re-read everything.
          refreshLive();
          reloadCells();
        }
      },
      (connected) => {
        status.live = connected;
        $("live").classList.toggle("on", connected);
        if (connected && connectedBefore) {
          refreshLive(); // catch up on what the gap may have hidden
          reloadCells();
        }
        connectedBefore ||= connected;
      },
      abort.signal,
    )
    .catch((e) => {
      if (e instanceof ApiError && e.status === 401) logout("expired");
    });
}

let cellsTimer = null;
/**
 * Redraws the heat layer with the latest cells 1 s after a change (one redraw per second at
 * most). The server sends the layer with every batch of alerts, that is with most new incidents:
 * redrawing it at once delayed the incident's own render behind the heat layer's on a busy
 * city (BENCHMARKS.md, the console).
 */
function scheduleCells() {
  if (cellsTimer) return;
  cellsTimer = setTimeout(() => {
    cellsTimer = null;
    if (state.history) return;
    const started = performance.now();
    state.map.setCells(state.liveCells);
    status.perf.cells++;
    status.perf.cells_ms += performance.now() - started;
  }, 1000);
}

let ticks = 0;
function reloadCells() {
  state.api.get("/api/cells").then((c) => {
    state.liveCells = c.cells || [];
    observe(c.at);
    if (!state.history) state.map.setCells(state.liveCells);
  }, () => {});
}

function tick() {
  status.now = state.now ? new Date(state.now).toISOString() : null;
  $("clock").textContent = state.now ? `${t.when(new Date(state.now).toISOString())}` : "";
  // Times left move by the minute: re-render every 5 s (rows and markers that did not change
  // are not touched).
  if (!state.history && ++ticks % 5 === 0) render();
  updateSliderLabel();
}

let blinkOn = true;
/** Overdue times and rings blink: one class on the list, one canvas on the map, twice a second. */
function blink() {
  blinkOn = !blinkOn;
  state.map.blink(blinkOn);
  $("worklist").classList.toggle("blink-off", !blinkOn);
}

// ---- rendering ---------------------------------------------------------------------------------

function shownIncidents() {
  const all = state.history ?? [...state.live.values()];
  const f = state.filters;
  return all
    .filter((i) => !f.level || i.level === f.level)
    .filter((i) => !f.unit || String(i.unit).startsWith(unitPrefix(f.unit)))
    .filter((i) => !f.department || i.department === f.department)
    .filter((i) => !f.severity || i.severity === f.severity)
    .sort((a, b) => String(a.due_at).localeCompare(String(b.due_at)) || String(a.incident_id).localeCompare(String(b.incident_id)));
}

/** A unit's subtree by its code: the code less its trailing zero groups (city 4, district 6, street 9 digits). */
function unitPrefix(code) {
  const u = state.units.get(code);
  const digits = { city: 4, district: 6, street: 9, community: 12 }[u?.level] ?? 12;
  return String(code).slice(0, digits);
}

function render() {
  const started = performance.now();
  renderNow();
  const took = performance.now() - started;
  status.perf.renders++;
  status.perf.render_ms += took;
  status.perf.render_max_ms = Math.max(status.perf.render_max_ms, took);
}

function renderNow() {
  const items = shownIncidents();
  const now = state.history ? state.historyAt : state.now || Date.now();
  state.map.setIncidents(items, now);
  renderList(items, now);
  const total = state.history ? state.history.length : state.live.size;
  $("list-head").textContent = `${state.history ? "回溯 As of " + t.when(new Date(state.historyAt).toISOString()) + " · " : ""}未结 ${total} open · 显示 ${items.length} shown`;
  const list = $("worklist");
  list.dataset.at = state.history ? new Date(state.historyAt).toISOString() : "";
  list.dataset.mode = state.history ? "history" : "live";
  status.mode = state.history ? "history" : "live";
  status.at = state.history ? new Date(state.historyAt).toISOString() : null;
  status.shown = items.map((i) => i.incident_id);
  const stamp = Date.now();
  for (const i of items) {
    status.seen[`${i.incident_id}|${i.state}|${i.level}`] ??= stamp;
    status.seen[i.incident_id] ??= stamp;
  }
}

const rows = new Map(); // incident_id → { li, signature }: rows are rebuilt only when they change

/** The work list in deadline order, touching only rows that changed or moved. */
function renderList(items, now) {
  const list = $("worklist");
  const keep = new Set();
  let previous = null;
  for (const i of items) {
    const id = i.incident_id;
    keep.add(id);
    const html = row(i, now);
    const signature = `${html}|${state.selected === id}`;
    let r = rows.get(id);
    if (!r) {
      r = { li: document.createElement("li"), signature: null };
      r.li.dataset.incidentId = id;
      rows.set(id, r);
    }
    if (r.signature !== signature) {
      r.li.dataset.unit = i.unit;
      r.li.dataset.state = i.state;
      r.li.dataset.level = i.level;
      r.li.classList.toggle("selected", state.selected === id);
      r.li.innerHTML = html;
      r.signature = signature;
    }
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (expected !== r.li) list.insertBefore(r.li, expected);
    previous = r.li;
  }
  for (const [id, r] of rows) {
    if (!keep.has(id)) {
      r.li.remove();
      rows.delete(id);
    }
  }
}

function row(i, now) {
  const due = Date.parse(i.due_at);
  const left = Number.isFinite(due) ? due - now : 0;
  const cls = dueClass(i, now) === "overdue" ? "overdue due-red" : dueClass(i, now);
  return `<span class="dot sev-${esc(i.severity)}" title="${esc(t.severity(i.severity))}"></span>` +
    `<span class="title">${esc(i.title || i.rule)}</span>` +
    `<span class="left ${cls}">${Number.isFinite(due) ? t.timeLeft(left) : ""}</span>` +
    `<span class="meta">${esc(i.unit_name || i.unit)} · ${t.levelZh(i.level)} · ${esc(t.state(i.state))} · ${esc(i.department || "")}${i.count > 1 ? ` · ×${i.count}` : ""}</span>`;
}

function fillFilters() {
  const opt = (value, label) => `<option value="${esc(value)}">${esc(label)}</option>`;
  $("f-level").innerHTML = opt("", "全部层级 all levels") + t.LEVELS.map((l) => opt(l, t.level(l))).join("");
  $("f-severity").innerHTML = opt("", "全部等级 all severities") + t.SEVERITIES.map((s) => opt(s, t.severity(s))).join("");
  const units = [...state.units.values()].sort((a, b) => String(a.code).localeCompare(String(b.code)));
  $("f-unit").innerHTML = opt("", "全部单位 all units") + units.map((u) => opt(u.code, `${"  ".repeat(t.LEVELS.length - 1 - t.LEVELS.indexOf(u.level))}${u.name} (${t.levelZh(u.level)})`)).join("");
  fillDepartments();
}

function fillDepartments() {
  const select = $("f-department");
  const current = select.value;
  const departments = new Set([...state.live.values()].map((i) => i.department).filter(Boolean));
  if (current) departments.add(current);
  const wanted = ["", ...[...departments].sort()].join("|");
  if (select.dataset.options === wanted) return;
  select.dataset.options = wanted;
  select.innerHTML = `<option value="">全部部门 all departments</option>` + [...departments].sort().map((d) => `<option value="${esc(d)}">${esc(d)}</option>`).join("");
  select.value = current;
}

// ---- the incident panel ----------------------------------------------------------------------------

const ACTIONS_BY_STATE = {
  open: ["ack", "return", "extend", "void"],
  acknowledged: ["handled", "return", "extend", "void"],
  rework: ["ack", "handled", "extend"],
  handled: ["verify_ok", "verify_fail"],
  closed: [],
  voided: [],
};

function select(id) {
  state.selected = id;
  state.map.select(id);
  render();
  showDetail(id);
}

async function showDetail(id) {
  const panel = $("detail");
  panel.hidden = false;
  let inc;
  try {
    inc = await state.api.get(`/api/incidents/${encodeURIComponent(id)}`);
  } catch (e) {
    panel.innerHTML = `<p class="error">${esc(e.message)}</p>`;
    return;
  }
  if (state.selected !== id) return;
  const actions = state.history ? [] : (ACTIONS_BY_STATE[inc.state] ?? Object.keys(ACTIONS_BY_STATE.open));
  const timeline = (inc.timeline || [])
    .filter((ev) => !state.history || Date.parse(ev.at) <= state.historyAt)
    .map((ev) => `<li data-type="${esc(ev.type)}"><time>${t.when(ev.at)}</time>${esc(t.eventType(ev.type))} · ${t.levelZh(ev.level)} ${esc(state.units.get(ev.unit)?.name ?? ev.unit)}${ev.actor ? ` · ${esc(state.units.get(ev.actor)?.name ?? ev.actor)}` : ""}${ev.comment ? ` · “${esc(ev.comment)}”` : ""}</li>`)
    .join("");
  panel.dataset.incidentId = id;
  panel.dataset.state = inc.state;
  panel.innerHTML =
    `<h2><span class="dot sev-${esc(inc.severity)}"></span> ${esc(inc.title || inc.rule)}</h2>` +
    `<dl><dt>状态 state</dt><dd class="state">${esc(t.state(inc.state))}${inc.overdue ? " · 超时 overdue" : ""}</dd>` +
    `<dt>等级 severity</dt><dd>${esc(t.severity(inc.severity))}</dd>` +
    `<dt>责任单位 unit</dt><dd>${esc(inc.unit_name || inc.unit)} (${esc(t.level(inc.level))})</dd>` +
    `<dt>部门 department</dt><dd>${esc(inc.department)}</dd>` +
    `<dt>立案 opened</dt><dd>${t.when(inc.opened_at)}</dd>` +
    `<dt>时限 due</dt><dd>${t.when(inc.due_at)}</dd>` +
    `<dt>告警 alerts</dt><dd>${esc(inc.count)} · ${esc(inc.key)}</dd>` +
    `<dt>编号 id</dt><dd><small>${esc(inc.incident_id)}</small></dd></dl>` +
    (actions.length
      ? `<div class="actions">${actions.map((a) => `<button type="button" data-action="${a}">${esc(t.action(a))}</button>`).join("")}` +
        `<button type="button" data-action="comment">${esc(t.action("comment"))}</button>` +
        `<input id="action-comment" placeholder="说明 comment">` +
        (actions.includes("extend") ? `<input id="action-due" type="datetime-local" step="60" aria-label="新时限 new deadline">` : "") +
        `</div><p id="action-error" class="error" role="alert"></p>`
      : "") +
    `<h3>过程 <small>timeline</small></h3><ol class="timeline">${timeline}</ol>`;
  for (const button of panel.querySelectorAll("button[data-action]")) {
    button.addEventListener("click", () => act(id, button.dataset.action));
  }
}

async function act(id, action) {
  const body = { action };
  const comment = $("action-comment")?.value.trim();
  if (comment) body.comment = comment;
  if (action === "extend") {
    const local = $("action-due")?.value;
    if (!local) {
      $("action-error").textContent = "请选择新时限 Pick the new deadline";
      return;
    }
    body.due_at = new Date(local).toISOString();
  }
  try {
    const updated = await state.api.post(`/api/incidents/${encodeURIComponent(id)}/actions`, body);
    if (updated && ["closed", "voided"].includes(updated.state)) state.live.delete(id);
    else if (updated) state.live.set(id, updated);
    render();
    showDetail(id);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return logout("expired");
    $("action-error").textContent = e.message;
  }
}

// ---- controls, time travel, indicators ---------------------------------------------------------

function wireControls() {
  for (const [id, key] of [["f-level", "level"], ["f-unit", "unit"], ["f-department", "department"], ["f-severity", "severity"]]) {
    $(id).addEventListener("change", () => {
      state.filters[key] = $(id).value;
      render();
    });
  }
  $("worklist").addEventListener("click", (e) => {
    const li = e.target.closest("li[data-incident-id]");
    if (!li) return;
    select(li.dataset.incidentId);
    state.map.panTo((state.history ?? [...state.live.values()]).find((i) => i.incident_id === li.dataset.incidentId));
  });
  const slider = $("tt-slider");
  let debounce = null;
  slider.addEventListener("input", () => {
    stopPlay();
    clearTimeout(debounce);
    debounce = setTimeout(() => travel(sliderTime()), 120);
  });
  slider.addEventListener("change", () => {
    clearTimeout(debounce);
    travel(sliderTime());
  });
  $("tt-live").addEventListener("click", goLive);
  $("tt-play").addEventListener("click", togglePlay);
  $("tab-map").addEventListener("click", () => showTab("map"));
  $("tab-indicators").addEventListener("click", () => showTab("indicators"));
  $("ind-refresh").addEventListener("click", loadIndicators);
  $("ind-day").addEventListener("change", loadIndicators);
}

/** The slider spans the first event to the engine's time when time travel began. */
function range() {
  const end = state.travelEnd ?? (state.now || Date.now());
  const start = Math.min(state.firstEventAt ?? end - 3_600_000, end);
  return [start, end];
}

function sliderTime() {
  const [start, end] = range();
  const v = Number($("tt-slider").value) / Number($("tt-slider").max);
  // Whole milliseconds: the API's `at` and the page's label name the same instant.
  return Math.round(start + (end - start) * v);
}

let travelSeq = 0;
async function travel(at) {
  if (!state.travelEnd) state.travelEnd = state.now || Date.now();
  const seq = ++travelSeq;
  const iso = new Date(at).toISOString();
  let incidents;
  try {
    incidents = await state.api.get("/api/incidents", { state: "open", at: iso });
  } catch (e) {
    $("tt-label").textContent = e.message;
    return;
  }
  if (seq !== travelSeq) return; // a later position was asked for meanwhile
  state.history = incidents;
  state.historyAt = at;
  $("tt-live").classList.remove("active");
  document.body.classList.add("history");
  $("tt-label").textContent = `回溯 ${t.when(iso)}`;
  $("tt-label").dataset.at = iso;
  // The heat layer as it stood: open incidents per cell at that time.
  const perCell = new Map();
  for (const i of incidents) if (i.location?.cell) perCell.set(i.location.cell, (perCell.get(i.location.cell) ?? 0) + 1);
  state.map.setCells([...perCell].map(([cell, value]) => ({ cell, value })));
  render();
  if (state.selected) showDetail(state.selected);
}

function goLive() {
  stopPlay();
  travelSeq++;
  state.history = null;
  state.historyAt = null;
  state.travelEnd = null;
  $("tt-slider").value = $("tt-slider").max;
  $("tt-live").classList.add("active");
  document.body.classList.remove("history");
  delete $("tt-label").dataset.at;
  state.map.setCells(state.liveCells);
  updateSliderLabel();
  refreshLive();
}

function updateSliderLabel() {
  if (!state.history) $("tt-label").textContent = `实时 Live · ${state.now ? t.when(new Date(state.now).toISOString()) : ""}`;
}

let playing = null;
function togglePlay() {
  if (playing) return stopPlay();
  const slider = $("tt-slider");
  if (Number(slider.value) >= Number(slider.max)) {
    state.travelEnd = state.now || Date.now();
    slider.value = 0;
  }
  $("tt-play").classList.add("active");
  const step = async () => {
    if (!playing) return;
    await travel(sliderTime());
    if (Number(slider.value) >= Number(slider.max)) return stopPlay();
    slider.value = Math.min(Number(slider.max), Number(slider.value) + 5);
    playing = setTimeout(step, 200);
  };
  playing = setTimeout(step, 0);
}

function stopPlay() {
  if (playing) clearTimeout(playing);
  playing = null;
  $("tt-play").classList.remove("active");
}

function showTab(name) {
  $("tab-map").classList.toggle("active", name === "map");
  $("tab-indicators").classList.toggle("active", name === "indicators");
  $("view-map").hidden = name !== "map";
  $("timebar").hidden = name !== "map";
  $("view-indicators").hidden = name !== "indicators";
  if (name === "map") state.map.map.invalidateSize();
  else loadIndicators(); // no day picked: the server's today (the calendar's local day)
}

async function loadIndicators() {
  try {
    const rows = await state.api.get("/api/indicators", { day: $("ind-day").value });
    renderIndicators(rows, $("ind-charts"), $("ind-table"));
  } catch (e) {
    $("ind-charts").innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}
