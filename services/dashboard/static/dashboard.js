// The dashboard page: panels for one page of tickers (search + pages keep 500 tickers readable), each a
// uPlot chart fed by the read API once and by /api/stream after that. Text from the server is set with
// textContent only, never as HTML.
"use strict";

const PAGE_SIZE = 12;
const MINUTES = 390;
// minutes= is data time: five calendar days hold the last 390 trading minutes across a night or a weekend.
const FETCH_MINUTES = 5 * 1440;
const PORTFOLIO = "portfolio";
// The trainer's forecasts of the portfolio's value come as this series (services/dashboard/queries.py).
const PORTFOLIO_SERIES = "_PORTFOLIO";
const REDRAW_MS = 250;

const state = {
  tickers: [],
  known: new Set(),
  filter: "",
  page: 0,
  horizon: "",
  horizons: new Set(),
  panels: new Map(),
  dirty: new Set(),
  redrawTimer: null,
};

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function minutesBetween(a, b) {
  return Math.round((Date.parse(b) - Date.parse(a)) / 60000);
}

// Trading minutes side by side: a session's first minute (a new date) carries its date, the others HH:MM.
function sessionLabels(keys) {
  return keys.map((ts, i) =>
    i && keys[i - 1].slice(0, 10) === ts.slice(0, 10) ? ts.slice(11, 16) : `${ts.slice(5, 10)} ${ts.slice(11, 16)}`,
  );
}

// --- One ticker's panel ----------------------------------------------------------------------------
class Panel {
  constructor(ticker) {
    this.ticker = ticker;
    this.bars = new Map(); // ts -> bar
    this.preds = new Map(); // ts|horizon -> prediction
    this.root = el("section", { class: "panel", "data-ticker": ticker, "data-newest-ts": "" });
    const title = el("h2");
    title.append(el("span", {}, ticker === PORTFOLIO ? "portfolio (equal weight, 100 = first minute)" : ticker));
    this.meta = el("span", { class: "meta" }, "loading");
    title.append(this.meta);
    this.chartBox = el("div", { class: "chart" });
    this.root.append(title, this.chartBox);
    this.chart = null;
    this.labels = [];
  }

  addBar(bar) {
    this.bars.set(bar.ts, bar);
  }

  addPrediction(p) {
    this.preds.set(`${p.ts}|${p.horizon_min}`, p);
    state.horizons.add(p.horizon_min);
  }

  async load() {
    const q = encodeURIComponent(this.ticker);
    const bars = await getJSON(`/api/bars?ticker=${q}&minutes=${FETCH_MINUTES}&last=${MINUTES}`);
    // What the stream brought while these were read is newer: kept.
    for (const bar of bars.bars) if (!this.bars.has(bar.ts)) this.addBar(bar);
    await this.loadPredictions(q, bars.bars.length ? bars.bars[0].ts : null);
  }

  async loadPredictions(series, oldest) {
    const span = oldest ? `since=${encodeURIComponent(oldest)}` : `minutes=${MINUTES}`;
    const preds = await getJSON(`/api/predictions?ticker=${series}&${span}`);
    for (const p of preds.predictions) if (!this.preds.has(`${p.ts}|${p.horizon_min}`)) this.addPrediction(p);
    refreshHorizons();
  }

  forecasts() {
    return this.preds.values();
  }

  trim() {
    const keys = [...this.bars.keys()].sort();
    for (const ts of keys.slice(0, Math.max(0, keys.length - MINUTES))) this.bars.delete(ts);
    const oldest = keys[Math.max(0, keys.length - MINUTES)];
    for (const [key, p] of this.preds) if (oldest && p.ts < oldest) this.preds.delete(key);
  }

