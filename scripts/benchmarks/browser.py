"""The map components' costs in a real browser (headless Chromium), at the size the issue names: highlighting a
500-photo selection on three maps of 5,000 photos, and the morph of a 5,000-photo gallery starting to play. The
components' own scripts (ui/static) run in a page that hosts them as Gradio does (element, props, trigger, watch),
over gallery layers written by the app's GalleryMap; times are read from the page's performance timeline."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import numpy as np

from scripts.benchmarks.ports import free_port
from scripts.benchmarks.report import row
from scripts.benchmarks.study import synthetic_indexes
from search.retrieval.alignment import align_maps
from ui.figures import GalleryMap
from ui.mapview import PLOTLY_JS, component_script
from ui.mapview import TEMPLATE as MAP_TEMPLATE
from ui.morph import CSS as MORPH_CSS
from ui.morph import TEMPLATE as MORPH_TEMPLATE

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")
HOST = """<!doctype html><html><head><meta charset="utf-8"><style>{css}</style></head><body>{bodies}
<script>
// Each component's script runs as Gradio runs js_on_load: a function of its element, props, trigger and watch.
function host(id, script, props) {{
  const element = document.getElementById(id);
  new Function("element", "props", "trigger", "watch", script)(element, props, () => {{}}, () => {{}});
}}
{calls}
</script></body></html>"""


def _page(folder: Path, layers: dict[str, str]) -> None:
    """The harness page: three maps (one per encoder) and a morph from the first encoder to the second."""
    names = list(layers)
    maps = "".join(f'<div id="map-{n}" style="width:440px;display:inline-block">{MAP_TEMPLATE}</div>' for n in names)
    morph = f'<div id="morph" style="width:900px">{MORPH_TEMPLATE}</div>'
    def props(value: dict, height: int) -> str:
        return json.dumps({"value": value, "plotly_url": "plotly.min.js", "height": height})

    calls = [f"host('map-{n}', {json.dumps(component_script('map.js'))}, "
             f"{props({'layer': layers[n], 'traces': [], 'layout': {}}, 360)});" for n in names]
    morph_value = {"a": layers[names[0]], "b": layers[names[1]], "names": names[:2]}
    calls.append(f"host('morph', {json.dumps(component_script('morph.js'))}, {props(morph_value, 460)});")
    (folder / "index.html").write_text(HOST.format(css=MORPH_CSS, bodies=maps + morph, calls="\n".join(calls)))


MEASURE_HIGHLIGHT = """
const [paths, done] = [arguments[0], arguments[arguments.length - 1]];
const plots = [...document.querySelectorAll('.ll-map-plot')];
performance.mark('select-start');
window.dispatchEvent(new CustomEvent('ll-selection', {detail: {paths}}));
requestAnimationFrame(() => requestAnimationFrame(() => {
  const m = performance.measure('select', 'select-start');
  done({ms: m.duration, selected: plots.map((p) => p.dataset.selected)});
}));
"""
MEASURE_MORPH = """
const done = arguments[arguments.length - 1];
const plot = document.querySelector('.ll-morph-plot');
const started = performance.now();
document.querySelector('.ll-morph-play').click();
const poll = () => {
  if (Number(plot.dataset.t) > 0) return done({ms: performance.now() - started});
  requestAnimationFrame(poll);
};
requestAnimationFrame(poll);
"""


def bench_browser(tmp: Path, rng: np.random.Generator, n: int = 5000, selected: int = 500) -> None:
    """Chromium's own timeline: a 500-photo selection lit on three maps vs a one-photo one; the morph's first
    frame after the click vs the one-second budget."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        print("browser: needs Debian's chromium and chromium-driver; part skipped")
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    folder = tmp / "browser-bench"
    folder.mkdir(parents=True, exist_ok=True)
    indexes = synthetic_indexes(tmp, n, rng)
    aligned = align_maps({k: ix.coords for k, ix in indexes.items()},
                         {k: [it["path"] for it in ix.items] for k, ix in indexes.items()})
    layers = {}
    for name, index in indexes.items():
        index.coords = aligned[name]
        layers[name] = GalleryMap(index, f"{name} map", lambda p: "thumbs").write(folder).name
    shutil.copy(PLOTLY_JS, folder / "plotly.min.js")
    _page(folder, layers)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the rows are the output
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'browser-profile'}"):
        opts.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        browser.set_script_timeout(60)
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        WebDriverWait(browser, 60).until(lambda d: d.execute_script(
            f"return [...document.querySelectorAll('.ll-map-plot')].every((p) => p.dataset.points === '{n}')"
            f" && document.querySelector('.ll-morph-plot').dataset.points === '{n}'"))
        paths = [it["path"] for it in indexes["scratch"].items]
        chosen = [paths[i] for i in rng.choice(n, selected, replace=False)]
        best = {}
        for _ in range(3):  # interleaved rounds, best of each
            for what, picked in (("one", chosen[:1]), ("many", chosen)):
                out = browser.execute_async_script(MEASURE_HIGHLIGHT, picked)
                assert out["selected"] == [str(len(picked))] * 3, out
                best[what] = min(best.get(what, float("inf")), out["ms"])
                browser.execute_async_script(MEASURE_HIGHLIGHT, [])
        starts = []
        for _ in range(3):
            starts.append(browser.execute_async_script(MEASURE_MORPH)["ms"])
            WebDriverWait(browser, 30).until(lambda d: d.execute_script(
                "const p = document.querySelector('.ll-morph-plot'); return p.dataset.t === '0.00' && "
                "p.dataset.reached === '1';"))
    finally:
        browser.quit()
        server.shutdown()
    row(f"highlight {selected} of {n:,} photos on 3 maps (Chromium)", best["many"], best["one"], "ms",
        "from the selection event to the next frame drawn; baseline = highlighting one photo; budget 300 ms")
    row(f"morph of {n:,} photos: first frame after the click (Chromium)", min(starts), 1000.0, "ms",
        "baseline = the one-second budget")


PARTS = {"browser": lambda ctx: bench_browser(ctx.tmp, ctx.rng)}
