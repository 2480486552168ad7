// Landmark Lens map: Plotly.js inside a gr.HTML component (js_on_load body).
// `props.value` = {layer: URL of the encoder's gallery layer JSON, traces: query layer, layout: overrides}.
// The gallery layer is fetched once per URL and kept; a search only brings its small query layer.
// Clicking a gallery point triggers 'select' with {index: row, value: path}; hovering shows its thumbnail.
// A selection (lasso or box, or a tap on a landmark in the legend) is the page's, not one map's: it goes out as a
// window event that every map answers by lighting up the same photos (matched by path), and to Python as
// 'option_select' with {paths} (the grid, the counts, each encoder's "together"). A double click clears it.
const plotDiv = element.querySelector(".ll-map-plot");
const preview = element.querySelector(".ll-map-preview");
const previewImg = preview.querySelector("img");
const previewText = preview.querySelector(".ll-map-preview-text");
const status = element.querySelector(".ll-map-status");


let layer = null;
let bound = false;
let token = 0;
let rowsOfPath = null;  // path -> row of this map's layer
window.__llSelection = window.__llSelection || [];  // the page's selection: gallery paths

// The page's selection is drawn on a canvas of its own over the map's WebGL layer (under the legend), not by
// restyling the traces: any restyle makes Plotly recompute and redraw the whole figure (axes, a 21-50 entry legend,
// every trace), about 100 ms per map in software WebGL, while the canvas redraws 500 dots in well under 10 ms.
let chosenRows = [];  // rows of this map's layer in the page's selection
let rowXY = null;  // row -> [x, y, colour] of this map's layer
const overlay = document.createElement("canvas");
overlay.className = "ll-map-overlay";
overlay.style.cssText = "position:absolute;left:0;top:0;pointer-events:none;";

function indexLayer() {
  rowsOfPath = new Map(layer.meta.paths.map((p, r) => [p, r]));
  rowXY = new Array(layer.meta.paths.length);
  for (const t of layer.data) {
    const colour = typeof t.marker.color === "string" ? t.marker.color : "#555";
    t.customdata.forEach((row, j) => { rowXY[row] = [t.x[j], t.y[j], colour]; });
  }
}

function drawSelection() {
  const full = plotDiv._fullLayout;
  const ctx = overlay.getContext("2d");
  if (!full || !full.xaxis || !chosenRows.length) {
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    return;
  }
  const host = plotDiv.querySelector(".gl-container") || plotDiv;
  if (overlay.parentNode !== host) host.appendChild(overlay);
  const dpr = window.devicePixelRatio || 1, w = full.width, h = full.height;
  if (overlay.width !== Math.round(w * dpr) || overlay.height !== Math.round(h * dpr)) {
    overlay.width = Math.round(w * dpr);
    overlay.height = Math.round(h * dpr);
    overlay.style.width = w + "px";
    overlay.style.height = h + "px";
  }
  const xa = full.xaxis, ya = full.yaxis;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.save();
  ctx.beginPath();
  ctx.rect(xa._offset, ya._offset, xa._length, ya._length);
  ctx.clip();
  ctx.fillStyle = "rgba(255,255,255,0.62)";  // the rest of the gallery fades back
  ctx.fillRect(xa._offset, ya._offset, xa._length, ya._length);
  ctx.lineWidth = 1;
  ctx.strokeStyle = "#111";
  for (const row of chosenRows) {
    const [x, y, colour] = rowXY[row];
    ctx.beginPath();
    ctx.arc(xa._offset + xa.l2p(x), ya._offset + ya.l2p(y), 4, 0, 2 * Math.PI);
    ctx.fillStyle = colour;
    ctx.fill();
    ctx.stroke();
  }
  ctx.restore();
}

function highlight(paths) {
  if (!layer) return;
  if (!rowsOfPath) indexLayer();
  const rows = new Set((paths || []).map((p) => rowsOfPath.get(p)).filter((r) => r !== undefined));
  chosenRows = [...rows];
  plotDiv.dataset.selected = String(chosenRows.length);
  drawSelection();
}

