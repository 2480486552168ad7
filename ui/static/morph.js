// Landmark Lens morph: one map in which every gallery photo travels from its place under encoder A to its place
// under encoder B (both maps in the shared frame), with a slider and a play button (there and back).
// `props.value` = {a, b: gallery layer URLs, names: [A, B], change: URL of A's layer coloured by how much each
// photo's 10 nearest neighbours change between A and B (null: colour by landmark), query: {a: [x, y], b: [x, y]}}.
// Positions are interpolated here, frame by frame (Plotly animates scattergl by jumping, so it is not asked to).
const plotDiv = element.querySelector(".ll-morph-plot");
const slider = element.querySelector(".ll-morph-slider");
const play = element.querySelector(".ll-morph-play");
const label = element.querySelector(".ll-morph-label");
const status = element.querySelector(".ll-morph-status");


let scene = null;  // {groups: [{rows, xa, ya, xb, yb}], query, names}
let token = 0;
let playing = 0;

function positions(layer) {
  const n = layer.meta.paths.length, x = new Float64Array(n), y = new Float64Array(n);
  for (const t of layer.data) {
    if (!t.customdata) continue;
    t.customdata.forEach((row, j) => { x[row] = t.x[j]; y[row] = t.y[j]; });
  }
  return { x, y };
}

function lerp(a, b, t) { return a + (b - a) * t; }

function frameData(t) {
  const xs = scene.groups.map((g) => g.xa.map((v, i) => lerp(v, g.xb[i], t)));
  const ys = scene.groups.map((g) => g.ya.map((v, i) => lerp(v, g.yb[i], t)));
  if (scene.query) {
    xs.push([lerp(scene.query.a[0], scene.query.b[0], t)]);
    ys.push([lerp(scene.query.a[1], scene.query.b[1], t)]);
  }
  return { x: xs, y: ys };
}

function show(t) {
  if (!scene || !drawnWith) return;
  drawnWith.restyle(plotDiv, frameData(t));
  slider.value = String(Math.round(t * 100));
  plotDiv.dataset.t = t.toFixed(2);
  label.textContent = t < 0.01 ? scene.names[0] : t > 0.99 ? scene.names[1]
    : `${scene.names[0]} → ${scene.names[1]} (${Math.round(t * 100)}%)`;
}

function animate() {
  const mine = ++playing, seconds = 1.6, started = performance.now();
  plotDiv.dataset.reached = "0";
  const step = (now) => {
    if (mine !== playing) return;
    const s = (now - started) / 1000 / seconds;  // 0..2: there, then back
    const t = s < 1 ? s : Math.max(0, 2 - s);
    const eased = t * t * (3 - 2 * t);
    show(eased);
    if (s >= 1) plotDiv.dataset.reached = "1";
    if (s < 2) requestAnimationFrame(step);
    else { show(0); plotDiv.dataset.played = String(Number(plotDiv.dataset.played || 0) + 1); }
  };
  requestAnimationFrame(step);
}

play.addEventListener("click", () => { performance.mark("ll-morph-play"); animate(); });
slider.addEventListener("input", () => { playing++; show(Number(slider.value) / 100); });

async function render() {
  const v = props.value, mine = ++token;
  playing++;
  if (!v || !v.a || !v.b) {
    status.textContent = (v && v.message) || "";
    if (drawnWith) drawnWith.purge(plotDiv);
    scene = null;
    return;
  }
  try {
    const [Plotly, A, B, C] = await Promise.all([window.__llPlotly, loadLayer(v.a), loadLayer(v.b),
                                                 v.change ? loadLayer(v.change) : Promise.resolve(null)]);
    if (mine !== token) return;
    const pa = positions(A), pb = positions(B);
    const rowB = new Map(B.meta.paths.map((p, r) => [p, r]));
    const source = C || A;  // the traces (landmarks, or one coloured by change) say how to draw the points
    const traces = [], groups = [];
    for (const t of source.data) {
      if (!t.customdata) continue;
      const rows = t.customdata.filter((r) => rowB.has(A.meta.paths[r]));
      const keep = new Set(rows);
      const g = { rows, xa: rows.map((r) => pa.x[r]), ya: rows.map((r) => pa.y[r]),
                  xb: rows.map((r) => pb.x[rowB.get(A.meta.paths[r])]), yb: rows.map((r) => pb.y[rowB.get(A.meta.paths[r])]) };
      groups.push(g);
      const marker = Object.assign({}, t.marker);
      if (Array.isArray(marker.color)) marker.color = t.customdata.map((r, j) => [r, marker.color[j]])
        .filter(([r]) => keep.has(r)).map(([, c]) => c);
      // SVG scatter: redrawn smoothly frame by frame (a few thousand points)
      traces.push({ type: "scatter", mode: "markers", name: t.name, x: g.xa, y: g.ya, customdata: rows,
                    marker, hovertemplate: t.hovertemplate });
    }
    scene = { groups, names: v.names || ["A", "B"], query: v.query || null };
    if (scene.query) {
      traces.push({ type: "scatter", mode: "markers", name: "your photo", x: [scene.query.a[0]], y: [scene.query.a[1]],
                    marker: { size: 22, symbol: "star", color: "#FFD400", line: { width: 2, color: "#111" } },
                    hovertemplate: "your photo<extra></extra>" });
    }
    const layout = Object.assign({}, A.layout, { height: props.height, uirevision: "morph" });
    layout.title = { text: "" };  // the label above says which encoders, and how far along
    if (plotDiv.clientWidth < 600) {  // a phone: the legend goes below the map instead of beside it
      layout.legend = Object.assign({}, layout.legend, { orientation: "h", x: 0, y: -0.02, yanchor: "top" });
      layout.height = props.height + 260;
    }
    drawnWith = Plotly;
    await Plotly.react(plotDiv, traces, layout, { responsive: true, displaylogo: false, scrollZoom: true });
    status.textContent = "";
    plotDiv.dataset.points = String(groups.reduce((n, g) => n + g.rows.length, 0));
    plotDiv.dataset.pair = scene.names.join("|");
    show(0);
  } catch (err) {
    status.textContent = "The morph could not be drawn: " + err.message;
  }
}

watch("value", render);
render();
