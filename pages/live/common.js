// Shared page-side helpers of the live figures: controls, canvas, image, commit to Python.
// Every text drawn from data (class names, labels) goes through textContent or canvas
// fillText: never markup.

/** The figure's state kept across calls (Streamlit calls the module again on every rerun). */
function liveState(parentElement) {
  if (!parentElement.__ssdLive) parentElement.__ssdLive = { seq: 0, dataJson: null, ui: null };
  const st = parentElement.__ssdLive;
  if (st.ui && st.ui.root !== parentElement.querySelector(".ssd-live")) { st.ui = null; st.dataJson = null; }
  return st;
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A native range input whose accessible name is its visible label (label for=id), with
 * its value shown beside it. On every step `set(v)` records the value and `redraw()` draws
 * it; `onCommit(v)` sends it to Python on release: the input's `change` after a pointer
 * drag or click, and on a key step (a release by itself) already before the redraw, so
 * that Python's round trip and the page's drawing overlap. */
function rangeControl(parent, id, label, range, value, set, redraw, onCommit) {
  const row = el("div", { class: "ssd-control" });
  const lab = el("label", { for: id }, label);
  const input = el("input", { type: "range", id, min: String(range[0]), max: String(range[1]), step: String(range[2]) });
  input.value = String(value);
  const out = el("output", { for: id, "aria-hidden": "true" }, fmt(value, range[2]));
  let pointer = false, sent = null;
  const send = (v) => { if (v !== sent) { sent = v; onCommit(v); } };
  input.addEventListener("pointerdown", () => { pointer = true; });
  input.addEventListener("pointerup", () => { pointer = false; });
  input.addEventListener("input", () => {
    const v = +input.value;
    out.textContent = fmt(v, range[2]);
    set(v);
    if (!pointer) send(v);  // a key step: commit first, then draw
    redraw();
  });
  input.addEventListener("change", () => { pointer = false; send(+input.value); });
  row.append(lab, input, out);
  parent.appendChild(row);
  return {
    input,
    set(v) { input.value = String(v); out.textContent = fmt(+input.value, range[2]); sent = +input.value; },
    get() { return +input.value; },
  };
}

/** Run `fn` in a task of its own after this one (the newest call wins): the tables under
 * a figure, after the canvas and after a key step's commit, which Streamlit sends from a
 * task it queued when the commit was made: Python's round trip starts first. */
function later(st, fn) {
  clearTimeout(st.laterTimer);
  st.laterTimer = setTimeout(fn, 0);
}

function fmt(v, step) {
  const d = step >= 1 ? 0 : Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
  return Number(v).toFixed(d);
}

/** A canvas sized for the screen's pixel ratio; returns {canvas, ctx, w, h} in CSS px. */
function sizedCanvas(canvas, w, h) {
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    canvas.style.width = w + "px"; canvas.style.height = h + "px";
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

/** The figure background, loaded once per URI; `onload` redraws. */
function loadImage(state, uri, onload) {
  if (!uri) { state.image = null; return; }
  if (state.imageUri === uri) return;
  state.imageUri = uri;
  const img = new Image();
  img.onload = () => { if (state.imageUri === uri) { state.image = img; onload(); } };
  img.src = uri;
}

/** Send the controls' values to Python (one state value, a new sequence number each time). */
function commit(component, state, values) {
  state.seq += 1;
  component.setStateValue("commit", Object.assign({ seq: state.seq }, values));
}

/** Whether Python has seen the newest commit: until then its data carries older values,
 * and the controls keep what the user set. */
function caughtUp(state, data) {
  return (data.seq || 0) >= state.seq;
}

function strokeBox(ctx, x1, y1, x2, y2, color, width, dash) {
  ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash || []);
  ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
}

function labelText(ctx, text, x, y, color) {
  ctx.font = "12px sans-serif";
  const w = ctx.measureText(text).width + 6;
  ctx.fillStyle = color; ctx.fillRect(x, Math.max(0, y - 15), w, 15);
  ctx.fillStyle = "#000"; ctx.fillText(text, x + 3, Math.max(11, y - 4));
}

function tableOf(headers, rows) {
  const t = el("table", { class: "ssd-table" });
  const hr = el("tr");
  for (const h of headers) hr.appendChild(el("th", {}, h));
  t.appendChild(hr);
  for (const r of rows) {
    const tr = el("tr");
    for (const c of r) tr.appendChild(el("td", {}, String(c)));
    t.appendChild(tr);
  }
  return t;
}

/** A CSV of flat rows (header: the first row's keys; null -> empty; text quoted when needed). */
function rowsToCsv(rows) {
  if (!rows.length) return "";
  const keys = Object.keys(rows[0]);
  const cell = v => {
    if (v === null || v === undefined) return "";
    const t = String(v);
    return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
  };
  return [keys.join(","), ...rows.map(r => keys.map(k => cell(r[k])).join(","))].join("\r\n") + "\r\n";
}

/** A button that downloads `make()`'s text as `fileName` (a name, or a function giving it;
 * computed on click, in the page). */
function downloadButton(parent, label, fileName, mime, make) {
  const b = el("button", { type: "button", class: "ssd-download" }, label);
  b.addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([make()], { type: mime }));
    const a = el("a", { href: url, download: typeof fileName === "function" ? fileName() : fileName });
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  parent.appendChild(b);
  return b;
}