  data() {
    this.trim();
    const keys = [...this.bars.keys()].sort();
    const n = keys.length;
    const newest = keys[n - 1];
    const index = new Map(keys.map((ts, i) => [ts, i]));
    // Ahead: per predicted minute, the forecast made last (the newest information), at its trading
    // minute after the newest bar.
    const ahead = new Map();
    let reach = 0;
    const wanted = state.horizon === "" ? smallestHorizon(this.preds) : Number(state.horizon);
    const behind = new Array(n).fill(null);
    for (const p of this.forecasts()) {
      if (newest && p.ts > newest) {
        const k = minutesBetween(newest, p.ts);
        const held = ahead.get(k);
        if (!held || held.based_on_ts < p.based_on_ts) ahead.set(k, p);
        reach = Math.max(reach, k);
      } else if (p.horizon_min === wanted && index.has(p.ts)) {
        behind[index.get(p.ts)] = p.yhat;
      }
    }
    const size = n + reach;
    const x = Array.from({ length: size }, (_, i) => i);
    const close = keys.map((ts) => this.bars.get(ts).close).concat(new Array(reach).fill(null));
    const yhat = new Array(size).fill(null);
    const q10 = new Array(size).fill(null);
    const q90 = new Array(size).fill(null);
    if (n && reach) {
      const last = close[n - 1];
      yhat[n - 1] = q10[n - 1] = q90[n - 1] = last;
    }
    for (const [k, p] of ahead) {
      yhat[n - 1 + k] = p.yhat;
      q10[n - 1 + k] = p.q10 ?? p.yhat;
      q90[n - 1 + k] = p.q90 ?? p.yhat;
    }
    this.labels = sessionLabels(keys);
    this.oldest = keys[0] || "";
    this.newest = newest || "";
    this.horizonShown = wanted;
    this.reach = reach;
    return [x, close, behind.concat(new Array(reach).fill(null)), yhat, q10, q90];
  }

  draw() {
    const data = this.data();
    this.root.setAttribute("data-newest-ts", this.newest);
    this.root.setAttribute("data-oldest-ts", this.oldest);
    this.root.setAttribute("data-ahead", String(this.reach));
    const bar = this.bars.get(this.newest);
    this.meta.textContent = bar
      ? `${this.newest.replace("T", " ").slice(0, 16)} UTC · ${bar.close.toFixed(2)}${bar.final ? "" : " (in progress)"}`
      : "no bars yet";
    if (!this.chart) {
      this.chart = new uPlot(this.options(), data, this.chartBox);
      this.root.setAttribute("data-chart", "drawn");
      // The grid sets the panel's width after the first layout, and again when the window is resized.
      this.resizer = new ResizeObserver(() => {
        const width = this.chartBox.clientWidth;
        if (width && Math.abs(width - this.chart.width) > 2) this.chart.setSize({ width, height: 230 });
      });
      this.resizer.observe(this.chartBox);
    } else {
      this.chart.setData(data);
    }
  }

  options() {
    const panel = this;
    const label = (i) => {
      if (i < panel.labels.length) return panel.labels[i] ?? "";
      return `+${i - panel.labels.length + 1}m`;
    };
    return {
      width: Math.max(300, this.chartBox.clientWidth || 420),
      height: 230,
      scales: { x: { time: false } },
      legend: { show: true, live: false },
      axes: [
        { values: (u, splits) => splits.map((i) => label(Math.round(i))) },
        { size: 60 },
      ],
      series: [
        {},
        { label: "close", stroke: "#1f77b4", width: 1.5 },
        { label: `forecast h=${this.horizonShown ?? 1}`, stroke: "#ff7f0e", width: 1, points: { show: false } },
        // Ahead, the horizons are a few minutes apart (1, 5, 15, 30): joined across the minutes between.
        { label: "ahead", stroke: "#d62728", width: 1.5, dash: [4, 3], spanGaps: true, points: { show: true, size: 4 } },
        { label: "q10", stroke: "rgba(214,39,40,0.35)", width: 1, spanGaps: true },
        { label: "q90", stroke: "rgba(214,39,40,0.35)", width: 1, spanGaps: true },
      ],
      bands: [{ series: [5, 4], fill: "rgba(214,39,40,0.15)" }],
    };
  }

  destroy() {
    if (this.resizer) this.resizer.disconnect();
    if (this.chart) this.chart.destroy();
    this.root.remove();
  }
}

function smallestHorizon(preds) {
  let best = Infinity;
  for (const p of preds.values()) best = Math.min(best, p.horizon_min);
  return best === Infinity ? 1 : best;
}

