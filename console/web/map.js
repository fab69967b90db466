// The map: jurisdiction boundaries (base layer), the H3 heat layer of the live signal, incident
// markers. Leaflet (global L) and h3-js (global h3) are loaded by index.html from the binary.
/* global L, h3 */

import * as t from "./i18n.js";

export class CityMap {
  constructor(element, config, onSelect) {
    this.onSelect = onSelect;
    this.map = L.map(element, { preferCanvas: true, zoomSnap: 0.25, attributionControl: !!config.tile_url });
    // Panes: boundaries (350) under the heat layer (380), both under Leaflet's markers (600).
    this.map.createPane("base").style.zIndex = 350;
    this.map.createPane("heat").style.zIndex = 380;
    this.map.getPane("heat").style.pointerEvents = "none";
    this.renderer = L.canvas({ padding: 0.2, pane: "base" });
    if (config.tile_url) {
      L.tileLayer(config.tile_url, { attribution: config.tile_attribution || "" }).addTo(this.map);
    }
    this.heat = new HeatLayer().addTo(this.map);
    this.map.createPane("late").style.zIndex = 610;
    this.map.getPane("late").style.pointerEvents = "none";
    this.late = new LateLayer().addTo(this.map);
    this.markers = new Map(); // incident_id → { marker, signature }
    this.markerLayer = L.layerGroup().addTo(this.map);
    this.selected = null;
    this.jurisdictions = null;
    this.communities = 0;
    this.map.setView([31.23, 121.47], 11);
    legend().addTo(this.map);
  }

  /** The caller's communities (GeoJSON FeatureCollection) as the base layer; fits the view. */
  setJurisdictions(geojson) {
    if (this.jurisdictions) this.jurisdictions.remove();
    this.jurisdictions = L.geoJSON(geojson, {
      renderer: this.renderer,
      pane: "base",
      style: () => ({ color: "#6f8eae", weight: 1, fillColor: "#1a2836", fillOpacity: 0.6 }),
      onEachFeature: (feature, layer) => {
        const p = feature.properties || {};
        layer.bindTooltip(`${p.name ?? ""} <small>${p.code ?? ""}</small>`, { sticky: true });
      },
    }).addTo(this.map);
    this.jurisdictions.bringToBack();
    this.communities = (geojson.features || []).length;
    const bounds = this.jurisdictions.getBounds();
    if (bounds.isValid()) this.map.fitBounds(bounds, { padding: [12, 12] });
  }

  /** Replaces the heat layer's cells ([{cell, value}]). */
  setCells(cells) {
    this.heat.setCells(cells);
  }

  /** Merges changed cells (value 0 removes one). */
  updateCells(cells) {
    this.heat.updateCells(cells);
  }

  /** Shows exactly these incidents (already filtered); `now` (ms) times their deadlines. */
  setIncidents(incidents, now) {
    const keep = new Set();
    const late = [];
    for (const inc of incidents) {
      if (!inc.location || !Number.isFinite(inc.location.lat) || !Number.isFinite(inc.location.lon)) continue;
      keep.add(inc.incident_id);
      const due = dueClass(inc, now);
      if (due === "overdue") late.push([inc.location.lat, inc.location.lon]);
      const signature = [inc.severity, inc.level, due, inc.state, inc.location.lat, inc.location.lon, this.selected === inc.incident_id].join("|");
      const existing = this.markers.get(inc.incident_id);
      if (existing && existing.signature === signature) continue;
      const icon = L.divIcon({
        className: "inc-icon",
        iconSize: [16, 16], // the .inc dot: its centre is the point
        html: `<div class="inc sev-${esc(inc.severity)} lvl-${esc(inc.level)} ${due}${this.selected === inc.incident_id ? " selected" : ""}" data-incident-id="${esc(inc.incident_id)}" data-unit="${esc(inc.unit)}"></div>`,
      });
      if (existing) {
        existing.marker.setIcon(icon);
        existing.marker.setLatLng([inc.location.lat, inc.location.lon]);
        existing.signature = signature;
        existing.marker.setTooltipContent(tooltip(inc));
      } else {
        const marker = L.marker([inc.location.lat, inc.location.lon], { icon, keyboard: false })
          .bindTooltip(tooltip(inc))
          .on("click", () => this.onSelect(inc.incident_id));
        marker.addTo(this.markerLayer);
        this.markers.set(inc.incident_id, { marker, signature });
      }
    }
    for (const [id, entry] of this.markers) {
      if (!keep.has(id)) {
        entry.marker.remove();
        this.markers.delete(id);
      }
    }
    this.late.setPoints(late);
  }

