// Page-side mirror of the Matching page's numbers and tables (explorer.views.matching's
// `matching_view` and `loss_view`), on `ssd_mirror.js`'s matching and mining. The library
// owns them; tests/test_browser_live_matching.py compares every row with the server's.
// Plain function declarations, as ssd_mirror.js (pages/_live.py joins the files).
//
// Letters: A = default boxes, G = ground-truth boxes, L = levels.

/** ssd.priors.DefaultBoxes' row, col and box_index of every default box (the library's
 * order: level, row, column, box) and each level's first index. `labels`: per level, the
 * labels of one cell's boxes (`defaultBoxes(cfg).labels`). */
function boxPlaces(cfg, labels) {
  const A = cfg.feature_maps.reduce((s, f, k) => s + f * f * labels[k].length, 0);
  const row = new Int32Array(A), col = new Int32Array(A), box = new Int32Array(A), starts = [];
  let n = 0;
  cfg.feature_maps.forEach((f, k) => {
    starts.push(n);
    for (let i = 0; i < f; i++) for (let j = 0; j < f; j++) for (let b = 0; b < labels[k].length; b++) {
      row[n] = i; col[n] = j; box[n] = b; n++;
    }
  });
  starts.push(n);
  return { row, col, box, starts };
}

/** What no slider changes, once per image and model: the default boxes (xyxy), the (G, A)
 * IoU (float32, as torchvision's box_iou), each box's place and input-px size (float32, as
 * `db.cxcywh[:, 2:] * image_size`), each GT's best box overall (torch's max and argmax:
 * the first index on ties) and on each level. */
function matchingStatic(cfg, gtNorm, G) {
  const boxes = defaultBoxes(cfg), dXyxy = cxcywhToXyxy(boxes.cxcywh), A = dXyxy.length / 4;
  const iou = boxIou(gtNorm, dXyxy), places = boxPlaces(cfg, boxes.labels);
  const wIn = new Float32Array(A), hIn = new Float32Array(A);
  for (let a = 0; a < A; a++) { wIn[a] = boxes.cxcywh[4 * a + 2] * cfg.image_size; hIn[a] = boxes.cxcywh[4 * a + 3] * cfg.image_size; }
  const argmax = (g, from, to) => { let b = from; for (let a = from + 1; a < to; a++) if (iou[g * A + a] > iou[g * A + b]) b = a; return b; };
  const bestA = [], levelBest = [];
  for (let g = 0; g < G; g++) {
    bestA.push(A ? argmax(g, 0, A) : -1);
    levelBest.push(cfg.feature_maps.map((f, k) => argmax(g, places.starts[k], places.starts[k + 1])));
  }
  return { cfg, A, G, iou, dXyxy, level: boxes.level, labels: boxes.labels, wIn, hIn, bestA, levelBest, ...places };
}

function featureMapText(cfg, k) { return `${cfg.feature_maps[k]}x${cfg.feature_maps[k]}`; }

/** Python's f"{v:g}" for the thresholds (6 significant digits, no exponent in (0, 1]). */
function pyG(v) { return String(+Number(v).toPrecision(6)); }

/** explorer.views.matching.iou_text: rounded down to `decimals` (a value below a threshold never reads as it). */
function iouText(v, decimals = 3) {
  const scale = 10 ** decimals;
  return (Math.floor(v * scale + 1e-9) / scale).toFixed(decimals);
}

/** explorer.views.matching._status. */
function matchStatus(nMatch, bestIou, thr) {
  if (nMatch === 0) return "no default box overlaps it: never matched";
  if (bestIou < thr) return `no default box reaches IoU ${pyG(thr)}: only the forced best match`;
  return "matched above the threshold";
}

/** explorer.views.matching.matching_view's tables from `matchIou`'s result `m` at `thr`:
 * {records (one per positive, by default-box index), summary (one per GT), per_gt_level
 * (one per GT and level)}, the same keys, values and rounding. */
