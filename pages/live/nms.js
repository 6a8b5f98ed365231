// NMS, live: the candidates above the score floor arrive once per image and model; every
// step of the score threshold, the NMS IoU threshold or the number of detections re-runs
// the selection, greedy per-class NMS (who removed whom) and the cut in the page.

const NMS_MAX_W = 720, NMS_MAX_H = 560;  // CSS px, the figure's box

function nmsPrepare(st) {
  const d = st.data;
  st.boxesIn = decodeF32(d.boxes_px_in);
  st.boxesPx = decodeF32(d.boxes_px);
  st.scores = decodeF32(d.scores);
  st.labels = Int32Array.from(d.labels);
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
    v => { st.v[name] = v; redraw(); }, () => nmsCommit(component, st));
  st.ctl = {
    score_thresh: control("score_thresh", "nms-live-score", "Score threshold"),
    nms_thresh: control("nms_thresh", "nms-live-iou", "NMS IoU threshold"),
    detections_per_img: control("detections_per_img", "nms-live-topk", "Top k detections"),
  };
  // A click on a box picks that object for the Trace page ("det:A:C", `trace_links.target_key`).
  ui.canvas.addEventListener("click", (e) => {
    const rect = ui.canvas.getBoundingClientRect();
    const n = nmsPickAt(st, e.clientX - rect.left, e.clientY - rect.top);
    if (n >= 0) nmsCommit(component, st, { pick: `det:${st.data.default_index[n]}:${st.labels[n]}` });
  });
}

export default function (component) {
  const got = acceptData(component);
  if (!got) return;
  const { st, data, old } = got;
  if (!old || old.scores !== data.scores || old.boxes_px_in !== data.boxes_px_in) nmsPrepare(st);
  if (!st.v || caughtUp(st, data)) {
    st.v = { score_thresh: data.score_thresh, nms_thresh: data.nms_thresh, detections_per_img: data.detections_per_img };
  }
  if (!st.ui) nmsBuild(component, st);
  for (const name of ["score_thresh", "nms_thresh", "detections_per_img"]) st.ctl[name].set(st.v[name]);
  loadImage(st, data.image_uri, () => nmsDraw(st));
  nmsDraw(st);
}
