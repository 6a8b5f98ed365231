// Default boxes, live: the grid of the picked level and the boxes of the picked cell,
// recomputed in the page from (S, feature maps, steps, scales by the paper's rule from
// s_min / s_max, ratios, extra box, clip) on every slider step; a click picks the cell
// under the pointer (anywhere on the grid: nothing lies above the canvas).

const DB_SIDE = 560;  // CSS px, the square figure

function dbConfig(st) {
  const cfg = Object.assign({}, st.data.config);
  cfg.image_size = st.v.image_size;
  if (st.ruleMoved) {
    const m = cfg.feature_maps.length, r = st.data.rule;
    cfg.scales = ruleScales(st.v.s_min, st.v.s_max, m, r.first_separate && m >= 3 ? r.s_first : null);
  }
  return cfg;
}

function dbDraw(st) {
  const cfg = dbConfig(st);
  const S = cfg.image_size, k = Math.min(st.v.level, cfg.feature_maps.length - 1), f = cfg.feature_maps[k];
  const row = Math.min(st.v.row, f - 1), col = Math.min(st.v.col, f - 1);
  const px = DB_SIDE / S, step = cfg.steps[k];
  const ctx = sizedCanvas(st.ui.canvas, DB_SIDE, DB_SIDE);
  ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, DB_SIDE, DB_SIDE);
  if (st.image) ctx.drawImage(st.image, 0, 0, DB_SIDE, DB_SIDE);
  // Grid: a line every `every` cells when cells are tiny on screen.
  const every = Math.max(1, Math.ceil(4 / (step * px)));
  ctx.strokeStyle = "rgba(255,255,255,0.55)"; ctx.lineWidth = 1; ctx.setLineDash([]);
  ctx.beginPath();
  for (let c = 0; c <= f; c += every) {
    const p = Math.min(c * step * px, DB_SIDE);
    ctx.moveTo(p, 0); ctx.lineTo(p, Math.min(f * step * px, DB_SIDE));
    ctx.moveTo(0, p); ctx.lineTo(Math.min(f * step * px, DB_SIDE), p);
  }
  ctx.stroke();
  strokeBox(ctx, col * step * px, row * step * px, (col + 1) * step * px, (row + 1) * step * px, "#000", 2.5);
  const { boxes, labels } = cellBoxes(cfg, k, row, col);
  const colors = st.data.colors.ratio;
  boxes.forEach((b, n) => strokeBox(ctx, b[0] * DB_SIDE, b[1] * DB_SIDE, b[2] * DB_SIDE, b[3] * DB_SIDE,
                                    colors[n % colors.length], 2));
  ctx.fillStyle = "#000";
  ctx.beginPath(); ctx.arc((col + 0.5) * step * px, (row + 0.5) * step * px, 3, 0, 2 * Math.PI); ctx.fill();
  later(st, () => dbTable(st, cfg, k, row, col, boxes, labels));
}

function dbTable(st, cfg, k, row, col, boxes, labels) {
  const S = cfg.image_size;
  const rows = [];
  let total = 0, start = 0;
  cfg.feature_maps.forEach((f, q) => {
    const { wh, labels: labs } = whPairs(cfg.scales, cfg.aspect_ratios[q], q, cfg.extra_box, cfg.clip);
    if (q < k) start += f * f * wh.length;
    total += f * f * wh.length;
    rows.push([q, `${f}x${f}`, wh.length, f * f * wh.length, cfg.scales[q].toFixed(3), pyRound(cfg.scales[q] * S, 1),
               cfg.steps[q], wh.map(([w, h], n) => `${labs[n]}:${pyRound(w * S, 0)}x${pyRound(h * S, 0)}`).join(" ")]);
  });
  rows.push(["total", "", "", total, "", "", "", ""]);
  st.ui.summary.textContent = `${total} default boxes at S = ${S} px. Level ${k}, cell (${row}, ${col}): ` +
    boxes.map((b, n) => `${labels[n]} ${Math.round((b[2] - b[0]) * S)}x${Math.round((b[3] - b[1]) * S)}`).join(", ") +
    " px. Click any cell to pick it.";
  // The cell's boxes (explorer.views.default_boxes.cell_box_rows): input px, 1 decimal.
  // As the library stores them (cxcywh, float32) times S in float32, as torch multiplies.
  const f = cfg.feature_maps[k], first = start + (row * f + col) * boxes.length, r1 = v => pyRound(f32(v * S), 1);
  const fk = f32(S / cfg.steps[k]), cx = f32((col + 0.5) / fk), cy = f32((row + 0.5) / fk);
  const { wh } = whPairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, cfg.clip);
  const cellRows = wh.map(([w, h], n) => [first + n, n, labels[n], r1(cx), r1(cy), r1(w), r1(h)]);
  st.ui.table.replaceChildren(
    tableOf(["level", "map", "boxes per cell", "boxes", "scale s_k", "scale (px)", "step (px)", "box sizes (px, w x h)"], rows),
    tableOf(["default index", "box", "ratio", "cx", "cy", "w", "h"], cellRows));
  dbSizeChart(st, cfg);
}