/** Build the figure's frame once: status line, controls, canvas, notes; say it is live. */
function frame(parentElement, component, title) {
  const root = parentElement.querySelector(".ssd-live");
  const status = root.querySelector(".ssd-live-status");
  if (status) status.remove();
  const ui = {
    root,
    controls: el("div", { class: "ssd-controls" }),
    canvas: el("canvas", { class: "ssd-canvas", role: "img", "aria-label": title }),
    summary: el("p", { class: "ssd-summary", "aria-live": "polite" }),
    table: el("div", { class: "ssd-tables" }),
  };
  root.append(ui.controls, ui.canvas, ui.summary, ui.table);
  component.setStateValue("ready", true);
  return ui;
}

// Large arrays that stay the same for one image and model (`held_fields`, `held_id`; see
// pages/_live.py mount): kept here once sent; Python sends the id alone while the page says
// it has them (state value `have`), and again when the page asks (`have` = null). Returns
// the data with them, or null while they are on their way.
function heldData(component, st, data) {
  if (!data.held_id) return data;
  const fields = data.held_fields || [];
  if (fields.length && fields.every(f => f in data)) {
    st.held = { id: data.held_id, values: Object.fromEntries(fields.map(f => [f, data[f]])) };
    if (st.haveSent !== data.held_id) { st.haveSent = data.held_id; component.setStateValue("have", data.held_id); }
    return data;
  }
  if (st.held && st.held.id === data.held_id) return Object.assign({}, data, st.held.values);
  if (st.haveSent !== null) { st.haveSent = null; component.setStateValue("have", null); }
  st.dataJson = null;
  return null;
}

// The first lines of every figure's entry point: this mount's state and the data Python
// sent; null when the data did not change since the last call (nothing to redraw).
// `old` is the previous data (undefined on the first call).
/** Python's answer to a release: the same data with the values the page already shows (and
 * a newer count): nothing to redraw. `keys`: the controls' names in `data` and `st.v`. */
function isEcho(st, old, data, keys) {
  if (!old || !st.ui || !caughtUp(st, data) || keys.some(k => data[k] !== st.v[k])) return false;
  const rest = d => JSON.stringify(d, (k, v) => (k === "seq" || keys.includes(k) ? undefined : v));
  return rest(old) === rest(data);
}

function acceptData(component) {
  const st = liveState(component.parentElement);
  let data = component.data;
  const json = JSON.stringify(data);
  if (json === st.dataJson && st.ui) return null;
  st.dataJson = json;
  data = heldData(component, st, data);
  if (!data) return null;
  if (!st.data) st.seq = Math.max(st.seq, data.seq || 0);  // a new mount continues Python's count
  const old = st.data;
  st.data = data;
  return { st, data, old };
}
