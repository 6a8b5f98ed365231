// Matching & hard negatives, live: the IoU of every default box with the ground truth is
// computed once per image (float32, as torchvision's box_iou); every step of the IoU
// threshold or the neg:pos ratio re-applies the paper's matching rule and the mining.

const MT_MAX_W = 720, MT_MAX_H = 560;  // CSS px, the figure's box

function mtPrepare(st) {
  const d = st.data;
  const boxes = defaultBoxes(d.config);
  st.dXyxy = cxcywhToXyxy(boxes.cxcywh);
  st.level = boxes.level;
  st.A = st.dXyxy.length / 4;
  st.G = d.num_gt;
  st.iou = boxIou(decodeF32(d.gt_norm), st.dXyxy);
  st.lossOrder = lossOrder(decodeF32(d.conf_loss));
}

function mtDraw(st) {
  const d = st.data, [H, W] = d.image_hw;
  const scale = Math.min(MT_MAX_W / W, MT_MAX_H / H);
  const w = Math.round(W * scale), h = Math.round(H * scale);
  const m = matchIou(st.iou, st.G, st.A, st.v.iou_thresh);
  const positive = Uint8Array.from(m.gtIndex, g => (g >= 0 ? 1 : 0));
  const mined = mineNegatives(st.lossOrder, positive, st.v.neg_pos_ratio);
  const ctx = sizedCanvas(st.ui.canvas, w, h);
  ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, w, h);
  if (st.image) ctx.drawImage(st.image, 0, 0, w, h);
  const dx = st.dXyxy;
  const shownNeg = st.ui.showNeg.checked ? mtDrawNegatives(ctx, st, mined, w, h) : 0;
  const perGt = Array.from({ length: st.G }, () => [0, 0]);
  for (let a = 0; a < st.A; a++) {
    const g = m.gtIndex[a];
    if (g < 0) continue;
    perGt[g][0] += 1; perGt[g][1] += m.forced[a];
    const color = d.colors.level[st.level[a] % d.colors.level.length];
    strokeBox(ctx, dx[4 * a] * w, dx[4 * a + 1] * h, dx[4 * a + 2] * w, dx[4 * a + 3] * h, color, 2,
              m.forced[a] ? [6, 4] : []);
  }
  d.gt_px.forEach((b, g) => {
    strokeBox(ctx, b[0] * scale, b[1] * scale, b[2] * scale, b[3] * scale, d.colors.gt, 3);
    labelText(ctx, `GT ${g}: ${d.gt_names[g]}`, b[0] * scale, b[1] * scale, d.colors.gt);
  });
  const forced = m.forced.reduce((s, v) => s + v, 0);
  st.ui.summary.textContent = `${mined.numPos} positive default boxes (${forced} forced: dashed), ` +
    `${mined.numNeg} hard negatives of ${st.A - mined.numPos} negatives, at IoU threshold ` +
    `${st.v.iou_thresh.toFixed(2)} and neg:pos ${st.v.neg_pos_ratio.toFixed(1)}. ` +
    (shownNeg ? `Hard negatives by rank (the ${shownNeg} hardest drawn): red the hardest 10%, orange the next 40%, ` +
                "yellow the easiest 50%." : "");
  const best = perGt.map((_, g) => { let b = 0; for (let a = 0; a < st.A; a++) b = Math.max(b, st.iou[g * st.A + a]); return b; });
  st.ui.table.replaceChildren(tableOf(["GT", "label", "positives", "forced", "best IoU"],
    perGt.map(([n, f], g) => [g, d.gt_names[g], n, f, best[g].toFixed(4)])));
}

// The hard negatives by rank, as the server's hard-negative figure (explorer.views.matching.
// hard_negative_figure): the first MT_MAX_NEG by rank, in three bands of hardness.
const MT_MAX_NEG = 300;
const MT_BANDS = [[0, 0.1, "#ff0000"], [0.1, 0.5, "#ff6a00"], [0.5, 1.01, "#ffc400"]];

/** Draw the mined negatives of rank < MT_MAX_NEG, easiest band first (the hardest on top);
 * returns how many were drawn. */
function mtDrawNegatives(ctx, st, mined, w, h) {
  const n = Math.min(mined.numNeg, MT_MAX_NEG), byRank = new Int32Array(n), dx = st.dXyxy;
  for (let a = 0; a < st.A; a++) if (mined.mined[a] && mined.rank[a] < n) byRank[mined.rank[a]] = a;
  for (let band = MT_BANDS.length - 1; band >= 0; band--) {
    const [lo, hi, color] = MT_BANDS[band];
    for (let i = 0; i < n; i++) {
      if (i / Math.max(1, n) < lo || i / Math.max(1, n) >= hi) continue;
      const a = byRank[i];
      strokeBox(ctx, dx[4 * a] * w, dx[4 * a + 1] * h, dx[4 * a + 2] * w, dx[4 * a + 3] * h, color, 1.5);
    }
  }
  return n;
}

function mtCommit(component, st) {
  commit(component, st, { iou_thresh: st.v.iou_thresh, neg_pos_ratio: st.v.neg_pos_ratio });
}

function mtBuild(component, st) {
  const ui = st.ui = frame(component.parentElement, component, "Positive default boxes and hard negatives on the image");
  const r = st.data.ranges;
  const redraw = () => mtDraw(st);
  st.ctl = {
    iou_thresh: rangeControl(ui.controls, "mt-live-iou", "IoU threshold", r.iou_thresh, st.v.iou_thresh,
                             v => { st.v.iou_thresh = v; redraw(); }, () => mtCommit(component, st)),
    neg_pos_ratio: rangeControl(ui.controls, "mt-live-ratio", "Negatives per positive (neg:pos)", r.neg_pos_ratio,
                                st.v.neg_pos_ratio, v => { st.v.neg_pos_ratio = v; redraw(); },
                                () => mtCommit(component, st)),
  };
  const box = el("div", { class: "ssd-control" });
  ui.showNeg = el("input", { type: "checkbox", id: "mt-live-neg" });
  ui.showNeg.checked = true;
  ui.showNeg.addEventListener("change", redraw);
  box.append(ui.showNeg, el("label", { for: "mt-live-neg" }, "show hard negatives"));
  ui.controls.appendChild(box);
}

export default function (component) {
  const got = acceptData(component);
  if (!got) return;
  const { st, data, old } = got;
  if (!old || old.gt_norm !== data.gt_norm || old.conf_loss !== data.conf_loss
      || JSON.stringify(old.config) !== JSON.stringify(data.config)) mtPrepare(st);
  if (!st.v || caughtUp(st, data)) st.v = { iou_thresh: data.iou_thresh, neg_pos_ratio: data.neg_pos_ratio };
  if (!st.ui) mtBuild(component, st);
  st.ctl.iou_thresh.set(st.v.iou_thresh);
  st.ctl.neg_pos_ratio.set(st.v.neg_pos_ratio);
  loadImage(st, data.image_uri, () => mtDraw(st));
  mtDraw(st);
}
