// Page-side mirrors of the SSD library's maths, in float32 (`Math.fround`) and in the
// library's order of operations, so that the page and the library agree bit for bit.
// The library owns the maths; tests/test_browser_live.py drives every function here on
// random configurations and real data and compares with ssd.priors, ssd.matching, the
// mining of ssd.loss and ssd.nms (torchvision's batched_nms).
//
// Plain function declarations (no import/export): pages/_live.py prepends this file to
// each component's module, and the parity tests load it into a bare page as a script.
//
// float32 arithmetic: for float32 operands a, b, Math.fround(a op b) with op in + - * /
// (and Math.sqrt) is the correctly rounded float32 result, as torch computes it on the CPU.
// A torch comparison with a Python number compares in float32 (`t > 0.3` is
// `t > fround(0.3)`); torchvision's C++ NMS kernel compares its float IoU with a double.

const f32 = Math.fround;

/** Float32Array from base64 of little-endian float32 bytes (explorer.views.live_data.f32_b64). */
function decodeF32(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

// ------------------------------------------------------------------ default boxes
/** ssd.config.linear_scales: s_1..s_m by the paper's rule, plus s_(m+1) one step further. */
function linearScales(sMin, sMax, m) {
  const step = (sMax - sMin) / (m - 1);
  const out = [];
  for (let k = 0; k <= m; k++) out.push(sMin + step * k);
  return out;
}

/** explorer.views.default_boxes.rule_scales: `first` (or null) gives level 0 its own scale. */
function ruleScales(sMin, sMax, m, first) {
  if (first === null || first === undefined) return linearScales(sMin, sMax, m);
  return [first].concat(linearScales(sMin, sMax, m - 1));
}

/** ssd.priors._ratio_label: 2 -> "2", 0.5 -> "1/2". */
function ratioLabel(r) {
  if (r >= 1) return String(+r.toPrecision(6));
  const inv = 1 / r;
  return Math.abs(inv - Math.round(inv)) < 1e-6 ? "1/" + String(+inv.toPrecision(6)) : String(+r.toPrecision(3));
}

/** ssd.priors.wh_pairs: the (w, h) of one cell's boxes on level k, as float32, and labels. */
function whPairs(scales, ratios, k, extraBox, clip) {
  const s = scales[k];
  const pairs = [], labels = [];
  for (const r of ratios) {
    if (r === 1) {
      pairs.push([s, s]); labels.push("1");
      if (extraBox) { const sp = Math.sqrt(s * scales[k + 1]); pairs.push([sp, sp]); labels.push("1'"); }
    }
  }
  for (const r of ratios) {
    if (r !== 1) { pairs.push([s * Math.sqrt(r), s / Math.sqrt(r)]); labels.push(ratioLabel(r)); }
  }
  const wh = pairs.map(([w, h]) => [f32(w), f32(h)]);
  if (clip) for (const p of wh) { p[0] = Math.min(Math.max(p[0], 0), 1); p[1] = Math.min(Math.max(p[1], 0), 1); }
  return { wh, labels };
}

/** ssd.priors.default_boxes: every box of `cfg` ({image_size, feature_maps, steps, scales,
 * aspect_ratios, extra_box, clip}) in the library's order (level, row, column, box).
 * Returns {cxcywh: Float32Array(A*4) normalised, level: Int32Array(A), perLevel, wh, labels}. */
function defaultBoxes(cfg) {
  const levels = cfg.feature_maps.map((f, k) => whPairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, cfg.clip));
  const perLevel = cfg.feature_maps.map((f, k) => f * f * levels[k].wh.length);
  const total = perLevel.reduce((a, b) => a + b, 0);
  const cxcywh = new Float32Array(total * 4);
  const level = new Int32Array(total);
  let n = 0;
  cfg.feature_maps.forEach((f, k) => {
    const fk = f32(cfg.image_size / cfg.steps[k]);  // torch: float32 tensor / Python float
    const wh = levels[k].wh;
    for (let i = 0; i < f; i++) {
      const cy = f32((i + 0.5) / fk);
      for (let j = 0; j < f; j++) {
        const cx = f32((j + 0.5) / fk);
        for (const [w, h] of wh) {
          cxcywh[4 * n] = cx; cxcywh[4 * n + 1] = cy; cxcywh[4 * n + 2] = w; cxcywh[4 * n + 3] = h;
          level[n] = k; n++;
        }
      }
    }
  });
  return { cxcywh, level, perLevel, wh: levels.map(l => l.wh), labels: levels.map(l => l.labels) };
}

