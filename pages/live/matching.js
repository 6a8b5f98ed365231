// Matching & hard negatives, live: the IoU of every default box with the ground truth and
// the per-box losses arrive once per image and model; every step of the IoU threshold or
// the neg:pos ratio re-applies the paper's matching rule and the mining, and recomputes
// the page's numbers and tables (matching_tables.js, the mirror of explorer.views.matching).

const MT_MAX_W = 720, MT_MAX_H = 560;  // CSS px, the figure's box
const MT_ROWS = 200;  // rows drawn of a long table (its downloads hold every row)

function mtPrepare(st) {
  const d = st.data;
  st.s = matchingStatic(d.config, decodeF32(d.gt_norm), d.num_gt);
  st.li = lossInputs(d);
  st.lossOrder = lossOrder(st.li.bg);
}

function mtCompute(st) {
  const s = st.s, m = matchIou(s.iou, s.G, s.A, st.v.iou_thresh);
  const mined = mineNegatives(st.lossOrder, Uint8Array.from(m.gtIndex, g => (g >= 0 ? 1 : 0)), st.v.neg_pos_ratio);
  st.m = m; st.mined = mined;
  st.tables = matchingTables(s, m, st.v.iou_thresh, st.data.gt_names);
  st.loss = lossView(s, m, mined, st.lossOrder, st.li);
}

function mtDraw(st) {
  mtCompute(st);
  const d = st.data, s = st.s, m = st.m, [H, W] = d.image_hw;
  const scale = Math.min(MT_MAX_W / W, MT_MAX_H / H);
  const w = Math.round(W * scale), h = Math.round(H * scale);
  const ctx = sizedCanvas(st.ui.canvas, w, h);
  ctx.fillStyle = "#f4f4f4"; ctx.fillRect(0, 0, w, h);
  if (st.image) ctx.drawImage(st.image, 0, 0, w, h);
  const dx = s.dXyxy;
  const shownNeg = st.ui.showNeg.checked ? mtDrawNegatives(ctx, st, w, h) : 0;
  for (let a = 0; a < s.A; a++) {
    if (m.gtIndex[a] < 0) continue;
    const color = d.colors.level[s.level[a] % d.colors.level.length];
    strokeBox(ctx, dx[4 * a] * w, dx[4 * a + 1] * h, dx[4 * a + 2] * w, dx[4 * a + 3] * h, color, 2,
              m.forced[a] ? [6, 4] : []);
  }
  d.gt_px.forEach((b, g) => {
    strokeBox(ctx, b[0] * scale, b[1] * scale, b[2] * scale, b[3] * scale, d.colors.gt, 3);
    labelText(ctx, `GT ${g}: ${d.gt_names[g]}`, b[0] * scale, b[1] * scale, d.colors.gt);
  });
  const forced = st.tables.records.filter(r => r.forced).length;
  st.ui.summary.textContent = `${st.mined.numPos} positive default boxes (${forced} forced: dashed), ` +
    `${st.mined.numNeg} hard negatives of ${s.A - st.mined.numPos} negatives, at IoU threshold ` +
    `${st.v.iou_thresh.toFixed(2)} and neg:pos ${st.v.neg_pos_ratio.toFixed(1)}. ` +
    (shownNeg ? `Hard negatives by rank (the ${shownNeg} hardest drawn): red the hardest 10%, orange the next 40%, ` +
                "yellow the easiest 50%." : "");
  later(st, () => { mtMetrics(st, forced); mtTables(st); });
}

// The hard negatives by rank, as the server's hard-negative figure (explorer.views.matching.
// hard_negative_figure): the first MT_MAX_NEG by rank, in three bands of hardness.
const MT_MAX_NEG = 300;
const MT_BANDS = [[0, 0.1, "#ff0000"], [0.1, 0.5, "#ff6a00"], [0.5, 1.01, "#ffc400"]];

/** Draw the mined negatives of rank < MT_MAX_NEG, easiest band first (the hardest on top);
 * returns how many were drawn. */
