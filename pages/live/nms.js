// NMS, live: the candidates above the score floor arrive once per image and model; every
// step of the score threshold, the NMS IoU threshold or the number of detections re-runs
// the selection, greedy per-class NMS (who removed whom) and the cut in the page.

const NMS_MAX_W = 720, NMS_MAX_H = 560;  // CSS px, the figure's box

function nmsPrepare(st) {
  const d = st.data;
  st.cand = { scores: null, labels: null, level: d.level, row: d.row || d.level.map(() => null),
              col: d.col || d.level.map(() => null), default_index: d.default_index, class_names: d.class_names };
  st.boxesIn = decodeF32(d.boxes_px_in);
  st.boxesPx = decodeF32(d.boxes_px);
  st.scores = decodeF32(d.scores);
  st.labels = Int32Array.from(d.labels);
  Object.assign(st.cand, { scores: st.scores, labels: st.labels, boxes_px: st.boxesPx });
}

function nmsDraw(st) {
  const d = st.data, [H, W] = d.image_hw;
  const scale = Math.min(NMS_MAX_W / W, NMS_MAX_H / H);
  const w = Math.round(W * scale), h = Math.round(H * scale);
  const r = st.trace = nmsTrace(st.boxesIn, st.scores, st.labels, st.v.score_thresh, st.v.nms_thresh, st.v.detections_per_img);
  st.scale = scale;
  const ctx = sizedCanvas(st.ui.canvas, w, h);
  ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, w, h);
  if (st.image) ctx.drawImage(st.image, 0, 0, w, h);
  const only = d.draw.only_class, names = d.class_names, colors = d.colors.class;
  const shown = n => r.selected[n] && (only === null || only === undefined || names[st.labels[n]] === only);
  const b = st.boxesPx, centre = n => [(b[4 * n] + b[4 * n + 2]) / 2 * scale, (b[4 * n + 1] + b[4 * n + 3]) / 2 * scale];
  (d.draw.gt_px || []).forEach(g => strokeBox(ctx, g[0] * scale, g[1] * scale, g[2] * scale, g[3] * scale, d.colors.gt, 2, [3, 3]));
  let nCand = 0, nKept = 0;
  for (let n = 0; n < st.scores.length; n++) {
    if (!shown(n)) continue;
    nCand++;
    const color = colors[st.labels[n] % colors.length];
    if (r.kept[n]) { nKept++; continue; }
    if (!d.draw.show_suppressed) continue;
    strokeBox(ctx, b[4 * n] * scale, b[4 * n + 1] * scale, b[4 * n + 2] * scale, b[4 * n + 3] * scale, color, 1, [2, 3]);
    if (d.draw.show_links && r.suppressedBy[n] >= 0) {
      const [x0, y0] = centre(n), [x1, y1] = centre(r.suppressedBy[n]);
      ctx.strokeStyle = color; ctx.lineWidth = 1; ctx.setLineDash([]);
      ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
    }
  }
  const finalSet = new Set(r.final);
  let nFinal = 0;
  for (const n of r.keep) {
    if (!shown(n)) continue;
    const color = colors[st.labels[n] % colors.length], isFinal = finalSet.has(n);
    strokeBox(ctx, b[4 * n] * scale, b[4 * n + 1] * scale, b[4 * n + 2] * scale, b[4 * n + 3] * scale, color,
              isFinal ? 3 : 1.5, isFinal ? [] : [8, 4]);
    if (isFinal) { nFinal++; labelText(ctx, `${names[st.labels[n]]} ${st.scores[n].toFixed(2)}`, b[4 * n] * scale, b[4 * n + 1] * scale, color); }
  }
  st.ui.summary.textContent = `${nCand} candidates above score ${st.v.score_thresh.toFixed(2)}, ` +
    `${nKept} kept by NMS at IoU ${st.v.nms_thresh.toFixed(2)}, ${nFinal} final detections ` +
    `(top ${st.v.detections_per_img}). Dotted: suppressed, a line to the kept box that removed it. ` +
    "Click a box to pick that object for Trace one object.";
  later(st, () => nmsTables(st));
}

const NMS_COUNT_HEADERS = ["candidates", "kept_by_nms", "detections"];
const NMS_FINAL_HEADERS = ["detection", "class", "score", "level", "row", "col", "default_index", "x1", "y1", "x2", "y2"];
const NMS_CAND_HEADERS = ["detection", "candidate", "class", "score", "level", "row", "col", "default_index", "kept",
                          "final", "suppressed_by_name", "suppressor_score", "iou_with_suppressor"];

/** The tables under the figure, from the same NMS run (explorer.views.nms's candidate rows
 * and counts, mirrored in ssd_mirror.js): per class, per level, the final detections, and
 * every candidate (built when its section is open). */
function nmsTables(st) {
  const d = st.data, only = d.draw.only_class;
  const all = st.records = nmsRecords(st.trace, st.cand);
  const counts = st.counts = nmsCounts(all, d.class_names, d.num_levels);
  const shown = only === null || only === undefined ? all : all.filter(r => r.class === only);
  st.shownRecords = shown;
  const pick = (rows, keys) => rows.map(r => keys.map(k => (r[k] === null || r[k] === undefined ? "" : r[k])));
  const t = st.ui.tables;
  t.perClass.replaceChildren(tableOf(["class", ...NMS_COUNT_HEADERS], pick(counts.perClass, ["class", ...NMS_COUNT_HEADERS])));
  t.perLevel.replaceChildren(tableOf(["level", ...NMS_COUNT_HEADERS], pick(counts.perLevel, ["level", ...NMS_COUNT_HEADERS])));
  const finals = shown.filter(r => r.final).sort((a, b) => a.detection - b.detection);
  t.final.replaceChildren(tableOf(NMS_FINAL_HEADERS, pick(finals, NMS_FINAL_HEADERS)));
  t.candTitle.textContent = `Every candidate (${shown.length}; suppressed ones name their suppressor)`;
  if (t.cand.open) t.candBody.replaceChildren(tableOf(NMS_CAND_HEADERS, pick(shown, NMS_CAND_HEADERS)));
  else t.candBody.replaceChildren();
}