/** ssd.boxes.cxcywh_to_xyxy (torchvision box_convert): x1 = cx - 0.5 w, ... in float32. */
function cxcywhToXyxy(cxcywh) {
  const out = new Float32Array(cxcywh.length);
  for (let n = 0; n < cxcywh.length; n += 4) {
    const cx = cxcywh[n], cy = cxcywh[n + 1], hw = f32(0.5 * cxcywh[n + 2]), hh = f32(0.5 * cxcywh[n + 3]);
    out[n] = cx - hw; out[n + 1] = cy - hh; out[n + 2] = cx + hw; out[n + 3] = cy + hh;  // Float32Array rounds
  }
  return out;
}

// ------------------------------------------------------------------ matching
/** torchvision.ops.box_iou of G boxes with A boxes (both xyxy Float32Array), float32 in its
 * order: area1 + area2 - inter. Returns Float32Array(G*A), row g = GT g. */
function boxIou(gtXyxy, dXyxy) {
  const G = gtXyxy.length / 4, A = dXyxy.length / 4;
  const out = new Float32Array(G * A);
  const areaD = new Float32Array(A);
  for (let a = 0; a < A; a++) areaD[a] = f32(f32(dXyxy[4 * a + 2] - dXyxy[4 * a]) * f32(dXyxy[4 * a + 3] - dXyxy[4 * a + 1]));
  for (let g = 0; g < G; g++) {
    const gx1 = gtXyxy[4 * g], gy1 = gtXyxy[4 * g + 1], gx2 = gtXyxy[4 * g + 2], gy2 = gtXyxy[4 * g + 3];
    const areaG = f32(f32(gx2 - gx1) * f32(gy2 - gy1));
    for (let a = 0; a < A; a++) {
      const w = Math.max(f32(Math.min(gx2, dXyxy[4 * a + 2]) - Math.max(gx1, dXyxy[4 * a])), 0);
      const h = Math.max(f32(Math.min(gy2, dXyxy[4 * a + 3]) - Math.max(gy1, dXyxy[4 * a + 1])), 0);
      const inter = f32(w * h);
      out[g * A + a] = inter / f32(f32(areaG + areaD[a]) - inter);
    }
  }
  return out;
}

/** ssd.matching.match on a precomputed (G, A) IoU: step 2 (IoU >= threshold, compared in
 * float32), then step 1 (each GT's best default box) with the library's tie rule (GTs by
 * best IoU, highest first, ties by GT index; each takes its best box no earlier GT took;
 * first index on equal IoUs, as torch's max). Returns {gtIndex: Int32Array(A) (-1 background),
 * iou: Float32Array(A) best IoU, forced: Uint8Array(A), bestGt: Int32Array(A) each box's best
 * GT (step 2's, -1 without GT)}. */
