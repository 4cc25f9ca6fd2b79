// GRACE dashboard: times in the viewer's zone, and the charts. Pages read fine without this
// file (times are then in UTC); htmx and its SSE extension keep the live regions fresh.
"use strict";

// Times: the markup carries UTC (shown on hover too); show each in the viewer's zone.
function localiseTimes(root) {
  for (const el of root.querySelectorAll("time[data-local]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) { el.textContent = at.toLocaleString(); }
  }
}

// Charts: uPlot over /charts/data (the server's counters) and /charts/series (one series).
const palette = ["#0969da", "#1a7f37", "#cf222e", "#9a6700", "#8250df"];

function chartWidth(el) { return Math.max(320, el.clientWidth || 800); }

function draw(el, title, data, series) {
  el.replaceChildren();
  if (data[0].length < 2) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "No data yet: the first points appear a few seconds after the server starts.";
    el.append(p);
    return;
  }
  const opts = {
    title, width: chartWidth(el), height: 240,
    series: [{}].concat(series.map((s, i) => Object.assign({ stroke: palette[i % palette.length], width: 2 }, s))),
    axes: [{}, { size: 60 }],
  };
  new uPlot(opts, data, el);
}

async function fetchJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) { throw new Error(url + ": " + response.status); }
  return response.json();
}

async function drawCounters() {
  const d = await fetchJson("/charts/data");
  const el = (name) => document.querySelector('[data-chart="' + name + '"]');
  if (el("events")) { draw(el("events"), "", [d.t, d.events_per_s], [{ label: "events/s" }]); }
  if (el("runs")) {
    draw(el("runs"), "", [d.t, d.runs_succeeded, d.runs_failed, d.alarms],
      [{ label: "succeeded" }, { label: "failed" }, { label: "anomaly alarms" }]);
  }
  if (el("latency")) {
    draw(el("latency"), "", [d.t, d.start_p50_ms, d.start_p95_ms, d.run_p95_ms],
      [{ label: "start p50 (ms)" }, { label: "start p95 (ms)" }, { label: "run p95 (ms)" }]);
  }
}

async function drawSeries(el) {
  const d = await fetchJson("/charts/series?series=" + encodeURIComponent(el.dataset.series));
  const parts = [[d.t, d.value, d.score]];
  const series = [{ label: "value" }, { label: "anomaly score", scale: "score" }];
  for (const [horizon, f] of Object.entries(d.forecasts)) {
    parts.push([f.t, f.value, f.low, f.high]);
    series.push({ label: "forecast " + horizon, dash: [6, 4] },
      { label: "low " + horizon, dash: [2, 4] }, { label: "high " + horizon, dash: [2, 4] });
  }
  const data = parts.length > 1 ? uPlot.join(parts) : parts[0];
  el.replaceChildren();
  new uPlot({
    width: chartWidth(el), height: 300,
    scales: { score: { range: [0, 1] } },
    series: [{}].concat(series.map((s, i) => Object.assign({ stroke: palette[i % palette.length], width: 2 }, s))),
    axes: [{}, { size: 60 }, { scale: "score", side: 1, grid: { show: false } }],
  }, data, el);
}

function charts() {
  if (typeof uPlot === "undefined") { return; }
  if (document.querySelector('[data-chart="events"]')) {
    drawCounters().catch(console.error);
    setInterval(() => drawCounters().catch(console.error), 5000);
  }
  const series = document.querySelector('[data-chart="series"]');
  if (series) {
    drawSeries(series).catch(console.error);
    setInterval(() => drawSeries(series).catch(console.error), 30000);
  }
}

// Live regions: one server-sent event stream per page, open while the page is visible (a
// browser has only a few connections per server; hidden tabs give theirs back). Each event names
// a topic that changed; the regions showing it fetch themselves again (hx-trigger="grace:<topic>
// from:body"). Coming back to the page, every region catches up once.
const topics = ["runs", "approvals", "ledger", "sources", "fleet", "playbooks"];

function live() {
  const url = document.body.dataset.live;
  if (!url || typeof EventSource === "undefined") { return; }
  let source = null;
  const fire = (topic) => document.body.dispatchEvent(new CustomEvent("grace:" + topic));
  const open = () => {
    if (source) { return; }
    source = new EventSource(url);
    for (const topic of topics) { source.addEventListener(topic, () => fire(topic)); }
    source.onerror = () => {
      // The server ends a stream now and then (EventSource connects again by itself); a
      // refusal (signed out, token revoked) closes it for good.
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        document.body.classList.add("stale");
      }
    };
  };
  const close = () => { if (source) { source.close(); source = null; } };
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { close(); } else { open(); topics.forEach(fire); }
  });
  if (!document.hidden) { open(); }
}

document.addEventListener("DOMContentLoaded", () => {
  localiseTimes(document);
  charts();
  live();
  document.body.addEventListener("htmx:afterSettle", (e) => localiseTimes(e.target));
});