// --- The portfolio panel: an equal-weight index of the tickers' closes -------------------------------
// The same span as a ticker's panel (the newest 390 trading minutes, sessions side by side), and the
// trainer's forecasts of the portfolio's value (series _PORTFOLIO) with their ranges where it publishes them.
class PortfolioPanel extends Panel {
  constructor() {
    super(PORTFOLIO);
    this.rows = new Map(); // ts -> {ticker: close}
  }

  async load() {
    const body = await getJSON(`/api/portfolio?minutes=${FETCH_MINUTES}&last=${MINUTES}`);
    for (const row of body.rows) this.rows.set(row.ts, { ...row.close, ...this.rows.get(row.ts) });
    await this.loadPredictions(PORTFOLIO_SERIES, body.rows.length ? body.rows[0].ts : null);
  }

  addBar(bar) {
    const row = this.rows.get(bar.ts) || {};
    row[bar.ticker] = bar.close;
    this.rows.set(bar.ts, row);
  }

  // The trainer's value of the portfolio is 100 at the first minute it holds, this index at the first minute
  // shown: its forecasts are drawn scaled by the ratio of the two at the newest minute that has both this
  // index and a forecast (of the shortest horizon; a forecast stands in for the trainer's value there, off by
  // that forecast's error, a small part of the ranges drawn).
  forecasts() {
    let anchor = null;
    for (const p of this.preds.values()) {
      if (p.ts > this.newestRow || !this.bars.has(p.ts)) continue;
      if (!anchor || p.ts > anchor.ts || (p.ts === anchor.ts && p.horizon_min < anchor.horizon_min)) anchor = p;
    }
    if (!anchor) return [];
    const ratio = this.bars.get(anchor.ts).close / anchor.yhat;
    const scale = (v) => (v === null || v === undefined ? v : v * ratio);
    return [...this.preds.values()].map((p) => ({ ...p, yhat: scale(p.yhat), q10: scale(p.q10), q90: scale(p.q90) }));
  }

  data() {
    const keys = [...this.rows.keys()].sort().slice(-MINUTES);
    for (const ts of [...this.rows.keys()]) if (ts < keys[0]) this.rows.delete(ts);
    const base = {};
    const carried = {};
    this.bars = new Map();
    for (const ts of keys) {
      Object.assign(carried, this.rows.get(ts));
      let sum = 0;
      let count = 0;
      for (const [ticker, close] of Object.entries(carried)) {
        if (!(ticker in base)) base[ticker] = close;
        sum += (100 * close) / base[ticker];
        count += 1;
      }
      if (count) this.bars.set(ts, { ts, close: sum / count, final: true });
    }
    this.newestRow = keys[keys.length - 1] || "";
    return super.data();
  }
}

// --- Pages, search, the event stream ---------------------------------------------------------------
function visibleTickers() {
  const f = state.filter.toUpperCase();
  return state.tickers.filter((t) => t.includes(f));
}