function matchIou(iou, G, A, iouThresh) {
  const thr = f32(iouThresh);
  const gtIndex = new Int32Array(A).fill(-1), best = new Float32Array(A), forced = new Uint8Array(A);
  const bestGt = new Int32Array(A).fill(-1);
  if (G === 0) return { gtIndex, iou: best, forced, bestGt };
  const thrIndex = new Int32Array(A);
  for (let a = 0; a < A; a++) {
    let b = iou[a], bg = 0;
    for (let g = 1; g < G; g++) if (iou[g * A + a] > b) { b = iou[g * A + a]; bg = g; }
    best[a] = Math.max(b, 0);
    bestGt[a] = bg;
    thrIndex[a] = b < thr ? -1 : bg;
    gtIndex[a] = thrIndex[a];
  }
  const bestOf = [];
  for (let g = 0; g < G; g++) {
    let b = iou[g * A];
    for (let a = 1; a < A; a++) if (iou[g * A + a] > b) b = iou[g * A + a];
    bestOf.push(b);
  }
  const order = [...Array(G).keys()].filter(g => bestOf[g] > 0).sort((p, q) => bestOf[q] - bestOf[p] || p - q);
  const taken = new Uint8Array(A);
  for (const g of order) {
    let b = -1, ba = -1;
    for (let a = 0; a < A; a++) {
      const v = taken[a] ? -1 : iou[g * A + a];
      if (v > b) { b = v; ba = a; }
    }
    if (b <= 0) continue;
    taken[ba] = 1;
    gtIndex[ba] = g;
    forced[ba] = thrIndex[ba] !== g ? 1 : 0;
  }
  return { gtIndex, iou: best, forced, bestGt };
}

/** Boxes by confidence loss, highest first, ties by lower index: the order of
 * ssd.loss.negative_rank. Computed once per image; `mineNegatives` walks it. */
function lossOrder(confLoss) {
  const idx = [...Array(confLoss.length).keys()];
  idx.sort((p, q) => confLoss[q] - confLoss[p] || p - q);
  return Int32Array.from(idx);
}

/** Hard negative mining (ssd.loss): per image min(trunc(P * ratio), A - P) negatives of
 * highest confidence loss. Tie rule: `negative_rank`'s (loss descending, lower default-box
 * index first). Returns {mined: Uint8Array(A), rank: Int32Array(A) (-1 positives), numNeg}. */
function mineNegatives(order, positive, negPosRatio) {
  const A = positive.length;
  let numPos = 0;
  for (let a = 0; a < A; a++) numPos += positive[a] ? 1 : 0;
  const numNeg = Math.min(Math.trunc(f32(numPos * f32(negPosRatio))), A - numPos);
  const mined = new Uint8Array(A), rank = new Int32Array(A).fill(-1);
  let r = 0;
  for (let n = 0; n < A; n++) {
    const a = order[n];
    if (positive[a]) continue;
    rank[a] = r;
    if (r < numNeg) mined[a] = 1;
    r++;
  }
  return { mined, rank, numNeg, numPos };
}

// ------------------------------------------------------------------ NMS
/** ssd.postprocess after the candidates: the candidates with score > score_thresh (float32
 * compare, as select_candidates), greedy per-class NMS as torchvision's batched_nms (its
 * coordinate offset per class when it takes that path: <= 1000 boxes on the CPU; IoU in
 * float32 in its kernel's order, compared with the threshold as a double), who removed
 * whom, and the first detections_per_img kept boxes.
 * boxes: Float32Array(N*4) xyxy network-input px; scores Float32Array(N); labels Int32Array(N),
 * in the library's candidate order. Returns {selected: Uint8Array(N), kept: Uint8Array(N),
 * suppressedBy: Int32Array(N) (-1), suppressIou: Float32Array(N), keep: [indices by score], final}. */