// Box sizes per level (one cell): width vs height in input px on log axes, a point per
// box labelled by its ratio, coloured by level (explorer.views.default_box_figure.box_size_figure).
const DB_CHART_W = 560, DB_CHART_H = 340, DB_PAD = 44;

function dbSizeChart(st, cfg) {
  const S = cfg.image_size, ctx = sizedCanvas(st.ui.sizes, DB_CHART_W, DB_CHART_H);
  const pts = [];
  cfg.feature_maps.forEach((f, k) => {
    const { wh, labels } = whPairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, cfg.clip);
    wh.forEach(([w, h], n) => pts.push([Math.max(w * S, 1), Math.max(h * S, 1), k, labels[n]]));
  });
  const lo = Math.log10(Math.min(1, ...pts.map(p => Math.min(p[0], p[1]))) * 0.8);
  const hi = Math.log10(Math.max(2 * S, ...pts.map(p => Math.max(p[0], p[1]))) * 1.1);
  const X = v => DB_PAD + (Math.log10(v) - lo) / (hi - lo) * (DB_CHART_W - DB_PAD - 10);
  const Y = v => DB_CHART_H - DB_PAD + 10 - (Math.log10(v) - lo) / (hi - lo) * (DB_CHART_H - DB_PAD - 10);
  ctx.clearRect(0, 0, DB_CHART_W, DB_CHART_H);
  ctx.font = "11px sans-serif"; ctx.fillStyle = "#888"; ctx.strokeStyle = "rgba(128,128,128,0.35)"; ctx.lineWidth = 1;
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) {
    const v = 10 ** e;
    ctx.setLineDash([]); ctx.beginPath(); ctx.moveTo(X(v), Y(10 ** hi)); ctx.lineTo(X(v), Y(10 ** lo));
    ctx.moveTo(X(10 ** lo), Y(v)); ctx.lineTo(X(10 ** hi), Y(v)); ctx.stroke();
    ctx.fillText(String(v), X(v) - 8, DB_CHART_H - DB_PAD + 24); ctx.fillText(String(v), 4, Y(v) + 4);
  }
  ctx.fillText("box width (input px)", DB_CHART_W / 2 - 50, DB_CHART_H - 4);
  ctx.save(); ctx.translate(12, DB_CHART_H / 2 + 50); ctx.rotate(-Math.PI / 2); ctx.fillText("box height (input px)", 0, 0); ctx.restore();
  ctx.strokeStyle = "#bbb"; ctx.setLineDash([2, 3]); ctx.beginPath();
  ctx.moveTo(X(10 ** lo), Y(10 ** lo)); ctx.lineTo(X(10 ** hi), Y(10 ** hi)); ctx.stroke(); ctx.setLineDash([]);
  const colors = st.data.colors.level || ["#1f77b4"];
  for (const [w, h, k, label] of pts) {
    ctx.fillStyle = colors[k % colors.length];
    ctx.beginPath(); ctx.arc(X(w), Y(h), 5, 0, 2 * Math.PI); ctx.fill();
    ctx.fillText(label, X(w) - 4, Y(h) - 8);
  }
  st.ui.sizes.setAttribute("aria-label", "Box sizes per level (one cell), width vs height on log axes: " +
    cfg.feature_maps.map((f, k) => `level ${k}: ` + pts.filter(p => p[2] === k).map(p => `${p[3]} ${Math.round(p[0])}x${Math.round(p[1])}`).join(", ")).join("; "));
}