function share(paths, from) {
  window.__llSelection = paths;
  window.dispatchEvent(new CustomEvent("ll-selection", { detail: { paths, from } }));
  trigger("option_select", { paths });
}

window.addEventListener("ll-selection", (ev) => highlight(ev.detail.paths));

function rowOf(pt) {
  const row = Array.isArray(pt.customdata) ? pt.customdata[0] : pt.customdata;
  return typeof row === "number" && layer && row >= 0 && row < layer.meta.paths.length ? row : null;
}

function bind(Plotly) {
  if (bound) return;
  bound = true;
  plotDiv.on("plotly_click", (ev) => {
    const pt = ev && ev.points && ev.points[0];
    const row = pt ? rowOf(pt) : null;
    if (row === null) return;
    trigger("select", { index: row, value: layer.meta.paths[row] });
  });
  plotDiv.on("plotly_hover", (ev) => {
    const pt = ev && ev.points && ev.points[0];
    const row = pt ? rowOf(pt) : null;
    if (row === null) return;
    previewImg.src = layer.meta.thumb_base + layer.meta.thumbs[row];
    const file = layer.meta.paths[row].split("/").pop();
    previewText.textContent = layer.meta.classes[row] + " · " + file;
    const box = element.getBoundingClientRect();
    const e = ev.event || {};
    const x = (e.clientX || box.left) - box.left, y = (e.clientY || box.top) - box.top;
    preview.style.left = Math.min(Math.max(x + 16, 0), box.width - 180) + "px";
    preview.style.top = Math.min(Math.max(y - 70, 0), box.height - 190) + "px";
    preview.classList.add("shown");
  });
  plotDiv.on("plotly_unhover", () => preview.classList.remove("shown"));
  for (const ev of ["plotly_afterplot", "plotly_relayout", "plotly_relayouting"]) plotDiv.on(ev, drawSelection);
  plotDiv.on("plotly_selected", (ev) => {
    if (!ev || !ev.points) return;  // a click, not a lasso or a box
    const rows = new Set();
    for (const pt of ev.points) {
      if (pt.curveNumber >= layer.data.length) continue;  // the query layer
      const row = rowOf(pt);
      if (row !== null) rows.add(row);
    }
    share([...rows].map((r) => layer.meta.paths[r]), element.id);
  });
  plotDiv.on("plotly_deselect", () => share([], element.id));
  plotDiv.on("plotly_legendclick", (ev) => {
    // a tap on a landmark selects its photos (a lasso is impractical on a phone); a double tap still isolates it
    const trace = layer && layer.data[ev.curveNumber];
    if (!trace || !trace.customdata) return true;
    share(trace.customdata.map((r) => layer.meta.paths[r]), element.id);
    return false;
  });
}

async function render() {
  const v = props.value;
  const mine = ++token;
  if (!v || !v.layer) {
    status.textContent = (v && v.message) || "";
    if (drawnWith) drawnWith.purge(plotDiv);
    plotDiv.dataset.points = "0";
    return;
  }
  try {
    const [Plotly, l] = await Promise.all([window.__llPlotly, loadLayer(v.layer)]);
    if (mine !== token) return;
    if (layer !== l) rowsOfPath = rowXY = null;
    layer = l;
    const layout = Object.assign({}, l.layout, v.layout || {});
    if (v.layout && v.layout.title_text) layout.title = Object.assign({}, l.layout.title, { text: v.layout.title_text });
    delete layout.title_text;
    layout.height = layout.height || props.height;
    drawnWith = Plotly;
    await Plotly.react(plotDiv, l.data.concat(v.traces || []), layout,
                       { responsive: true, displaylogo: false, scrollZoom: true });
    status.textContent = "";
    plotDiv.dataset.points = String(l.meta.paths.length);
    plotDiv.dataset.query = JSON.stringify((v.traces || []).map((t) => t.name));
    bind(Plotly);
    highlight(window.__llSelection);  // a map drawn anew shows the page's selection too
  } catch (err) {
    status.textContent = "The map could not be drawn: " + err.message;
  }
}

watch("value", render);
render();