function matchingTables(s, m, thr, gtNames) {
  const { cfg, A, G, iou } = s, L = cfg.feature_maps.length;
  const nMatch = new Int32Array(G), nForced = new Int32Array(G), perLevel = new Int32Array(G * L);
  const records = [];
  for (let a = 0; a < A; a++) {
    const g = m.gtIndex[a];
    if (g < 0) continue;
    const k = s.level[a];
    nMatch[g]++; nForced[g] += m.forced[a]; perLevel[g * L + k]++;
    records.push({ default_index: a, gt: g, gt_label: gtNames[g], level: k, feature_map: featureMapText(cfg, k),
                   row: s.row[a], col: s.col[a], box: s.box[a], ratio: s.labels[k][s.box[a]],
                   w_input_px: pyRound(s.wIn[a], 1), h_input_px: pyRound(s.hIn[a], 1),
                   iou: pyRound(iou[g * A + a], 4), forced: !!m.forced[a] });
  }
  const summary = [], perGtLevel = [];
  for (let g = 0; g < G; g++) {
    const b = s.bestA[g], best = b >= 0 ? iou[g * A + b] : 0;
    summary.push({ gt: g, label: gtNames[g], matches: nMatch[g], forced_matches: nForced[g],
                   best_possible_iou: pyRound(best, 4), best_level: b >= 0 ? s.level[b] : null,
                   above_threshold: best >= thr, status: matchStatus(nMatch[g], best, thr) });
    for (let k = 0; k < L; k++) {
      const a = s.levelBest[g][k];
      perGtLevel.push({ gt: g, label: gtNames[g], level: k, feature_map: featureMapText(cfg, k),
                        matches: perLevel[g * L + k], best_iou_on_level: pyRound(iou[g * A + a], 4),
                        best_cell: `(${s.row[a]}, ${s.col[a]})`, best_ratio: s.labels[k][s.box[a]] });
    }
  }
  return { records, summary, per_gt_level: perGtLevel };
}

/** The per-box losses (explorer.views.live_matching.matching_box_data) ready to use. */
function lossInputs(d) {
  const forced = new Map(d.forced_pairs.map(([a, g, c, l]) => [a, { g, conf: c, loc: l }]));
  return { bg: decodeF32(d.conf_loss), pBg: decodeF32(d.p_background), pTop: decodeF32(d.p_top_class),
           top: d.top_class, posConf: decodeF32(d.pos_conf_loss), posLoc: decodeF32(d.pos_loc_loss),
           forced, classNames: d.class_names };
}

/** explorer.views.matching.loss_view from the matching `m` and the mining `mined`
 * (`mineNegatives` on `order` = `lossOrder` of the background loss): L_conf over the
 * positives (each against its GT's label) and the mined negatives, L_loc over the
 * positives, / N, and the mined negatives hardest first. Sums are float64 of the float32
 * per-box terms (the library sums in float32: the same to ~1e-6 relative). */
function lossView(s, m, mined, order, li, alpha = 1) {
  let confSum = 0, locSum = 0;
  for (let a = 0; a < s.A; a++) {
    const g = m.gtIndex[a];
    if (g < 0) { if (mined.mined[a]) confSum += li.bg[a]; continue; }
    const f = m.bestGt[a] === g ? null : li.forced.get(a);
    confSum += f ? f.conf : li.posConf[a];
    locSum += f ? f.loc : li.posLoc[a];
  }
  const denom = Math.max(1, mined.numPos), conf = f32(confSum / denom), loc = f32(locSum / denom);
  const negatives = [];
  for (let n = 0, r = 0; n < order.length && r < mined.numNeg; n++) {
    const a = order[n];
    if (!mined.mined[a]) continue;
    const k = s.level[a], top = li.top[a];
    negatives.push({ rank: mined.rank[a], default_index: a, conf_loss: pyRound(li.bg[a], 4),
                     p_background: pyRound(li.pBg[a], 4),
                     top_class: top < li.classNames.length ? li.classNames[top] : String(top),
                     p_top_class: pyRound(li.pTop[a], 4), level: k, feature_map: featureMapText(s.cfg, k),
                     row: s.row[a], col: s.col[a], ratio: s.labels[k][s.box[a]] });
    r++;
  }
  return { conf, loc, total: f32(conf + f32(alpha * loc)), conf_sum: conf * denom, loc_sum: loc * denom,
           num_pos: mined.numPos, num_hard_negative: mined.numNeg, negatives };
}