function nmsTableFrame(st) {
  const box = st.ui.table, h = text => el("p", { class: "ssd-table-title" }, text);
  const t = st.ui.tables = { perClass: el("div"), perLevel: el("div"), final: el("div") };
  const row = el("div", { class: "ssd-table-row" });
  const c1 = el("div"), c2 = el("div");
  c1.append(h("Per class"), t.perClass); c2.append(h("Per level"), t.perLevel);
  row.append(c1, c2);
  t.cand = el("details"); t.candTitle = el("summary"); t.candBody = el("div", { class: "ssd-scroll" });
  t.cand.append(t.candTitle, t.candBody);
  t.cand.addEventListener("toggle", () => nmsTables(st));
  const downloads = el("div", { class: "ssd-downloads" });
  const payload = () => JSON.stringify(Object.assign({ score_thresh: st.v.score_thresh, nms_thresh: st.v.nms_thresh,
    detections_per_img: st.v.detections_per_img }, { per_class: st.counts.perClass, per_level: st.counts.perLevel,
    candidates: st.shownRecords }), null, 1);
  downloadButton(downloads, "Candidates and suppression (CSV)", "nms_candidates.csv", "text/csv", () => rowsToCsv(st.shownRecords));
  downloadButton(downloads, "Candidates and suppression (JSON)", "nms_candidates.json", "application/json", payload);
  box.append(row, h("Final detections"), t.final, t.cand, downloads);
}

function nmsCommit(component, st, extra) {
  commit(component, st, Object.assign({ score_thresh: st.v.score_thresh, nms_thresh: st.v.nms_thresh,
                                        detections_per_img: st.v.detections_per_img }, extra || {}));
}

/** The candidate a click at (x, y) CSS px picks, or -1: the smallest final detection under
 * the pointer; else the smallest other drawn box (kept, cut by top k, suppressed when shown)
 * of the shown class. */
function nmsPickAt(st, x, y) {
  const d = st.data, r = st.trace, b = st.boxesPx, s = st.scale, only = d.draw.only_class;
  const finalSet = new Set(r.final);
  let best = -1, bestRank = 3, bestArea = Infinity;
  for (let n = 0; n < st.scores.length; n++) {
    if (!r.selected[n] || (only !== null && only !== undefined && d.class_names[st.labels[n]] !== only)) continue;
    if (!r.kept[n] && !d.draw.show_suppressed) continue;
    const x1 = b[4 * n] * s, y1 = b[4 * n + 1] * s, x2 = b[4 * n + 2] * s, y2 = b[4 * n + 3] * s;
    if (x < x1 || x > x2 || y < y1 || y > y2) continue;
    const rank = finalSet.has(n) ? 0 : r.kept[n] ? 1 : 2, area = (x2 - x1) * (y2 - y1);
    if (rank < bestRank || (rank === bestRank && area < bestArea)) { best = n; bestRank = rank; bestArea = area; }
  }
  return best;
}

function nmsBuild(component, st) {
  const ui = st.ui = frame(component.parentElement, component, "Candidates, kept boxes and final detections on the image");
  const r = st.data.ranges;
  const redraw = () => nmsDraw(st);
  const control = (name, id, label) => rangeControl(ui.controls, id, label, r[name], st.v[name],
    v => { st.v[name] = v; }, redraw, () => nmsCommit(component, st));
  st.ctl = {
    score_thresh: control("score_thresh", "nms-live-score", "Score threshold"),
    nms_thresh: control("nms_thresh", "nms-live-iou", "NMS IoU threshold"),
    detections_per_img: control("detections_per_img", "nms-live-topk", "Top k detections"),
  };
  nmsTableFrame(st);
  // A click on a box picks that object for the Trace page ("det:A:C", `trace_links.target_key`).
  ui.canvas.addEventListener("click", (e) => {
    const rect = ui.canvas.getBoundingClientRect();
    const n = nmsPickAt(st, e.clientX - rect.left, e.clientY - rect.top);
    if (n >= 0) nmsCommit(component, st, { pick: `det:${st.data.default_index[n]}:${st.labels[n]}` });
  });
}

const NMS_VALUES = ["score_thresh", "nms_thresh", "detections_per_img"];

export default function (component) {
  const got = acceptData(component);
  if (!got) return;
  const { st, data, old } = got;
  if (isEcho(st, old, data, NMS_VALUES)) return;
  if (!old || old.scores !== data.scores || old.boxes_px_in !== data.boxes_px_in) nmsPrepare(st);
  if (!st.v || caughtUp(st, data)) {
    st.v = { score_thresh: data.score_thresh, nms_thresh: data.nms_thresh, detections_per_img: data.detections_per_img };
  }
  if (!st.ui) nmsBuild(component, st);
  for (const name of ["score_thresh", "nms_thresh", "detections_per_img"]) st.ctl[name].set(st.v[name]);
  loadImage(st, data.image_uri, () => nmsDraw(st));
  nmsDraw(st);
}