// The per-level downloads (the server's, computed here on click from what the figure shows):
// the rows of `levelRows`, and JSON {config: the configuration's to_dict, levels, total}.
function dbDownloads(st) {
  const shown = () => {
    const cfg = dbConfig(st), levels = levelRows(cfg);
    const edited = st.ruleMoved || cfg.image_size !== st.data.config.image_size;
    const config = Object.assign({}, st.data.config_dict, { image_size: cfg.image_size, scales: cfg.scales },
                                 edited ? { name: "custom" } : {});
    return { config, levels, total: levels.reduce((a, r) => a + r.boxes, 0) };
  };
  const file = ext => () => `default_boxes_${shown().config.name}.${ext}`;
  const box = el("div", { class: "ssd-downloads" });
  downloadButton(box, "Per-level default boxes (CSV)", file("csv"), "text/csv", () => rowsToCsv(shown().levels));
  downloadButton(box, "Per-level default boxes (JSON)", file("json"), "application/json",
                 () => JSON.stringify(shown(), null, 1));
  st.ui.root.append(box);
}

function dbCommit(component, st) {
  commit(component, st, { s_min: st.v.s_min, s_max: st.v.s_max, image_size: st.v.image_size,
                          rule_moved: st.ruleMoved, row: st.v.row, col: st.v.col });
}

function dbBuild(component, st) {
  const ui = st.ui = frame(component.parentElement, component, "Default boxes of the picked cell on the input");
  const r = st.data.ranges;
  const redraw = () => dbDraw(st);
  st.ctl = {
    image_size: rangeControl(ui.controls, "db-live-size", "Input size S (px)", r.image_size, st.v.image_size,
                             v => { st.v.image_size = v; }, redraw, () => dbCommit(component, st)),
    s_min: rangeControl(ui.controls, "db-live-smin", "s_min", r.s_min, st.v.s_min,
                        v => { st.v.s_min = v; st.ruleMoved = true; }, redraw, () => dbCommit(component, st)),
    s_max: rangeControl(ui.controls, "db-live-smax", "s_max", r.s_max, st.v.s_max,
                        v => { st.v.s_max = v; st.ruleMoved = true; }, redraw, () => dbCommit(component, st)),
  };
  ui.sizes = el("canvas", { class: "ssd-chart", role: "img" });
  ui.root.append(el("p", { class: "ssd-table-title" }, "Box sizes per level (one cell)"), ui.sizes);
  dbDownloads(st);
  ui.canvas.addEventListener("click", (e) => {
    const cfg = dbConfig(st), k = Math.min(st.v.level, cfg.feature_maps.length - 1), f = cfg.feature_maps[k];
    const rect = ui.canvas.getBoundingClientRect();
    const toIn = cfg.image_size / rect.width;  // CSS px -> input px
    const x = (e.clientX - rect.left) * toIn, y = (e.clientY - rect.top) * (cfg.image_size / rect.height);
    st.v.col = Math.max(0, Math.min(f - 1, Math.floor(x / cfg.steps[k])));
    st.v.row = Math.max(0, Math.min(f - 1, Math.floor(y / cfg.steps[k])));
    redraw();
    dbCommit(component, st);
  });
}

/** Python's answer to a release: the values and the configuration the page already shows
 * (the scales its rule filled; a newer count, the preset's name): nothing to redraw. */
function dbEcho(st, old, data) {
  if (!old || !st.ui || !st.v || !caughtUp(st, data)) return false;
  const v = st.v, r = data.rule;
  if (r.s_min !== v.s_min || r.s_max !== v.s_max || data.config.image_size !== v.image_size ||
      data.level !== v.level || data.row !== v.row || data.col !== v.col) return false;
  if (JSON.stringify(dbConfig(st)) !== JSON.stringify(data.config)) return false;
  const rest = d => JSON.stringify(d, (k, x) => (["seq", "config", "config_dict", "s_min", "s_max"].includes(k) ? undefined : x));
  return rest(old) === rest(data);
}

export default function (component) {
  const got = acceptData(component);
  if (!got) return;
  const { st, data, old } = got;
  if (dbEcho(st, old, data)) return;
  if (!st.v || caughtUp(st, data)) {  // Python's values, unless the user is ahead of it
    st.v = { image_size: data.config.image_size, s_min: data.rule.s_min, s_max: data.rule.s_max,
             level: data.level, row: data.row, col: data.col };
    st.ruleMoved = false;
  } else {
    st.v.level = data.level;
  }
  if (!st.ui) dbBuild(component, st);
  for (const name of ["image_size", "s_min", "s_max"]) st.ctl[name].set(st.v[name]);
  loadImage(st, data.image_uri, () => dbDraw(st));
  dbDraw(st);
}
