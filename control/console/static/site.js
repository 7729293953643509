// The site view's chart: one point's history from GET /api/v1/sites/{site}/history, drawn
// with uPlot (vendored, see vendor/README.md), with the limits of #limits as dashed lines.
"use strict";

(function () {
  const box = document.getElementById("chart");
  if (!box || !window.uPlot) return;
  const limits = Array.from(document.querySelectorAll("#limits li")).map((li) => ({
    value: Number(li.dataset.value),
    label: li.textContent,
  }));
  let plot = null;

  async function load() {
    const until = Date.now();
    const since = until - Number(box.dataset.rangeMs);
    const params = new URLSearchParams({
      device: box.dataset.device,
      point: box.dataset.point,
      since: String(since),
      until: String(until),
      max_points: "600",
    });
    const url = "/api/v1/sites/" + encodeURIComponent(box.dataset.site) + "/history?" + params;
    const result = await api("GET", url);
    if (!result.ok) {
      status(result.message);
      return;
    }
    draw(result.data, since, until);
  }

  function draw(history, since, until) {
    const xs = [];
    const ys = [];
    for (const [ts, value] of history.points) {
      if (typeof value === "number") {
        xs.push(ts / 1000);
        ys.push(value);
      } else if (typeof value === "boolean") {
        xs.push(ts / 1000);
        ys.push(value ? 1 : 0);
      }
    }
    box.dataset.points = String(xs.length);
    document.getElementById("chart-empty").hidden = xs.length > 0;
    const label = box.dataset.point + (box.dataset.unit ? " (" + box.dataset.unit + ")" : "");
    const series = [{}, { label, stroke: "#1f6feb", width: 2, points: { show: xs.length < 60 } }];
    const data = [xs, ys];
    for (const limit of limits) {
      series.push({ label: limit.label, stroke: "#d1242f", dash: [6, 4], width: 1, points: { show: false } });
      data.push(xs.map(() => limit.value));
    }
    const width = Math.max(280, box.clientWidth);
    const opts = {
      width,
      height: Math.round(Math.min(360, Math.max(220, width * 0.45))),
      series,
      scales: { x: { time: true, range: () => [since / 1000, until / 1000] } },
      // The service's time zone, as the times printed on the page.
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), box.dataset.tz),
      axes: [{}, { label: box.dataset.unit || "" }],
    };
    if (plot) plot.destroy();
    plot = new uPlot(opts, data, box);
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (plot) plot.setSize({ width: Math.max(280, box.clientWidth), height: plot.height });
    }, 200);
  });
  // New readings arrive every few seconds; the chart follows once a minute.
  setInterval(load, 60000);
  load();
})();