function nmsTrace(boxes, scores, labels, scoreThresh, nmsThresh, detectionsPerImg) {
  const N = scores.length, thr = f32(scoreThresh);
  const selected = new Uint8Array(N), kept = new Uint8Array(N);
  const suppressedBy = new Int32Array(N).fill(-1), suppressIou = new Float32Array(N);
  const sel = [];
  for (let n = 0; n < N; n++) if (scores[n] > thr) { selected[n] = 1; sel.push(n); }
  const vanilla = sel.length * 4 > 4000;  // batched_nms: per-class path above 4000 numbers
  const c = new Float32Array(N * 4);
  let off1 = 0;
  if (!vanilla) { let mx = -Infinity; for (const n of sel) for (let q = 0; q < 4; q++) mx = Math.max(mx, boxes[4 * n + q]); off1 = f32(mx + 1); }
  for (const n of sel) {
    const off = vanilla ? 0 : f32(labels[n] * off1);
    for (let q = 0; q < 4; q++) c[4 * n + q] = vanilla ? boxes[4 * n + q] : boxes[4 * n + q] + off;
  }
  const area = new Float32Array(N);
  for (const n of sel) area[n] = f32(f32(c[4 * n + 2] - c[4 * n]) * f32(c[4 * n + 3] - c[4 * n + 1]));
  const order = sel.slice().sort((p, q) => scores[q] - scores[p] || p - q);  // stable, descending
  const byClass = new Map();
  for (const n of order) { if (!byClass.has(labels[n])) byClass.set(labels[n], []); byClass.get(labels[n]).push(n); }
  const done = new Uint8Array(N);
  for (const list of byClass.values()) {
    for (let p = 0; p < list.length; p++) {
      const i = list[p];
      if (done[i]) continue;
      kept[i] = 1; done[i] = 1;
      const ix1 = c[4 * i], iy1 = c[4 * i + 1], ix2 = c[4 * i + 2], iy2 = c[4 * i + 3];
      for (let q = p + 1; q < list.length; q++) {
        const j = list[q];
        if (done[j]) continue;
        const w = Math.max(0, f32(Math.min(ix2, c[4 * j + 2]) - Math.max(ix1, c[4 * j])));
        const h = Math.max(0, f32(Math.min(iy2, c[4 * j + 3]) - Math.max(iy1, c[4 * j + 1])));
        const inter = f32(w * h);
        const ovr = f32(inter / f32(f32(area[i] + area[j]) - inter));
        if (ovr > nmsThresh) { done[j] = 1; suppressedBy[j] = i; suppressIou[j] = ovr; }
      }
    }
  }
  const keep = order.filter(n => kept[n]);
  return { selected, kept, suppressedBy, suppressIou, keep, final: keep.slice(0, detectionsPerImg) };
}

/** The boxes of cell (i, j) on level k, xyxy normalised, as `defaultBoxes` computes them
 * (the Default boxes figure draws only these). Returns [[x1, y1, x2, y2], ...] and labels. */
function cellBoxes(cfg, k, i, j) {
  const { wh, labels } = whPairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, cfg.clip);
  const fk = f32(cfg.image_size / cfg.steps[k]);
  const cx = f32((j + 0.5) / fk), cy = f32((i + 0.5) / fk);
  const boxes = wh.map(([w, h]) => [f32(cx - f32(0.5 * w)), f32(cy - f32(0.5 * h)), f32(cx + f32(0.5 * w)),
                                    f32(cy + f32(0.5 * h))]);
  return { boxes, labels };
}

// ------------------------------------------------------------------ tables
/** explorer.views.default_boxes.level_rows: one row per level, the same keys, values and
 * rounding (the live Default boxes page's downloads). */
function levelRows(cfg) {
  const S = cfg.image_size;
  return cfg.feature_maps.map((f, k) => {
    const { wh, labels } = whPairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, cfg.clip);
    return { level: k, feature_map: `${f}x${f}`, boxes_per_location: labels.length, boxes: f * f * labels.length,
             scale_s_k: pyRound(cfg.scales[k], 4), scale_px: pyRound(cfg.scales[k] * S, 1), step_px: cfg.steps[k],
             "box_sizes_px (w x h)": wh.map(([w, h], n) => `${labels[n]}:${pyRound(w * S, 0)}x${pyRound(h * S, 0)}`).join(" ") };
  });
}