function mtDrawNegatives(ctx, st, w, h) {
  const mined = st.mined, n = Math.min(mined.numNeg, MT_MAX_NEG), byRank = new Int32Array(n), dx = st.s.dXyxy;
  for (let a = 0; a < st.s.A; a++) if (mined.mined[a] && mined.rank[a] < n) byRank[mined.rank[a]] = a;
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

/** The page's numbers (the server's metrics: pages/matching.py `_metrics`). */
function mtMetrics(st, forced) {
  const t = st.tables, l = st.loss;
  const items = [["Ground-truth boxes", st.s.G], ["Positive default boxes", t.records.length],
    ["of them forced (best box, below threshold)", forced],
    ["GTs with no box above threshold", t.summary.filter(r => !r.above_threshold).length],
    ["N (positives)", l.num_pos], ["hard negatives", l.num_hard_negative], ["L_conf / N", l.conf.toFixed(4)],
    ["L_loc / N", l.loc.toFixed(4)], ["L total", l.total.toFixed(4)]];
  st.ui.metrics.replaceChildren(...items.map(([label, value]) => {
    const m = el("div", { class: "ssd-metric" });
    m.append(el("span", { class: "ssd-metric-label" }, label), el("span", { class: "ssd-metric-value" }, String(value)));
    return m;
  }));
}

/** A table of `rows` (objects; the first row's keys as headers), the first MT_ROWS drawn. */
function mtTable(rows, keys) {
  const shown = rows.slice(0, MT_ROWS);
  const cell = v => (v === null || v === undefined ? "" : v);
  return tableOf(keys, shown.map(r => keys.map(k => cell(r[k]))));
}

const MT_KEYS = {
  summary: ["gt", "label", "matches", "forced_matches", "best_possible_iou", "best_level", "above_threshold", "status"],
  perLevel: ["gt", "label", "level", "feature_map", "matches", "best_iou_on_level", "best_cell", "best_ratio"],
  records: ["default_index", "gt", "gt_label", "level", "feature_map", "row", "col", "box", "ratio", "w_input_px",
            "h_input_px", "iou", "forced"],
  negatives: ["rank", "default_index", "conf_loss", "p_background", "top_class", "p_top_class", "level", "feature_map",
              "row", "col", "ratio"],
};

function mtMore(n) { return n > MT_ROWS ? ` (the first ${MT_ROWS} drawn; the downloads hold all)` : ""; }

/** The section's tables under the figure (the server's `_positives_tables` / `_loss_section`). */
function mtTables(st) {
  const t = st.ui.t, tab = st.tables, l = st.loss;
  if (t.section === "positives") {
    const missing = tab.summary.filter(r => !r.above_threshold);
    t.warning.textContent = missing.length ? "No default box reaches the threshold for: " + missing.map(r =>
      `GT ${r.gt} (${r.label}, best IoU ${iouText(st.s.iou[r.gt * st.s.A + st.s.bestA[r.gt]])})`).join(", ") +
      ". Only the forced match trains it; other scales or ratios would fit it better." : "";
    t.warning.hidden = !missing.length;
    t.summary.replaceChildren(mtTable(tab.summary, MT_KEYS.summary));
    t.perLevelBody.replaceChildren(mtTable(tab.per_gt_level, MT_KEYS.perLevel));
    t.allTitle.textContent = `All ${tab.records.length} positive default boxes` + mtMore(tab.records.length);
    if (t.all.open) t.allBody.replaceChildren(mtTable(tab.records, MT_KEYS.records));
    else t.allBody.replaceChildren();
  } else if (t.section === "loss") {
    t.sums.textContent = `Sums before dividing by N: L_conf = ${l.conf_sum.toFixed(3)}, L_loc = ${l.loc_sum.toFixed(3)}. ` +
      `${st.s.A - l.num_pos - l.num_hard_negative} easy negatives are ignored.`;
    t.negTitle.textContent = "The figure above draws the hard negatives by rank: red the hardest 10%, orange the next " +
      `40%, yellow the easiest 50% (the ${MT_MAX_NEG} hardest at most). Their table` + mtMore(l.negatives.length) + ":";
    t.neg.replaceChildren(mtTable(l.negatives, MT_KEYS.negatives));
  }
}

function mtPayload(st) {
  const t = st.tables, l = st.loss, v = st.v;
  if (st.ui.t.section === "positives") {
    return { iou_threshold: v.iou_thresh, summary: t.summary, per_gt_level: t.per_gt_level, positives: t.records };
  }
  return { iou_threshold: v.iou_thresh, neg_pos_ratio: v.neg_pos_ratio, N: l.num_pos, L_conf_over_N: l.conf,
           L_loc_over_N: l.loc, total: l.total, L_conf_sum: l.conf_sum, L_loc_sum: l.loc_sum, hard_negatives: l.negatives };
}

/** The section's frame, built when the section changes (the tables refill it on every step). */
function mtSectionFrame(st) {
  const sec = st.data.section, box = st.ui.section, t = st.ui.t = { section: sec };
  box.replaceChildren();
  const downloads = el("div", { class: "ssd-downloads" });
  const json = () => JSON.stringify(mtPayload(st), null, 1);
  if (sec === "positives") {
    t.warning = el("p", { class: "ssd-warning", role: "status" }); t.summary = el("div", { class: "ssd-scroll" });
    t.perLevel = el("details"); t.perLevel.open = true; t.perLevelBody = el("div", { class: "ssd-scroll" });
    t.perLevel.append(el("summary", {}, "Matches per ground truth and level"), t.perLevelBody);
    t.all = el("details"); t.allTitle = el("summary"); t.allBody = el("div", { class: "ssd-scroll" });
    t.all.append(t.allTitle, t.allBody);
    t.all.addEventListener("toggle", () => mtTables(st));
    downloadButton(downloads, "Matches (CSV)", "matches.csv", "text/csv", () => rowsToCsv(st.tables.records));
    downloadButton(downloads, "Matches (JSON)", "matches.json", "application/json", json);
    box.append(el("p", { class: "ssd-table-title" }, "Best possible match per ground truth"), t.warning, t.summary,
               t.perLevel, t.all, downloads);
  } else if (sec === "loss") {
    t.sums = el("p", { class: "ssd-summary" }); t.negTitle = el("p", { class: "ssd-summary" });
    t.neg = el("div", { class: "ssd-scroll" });
    downloadButton(downloads, "Hard negatives and loss (CSV)", "hard_negatives.csv", "text/csv",
                   () => rowsToCsv(st.loss.negatives));
    downloadButton(downloads, "Hard negatives and loss (JSON)", "hard_negatives.json", "application/json", json);
    box.append(t.sums, t.negTitle, t.neg, downloads);
  }
}

function mtCommit(component, st) {
  commit(component, st, { iou_thresh: st.v.iou_thresh, neg_pos_ratio: st.v.neg_pos_ratio });
}

function mtBuild(component, st) {
  const ui = st.ui = frame(component.parentElement, component, "Positive default boxes and hard negatives on the image");
  const r = st.data.ranges;
  const redraw = () => mtDraw(st);
  const control = (name, id, label) => rangeControl(ui.controls, id, label, r[name], st.v[name],
    v => { st.v[name] = v; }, redraw, () => mtCommit(component, st));
  st.ctl = {
    iou_thresh: control("iou_thresh", "mt-live-iou", "IoU threshold"),
    neg_pos_ratio: control("neg_pos_ratio", "mt-live-ratio", "Negatives per positive (neg:pos)"),
  };
  const box = el("div", { class: "ssd-control" });
  ui.showNeg = el("input", { type: "checkbox", id: "mt-live-neg" });
  ui.showNeg.checked = true;
  ui.showNeg.addEventListener("change", redraw);
  box.append(ui.showNeg, el("label", { for: "mt-live-neg" }, "show hard negatives"));
  ui.controls.appendChild(box);
  ui.metrics = el("div", { class: "ssd-metrics" });
  ui.section = el("div");
  ui.table.append(ui.metrics, ui.section);
}

const MT_VALUES = ["iou_thresh", "neg_pos_ratio"];

export default function (component) {
  const got = acceptData(component);
  if (!got) return;
  const { st, data, old } = got;
  if (isEcho(st, old, data, MT_VALUES)) return;
  if (!old || old.held_id !== data.held_id || JSON.stringify(old.config) !== JSON.stringify(data.config)) mtPrepare(st);
  if (!st.v || caughtUp(st, data)) st.v = { iou_thresh: data.iou_thresh, neg_pos_ratio: data.neg_pos_ratio };
  if (!st.ui) mtBuild(component, st);
  if (!st.ui.t || st.ui.t.section !== data.section) mtSectionFrame(st);
  st.ctl.iou_thresh.set(st.v.iou_thresh);
  st.ctl.neg_pos_ratio.set(st.v.neg_pos_ratio);
  loadImage(st, data.image_uri, () => mtDraw(st));
  mtDraw(st);
}