async function showPage() {
  const matching = visibleTickers();
  const pages = Math.max(1, Math.ceil(matching.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const shown = [PORTFOLIO, ...matching.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE)];
  document.getElementById("pageinfo").textContent =
    `${state.page + 1} / ${pages} (${matching.length} of ${state.tickers.length} tickers)`;
  for (const [ticker, panel] of state.panels) {
    if (!shown.includes(ticker)) {
      panel.destroy();
      state.panels.delete(ticker);
    }
  }
  const grid = document.getElementById("grid");
  const loading = [];
  shown.forEach((ticker, i) => {
    let panel = state.panels.get(ticker);
    if (!panel) {
      panel = ticker === PORTFOLIO ? new PortfolioPanel() : new Panel(ticker);
      state.panels.set(ticker, panel);
      loading.push(panel.load().then(() => markDirty(ticker)));
    }
    if (grid.children[i] !== panel.root) grid.insertBefore(panel.root, grid.children[i] || null);
  });
  await Promise.all(loading);
}

function markDirty(ticker) {
  state.dirty.add(ticker);
  if (state.redrawTimer === null) {
    state.redrawTimer = setTimeout(() => {
      state.redrawTimer = null;
      for (const t of state.dirty) state.panels.get(t)?.draw();
      state.dirty.clear();
    }, REDRAW_MS);
  }
}

async function loadTickers() {
  const list = await getJSON("/api/tickers");
  state.tickers = list.map((t) => t.ticker);
  state.known = new Set(state.tickers);
}

function onEvents(events) {
  let unknown = false;
  for (const ev of events) {
    const series = ev.ticker === PORTFOLIO_SERIES;
    if (!series && !state.known.has(ev.ticker)) unknown = true;
    const panel = state.panels.get(series ? PORTFOLIO : ev.ticker);
    if (ev.kind === "bar") {
      const portfolio = state.panels.get(PORTFOLIO);
      if (portfolio) {
        portfolio.addBar(ev);
        markDirty(PORTFOLIO);
      }
      if (panel) panel.addBar(ev);
    } else if (panel) {
      panel.addPrediction(ev);
    }
    if (panel) markDirty(panel.ticker);
  }
  if (unknown) loadTickers().then(showPage).catch(report);
}

function connect() {
  const source = new EventSource("/api/stream");
  source.addEventListener("batch", (e) => onEvents(JSON.parse(e.data).events));
  // EventSource reconnects by itself; what was missed meanwhile is read again from the API.
  source.addEventListener("open", () => {
    if (state.connectedOnce) {
      for (const panel of state.panels.values()) panel.load().then(() => markDirty(panel.ticker));
    }
    state.connectedOnce = true;
  });
}

function refreshHorizons() {
  const select = document.getElementById("horizon");
  const have = new Set([...select.options].map((o) => o.value));
  for (const h of [...state.horizons].sort((a, b) => a - b)) {
    if (!have.has(String(h))) select.append(el("option", { value: String(h) }, `${h} min`));
  }
}

// --- The header: health and scores -------------------------------------------------------------------
async function loadHealth() {
  const body = await getJSON("/api/health");
  const box = document.getElementById("health");
  box.replaceChildren();
  for (const [name, s] of Object.entries(body.services)) {
    const status = s.ready === true ? "ready" : s.ready === false ? "not ready" : "no answer";
    const lag = s.lag === null ? "" : ` · lag ${s.lag}`;
    box.append(el("span", { class: `svc ${s.ready ? "ready" : "down"}` }, `${name}: ${status}${lag}`));
  }
  const d = body.dashboard;
  const lag = d.lag === null ? "" : ` · lag ${d.lag}`;
  box.append(
    el("span", { class: `svc ${d.ready ? "ready" : "down"}` }, `dashboard: ${d.ready ? "ready" : "starting"}${lag}`),
  );
}

async function loadScores() {
  const body = await getJSON("/api/scores");
  const table = document.getElementById("scores");
  table.replaceChildren();
  const head = el("tr");
  for (const c of body.columns) head.append(el("th", {}, c.title));
  table.append(head);
  if (!body.text.length) {
    const row = el("tr");
    row.append(el("td", { colspan: String(body.columns.length) }, "no scores yet"));
    table.append(row);
  }
  for (const cells of body.text) {
    const row = el("tr");
    for (const text of cells) row.append(el("td", {}, text));
    table.append(row);
  }
  document.getElementById("scores-note").textContent = body.note;
}

function report(error) {
  // A failed poll is shown, not thrown: the next one may succeed (a service restarting).
  document.getElementById("pageinfo").textContent = `(${error.message})`;
}

function every(ms, fn) {
  fn().catch(report);
  setInterval(() => fn().catch(report), ms);
}

async function main() {
  const select = document.getElementById("horizon");
  select.append(el("option", { value: "" }, "shortest"));
  select.addEventListener("change", () => {
    state.horizon = select.value;
    for (const t of state.panels.keys()) markDirty(t);
  });
  document.getElementById("search").addEventListener("input", (e) => {
    state.filter = e.target.value.trim();
    state.page = 0;
    showPage().catch(report);
  });
  document.getElementById("prev").addEventListener("click", () => {
    state.page = Math.max(0, state.page - 1);
    showPage().catch(report);
  });
  document.getElementById("next").addEventListener("click", () => {
    state.page += 1;
    showPage().catch(report);
  });
  connect();
  await loadTickers();
  await showPage();
  every(5000, loadHealth);
  every(30000, loadScores);
  setInterval(() => loadTickers().catch(report), 30000);
}

main().catch(report);