/** Python's round(v, d) for the tables: the double's exact value rounded to d decimals,
 * exact ties to even (JavaScript's toFixed takes the larger one: 215.25 -> "215.3", Python
 * 215.2). A double's exact decimal expansion shows a tie within d + 30 digits here. */
function pyRound(v, d) {
  if (!Number.isFinite(v)) return v;
  const ex = Math.abs(v).toFixed(Math.min(100, d + 30));
  const dot = ex.indexOf("."), tail = ex.slice(dot + 1 + d);
  if (/^50*$/.test(tail)) {  // an exact tie: keep the even last digit
    const kept = ex.slice(0, dot + 1 + d).replace(/\.$/, "");
    const last = +kept.replace(".", "").slice(-1);
    const down = +kept, step = 10 ** -d;
    const r = last % 2 === 0 ? down : +(down + step).toFixed(d);
    return v < 0 ? -r : r;
  }
  return +v.toFixed(d);
}

// ------------------------------------------------------------------ NMS tables
/** explorer.views.nms.candidate_records from `nmsTrace`'s result `r` on the floor
 * candidates: one row per candidate above the score threshold, numbered as the library
 * numbers the candidates at that threshold (`candidate`: its place among them; the order
 * is the floor's, which keeps the library's class-then-score order). `c` holds the floor
 * candidates' scores (Float32Array), labels (Int32Array), level, row, col, default_index
 * (arrays), boxes_px (Float32Array N*4, original px) and class_names. Scores rounded to 4
 * decimals, boxes to 1 (as the server's rows). */
function nmsRecords(r, c) {
  const N = c.scores.length, q = new Int32Array(N).fill(-1);
  let count = 0;
  for (let n = 0; n < N; n++) if (r.selected[n]) q[n] = count++;
  const number = new Map(r.final.map((n, k) => [n, k + 1]));
  const rnd = pyRound;
  const name = n => (number.has(n) ? `detection ${number.get(n)}` :
    `${c.class_names[c.labels[n]]} ${c.scores[n].toFixed(3)} (level ${c.level[n]}, cell (${c.row[n]}, ${c.col[n]}))`);
  const rows = [];
  for (let n = 0; n < N; n++) {
    if (!r.selected[n]) continue;
    const s = r.suppressedBy[n], b = c.boxes_px;
    rows.push({ detection: number.has(n) ? number.get(n) : null, candidate: q[n], label: c.labels[n],
                class: c.class_names[c.labels[n]], score: rnd(c.scores[n], 4), level: c.level[n], row: c.row[n],
                col: c.col[n], default_index: c.default_index[n], x1: rnd(b[4 * n], 1), y1: rnd(b[4 * n + 1], 1),
                x2: rnd(b[4 * n + 2], 1), y2: rnd(b[4 * n + 3], 1), kept: !!r.kept[n], final: number.has(n),
                suppressed_by: s >= 0 ? q[s] : null, suppressed_by_name: s >= 0 ? name(s) : null,
                suppressor_score: s >= 0 ? rnd(c.scores[s], 4) : null,
                iou_with_suppressor: s >= 0 ? rnd(r.suppressIou[n], 4) : null });
  }
  return rows;
}

/** explorer.views.nms.count_table: per class (classes 1.. with a candidate or a
 * detection) and per level, the candidates, those kept by NMS and the final detections. */
function nmsCounts(records, classNames, numLevels) {
  const perClass = classNames.slice(1).map(cls => ({ class: cls, candidates: 0, kept_by_nms: 0, detections: 0 }));
  const perLevel = Array.from({ length: numLevels }, (_, k) => ({ level: k, candidates: 0, kept_by_nms: 0, detections: 0 }));
  for (const rec of records) {
    for (const row of [perClass[rec.label - 1], perLevel[rec.level]]) {
      row.candidates += 1; row.kept_by_nms += rec.kept ? 1 : 0; row.detections += rec.final ? 1 : 0;
    }
  }
  return { perClass: perClass.filter(r => r.candidates || r.detections), perLevel };
}
