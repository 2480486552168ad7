// Shared by the map and the morph (each component's script starts with this file): Plotly.js loaded once per page
// (the copy the installed plotly package ships, served by the app), and each gallery layer fetched once per URL.
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
// The Plotly this component drew with, kept: the page's window.Plotly may later be another copy (gr.Plot's), and a
// plot can only be restyled by the copy that drew it.
let drawnWith = null;
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
