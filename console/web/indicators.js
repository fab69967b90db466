// 考核 indicators per unit for one day: on-time rate, rework rate and open overdue cases as SVG
// bar charts (people compare bars faster than numbers), every figure in the table below.

import * as t from "./i18n.js";
import { esc } from "./map.js";

const CHARTS = [
  { key: "on_time_rate", title: "按时结案率 <small>on-time rate</small>", percent: true, colour: "#1fbf5f" },
  { key: "rework_rate", title: "返工率 <small>rework rate</small>", percent: true, colour: "#ff8a00" },
  { key: "open_overdue", title: "超时未结 <small>open overdue</small>", percent: false, colour: "#ff3b3b" },
];

const COLUMNS = [
  ["name", "单位 unit"], ["level", "层级 level"], ["opened", "立案 opened"], ["closed", "结案 closed"],
  ["closed_on_time", "按时 on time"], ["on_time_rate", "按时率 on-time %"], ["rework", "返工 rework"],
  ["rework_rate", "返工率 rework %"], ["extended", "延期 extended"], ["escalated", "升级 escalated"],
  ["open_overdue", "超时未结 overdue"], ["mean_ack_s", "平均签收 mean ack"], ["mean_close_s", "平均结案 mean close"],
];

export function renderIndicators(rows, chartsEl, tableEl) {
  const sorted = [...rows].sort((a, b) => String(a.unit).localeCompare(String(b.unit)));
  chartsEl.innerHTML = CHARTS.map((c) => `<div class="chart" data-metric="${c.key}"><h3>${c.title}</h3>${bars(sorted, c)}</div>`).join("");
  tableEl.innerHTML =
    `<thead><tr>${COLUMNS.map(([, label]) => `<th>${label}</th>`).join("")}</tr></thead>` +
    `<tbody>${sorted.map((r) => `<tr data-unit="${esc(r.unit)}">${COLUMNS.map(([k]) => `<td>${cell(r, k)}</td>`).join("")}</tr>`).join("")}</tbody>`;
}

function cell(row, key) {
  const v = row[key];
  if (key === "level") return esc(t.levelZh(v));
  if (key === "name") return `${esc(v)} <small>${esc(row.unit)}</small>`;
  if (v === null || v === undefined) return "–";
  if (key.endsWith("_rate")) return `${(Number(v) * 100).toFixed(1)}%`;
  if (key.endsWith("_s")) return duration(Number(v));
  return esc(v);
}

function duration(s) {
  if (!Number.isFinite(s)) return "–";
  return s >= 3600 ? `${(s / 3600).toFixed(1)}h` : s >= 60 ? `${(s / 60).toFixed(1)}min` : `${s.toFixed(0)}s`;
}

function bars(rows, chart) {
  const shown = rows.filter((r) => r[chart.key] !== null && r[chart.key] !== undefined);
  if (shown.length === 0) return `<p><small>无数据 no data</small></p>`;
  const rowH = 18;
  const labelW = 150;
  const width = 420;
  const barW = width - labelW - 50;
  const max = chart.percent ? 1 : Math.max(1, ...shown.map((r) => Number(r[chart.key])));
  const height = shown.length * rowH + 4;
  const items = shown.map((r, i) => {
    const v = Number(r[chart.key]);
    const w = Math.max(0, (v / max) * barW);
    const y = i * rowH + 2;
    const label = chart.percent ? `${(v * 100).toFixed(0)}%` : String(v);
    return `<g><text x="${labelW - 6}" y="${y + 12}" text-anchor="end">${esc(r.name)}</text>` +
      `<rect x="${labelW}" y="${y + 2}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${chart.colour}" rx="2"></rect>` +
      `<text x="${(labelW + w + 4).toFixed(1)}" y="${y + 12}">${label}</text></g>`;
  });
  return `<svg viewBox="0 0 ${width} ${height}" width="100%" role="img">${items.join("")}</svg>`;
}