  /** Overdue rings on or off (app.js flips them twice a second). */
  blink(on) {
    this.late.show(on);
  }

  select(id) {
    this.selected = id;
  }

  panTo(inc) {
    if (inc?.location && Number.isFinite(inc.location.lat)) {
      this.map.panTo([inc.location.lat, inc.location.lon]);
    }
  }
}

/**
 * Time left against the deadline, as a share of the time the holding unit was given (since it
 * received the incident, `since`, else since it opened): green at least half, amber at least a
 * fifth, red less; "overdue" (blinking) once past or marked overdue.
 */
export function dueClass(inc, now) {
  if (inc.overdue) return "overdue";
  const due = Date.parse(inc.due_at);
  if (!Number.isFinite(due)) return "due-green";
  if (due <= now) return "overdue";
  const from = Date.parse(inc.since ?? inc.opened_at);
  const span = Math.max(due - (Number.isFinite(from) ? from : now), 1);
  const left = (due - now) / span;
  return left >= 0.5 ? "due-green" : left >= 0.2 ? "due-amber" : "due-red";
}

function tooltip(inc) {
  return `<b>${esc(inc.title || inc.rule)}</b><br>${t.severity(inc.severity)} · ${t.level(inc.level)} · ${esc(inc.unit_name || inc.unit)}<br>${t.state(inc.state)}`;
}

export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function legend() {
  const control = L.control({ position: "bottomleft" });
  control.onAdd = () => {
    const div = L.DomUtil.create("div", "legend");
    div.innerHTML =
      `<div>等级 <small>severity</small>${t.SEVERITIES.map((s) => `<i class="sev-${s}"></i>${t.severity(s).split(" ")[0]}`).join("")}</div>` +
      `<div>时限 <small>time left</small><i class="ring" style="border-color:var(--ok)"></i>充足<i class="ring" style="border-color:var(--amber)"></i>过半<i class="ring" style="border-color:var(--late)"></i>紧迫 · 闪烁 超时</div>` +
      `<div>圈数 <small>rings = level</small>: 1 社区 · 2 街道 · 3 区 · 4 市</div>`;
    return div;
  };
  return control;
}

/**
 * The heat layer: one canvas redrawn from cell outlines (h3-js, cached per cell) after every
 * pan, zoom or update; thousands of hexagons cost one path each, no Leaflet object per cell.
 */
