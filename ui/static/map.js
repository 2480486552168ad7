// Landmark Lens map: Plotly.js inside a gr.HTML component (js_on_load body).
// `props.value` = {layer: URL of the encoder's gallery layer JSON, traces: query layer, layout: overrides}.
// The gallery layer is fetched once per URL and kept; a search only brings its small query layer.
// Clicking a gallery point triggers 'select' with {index: row, value: path}; hovering shows its thumbnail.
const plotDiv = element.querySelector(".ll-map-plot");
const preview = element.querySelector(".ll-map-preview");
const previewImg = preview.querySelector("img");
const previewText = preview.querySelector(".ll-map-preview-text");
const status = element.querySelector(".ll-map-status");
const plotlyUrl = props.plotly_url;

window.__llPlotly = window.__llPlotly || new Promise((resolve, reject) => {
  if (window.Plotly) return resolve(window.Plotly);
  const s = document.createElement("script");
  s.src = plotlyUrl;
  s.onload = () => resolve(window.Plotly);
  s.onerror = () => reject(new Error("could not load " + plotlyUrl));
  document.head.appendChild(s);
});
window.__llLayers = window.__llLayers || {};
function loadLayer(url) {
  if (!window.__llLayers[url]) {
    window.__llLayers[url] = fetch(url).then((r) => {
      if (!r.ok) throw new Error("map layer " + r.status);
      return r.json();
    });
    window.__llLayers[url].catch(() => delete window.__llLayers[url]);
  }
  return window.__llLayers[url];
}

let layer = null;
let bound = false;
let token = 0;

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
}

async function render() {
  const v = props.value;
  const mine = ++token;
  if (!v || !v.layer) {
    status.textContent = (v && v.message) || "";
    if (window.Plotly) window.Plotly.purge(plotDiv);
    plotDiv.dataset.points = "0";
    return;
  }
  try {
    const [Plotly, l] = await Promise.all([window.__llPlotly, loadLayer(v.layer)]);
    if (mine !== token) return;
    layer = l;
    const layout = Object.assign({}, l.layout, v.layout || {});
    if (v.layout && v.layout.title_text) layout.title = Object.assign({}, l.layout.title, { text: v.layout.title_text });
    delete layout.title_text;
    layout.height = layout.height || props.height;
    await Plotly.react(plotDiv, l.data.concat(v.traces || []), layout,
                       { responsive: true, displaylogo: false, scrollZoom: true });
    status.textContent = "";
    plotDiv.dataset.points = String(l.meta.paths.length);
    plotDiv.dataset.query = JSON.stringify((v.traces || []).map((t) => t.name));
    bind(Plotly);
  } catch (err) {
    status.textContent = "The map could not be drawn: " + err.message;
  }
}

watch("value", render);
render();