const HeatLayer = L.Layer.extend({
  initialize() {
    this.cells = new Map(); // cell → value
    this.outlines = new Map(); // cell → [[lat, lng], …]
    this.drawn = 0;
  },
  onAdd(map) {
    this.canvas = L.DomUtil.create("canvas", "heat leaflet-zoom-hide");
    this.canvas.style.pointerEvents = "none";
    map.getPane("heat").appendChild(this.canvas);
    map.on("moveend zoomend resize viewreset", this.redraw, this);
    this.redraw();
  },
  onRemove(map) {
    this.canvas.remove();
    map.off("moveend zoomend resize viewreset", this.redraw, this);
  },
  setCells(cells) {
    this.cells = new Map(cells.map((c) => [c.cell, Number(c.value)]));
    this.redraw();
  },
  updateCells(cells) {
    for (const c of cells) {
      if (Number(c.value) > 0) this.cells.set(c.cell, Number(c.value));
      else this.cells.delete(c.cell);
    }
    this.redraw();
  },
  outline(cell) {
    let o = this.outlines.get(cell);
    if (!o) {
      try {
        o = h3.cellToBoundary(cell);
      } catch {
        o = [];
      }
      this.outlines.set(cell, o);
    }
    return o;
  },
  redraw() {
    if (!this._map || !this.canvas) return;
    const map = this._map;
    const size = map.getSize();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = size.x * ratio;
    this.canvas.height = size.y * ratio;
    this.canvas.style.width = `${size.x}px`;
    this.canvas.style.height = `${size.y}px`;
    L.DomUtil.setPosition(this.canvas, map.containerPointToLayerPoint([0, 0]));
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, size.x, size.y);
    let max = 0;
    for (const v of this.cells.values()) max = Math.max(max, v);
    const view = map.getBounds().pad(0.05);
    let drawn = 0;
    for (const [cell, value] of this.cells) {
      const outline = this.outline(cell);
      if (outline.length < 3) continue;
      const [lat0, lng0] = outline[0];
      if (!view.contains([lat0, lng0])) continue;
      const x = max > 0 ? value / max : 0;
      ctx.fillStyle = heatColour(x);
      ctx.beginPath();
      for (let i = 0; i < outline.length; i++) {
        const p = map.latLngToContainerPoint(outline[i]);
        if (i === 0) ctx.moveTo(p.x, p.y);
        else ctx.lineTo(p.x, p.y);
      }
      ctx.closePath();
      ctx.fill();
      drawn++;
    }
    this.drawn = drawn;
    map.getContainer().dataset.cellsDrawn = String(drawn);
  },
});

/**
 * The blinking rings of overdue incidents, all on one canvas above the markers: blinking shows
 * and hides that one element. Blinking each marker redrew every overdue marker twice a second,
 * which took most of the page's time on a busy city (BENCHMARKS.md, the console).
 */
const LateLayer = L.Layer.extend({
  initialize() {
    this.points = [];
    this.key = "";
  },
  onAdd(map) {
    this.canvas = L.DomUtil.create("canvas", "late-rings leaflet-zoom-hide");
    map.getPane("late").appendChild(this.canvas);
    map.on("moveend zoomend resize viewreset", this.redraw, this);
    this.redraw();
  },
  onRemove(map) {
    this.canvas.remove();
    map.off("moveend zoomend resize viewreset", this.redraw, this);
  },
  setPoints(points) {
    const key = points.join(";");
    if (key === this.key) return;
    this.key = key;
    this.points = points;
    this.redraw();
  },
  show(on) {
    if (this.canvas) this.canvas.style.visibility = on ? "visible" : "hidden";
  },
  redraw() {
    if (!this._map || !this.canvas) return;
    const map = this._map;
    const size = map.getSize();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = size.x * ratio;
    this.canvas.height = size.y * ratio;
    this.canvas.style.width = `${size.x}px`;
    this.canvas.style.height = `${size.y}px`;
    L.DomUtil.setPosition(this.canvas, map.containerPointToLayerPoint([0, 0]));
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, size.x, size.y);
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 3;
    for (const p of this.points) {
      const c = map.latLngToContainerPoint(p);
      ctx.beginPath();
      ctx.arc(c.x, c.y, 9.5, 0, 2 * Math.PI);
      ctx.stroke();
    }
    map.getContainer().dataset.overdueRings = String(this.points.length);
  },
});

/** Little → yellow, the most → red; nearly opaque, as translucent yellow reads brown on a dark map. */
function heatColour(x) {
  const g = Math.round(214 - 174 * x);
  const a = (0.7 + 0.25 * x).toFixed(3);
  return `rgba(255,${g},0,${a})`;
}
