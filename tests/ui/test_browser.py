"""A real browser: headless Chromium uploads a photo, clicks Search, and sees the gallery and the map."""

from __future__ import annotations

import contextlib
import os
import re
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from tests.conftest import synthetic_image

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def ssr_server(built, trained, tmp_path_factory):
    """The app with server-side rendering, as Spaces run it: Gradio's Node proxy in front, sending only /gradio_api
    and a few other prefixes to Python."""
    import app
    from search.serving.engine import SearchEngine
    from tests.conftest import free_port

    port = free_port()
    demo = app.launch(SearchEngine(built, trained), "127.0.0.1", port, work_dir=tmp_path_factory.mktemp("ssr-work"),
                      prevent_thread_lock=True, quiet=True, ssr_mode=True)
    assert demo.ssr_mode and demo._node_is_proxy, "SSR needs Node.js (Debian's nodejs)"
    node = demo.node_process
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    node.terminate()  # Blocks.close() leaves Gradio's Node server running (it dies with a Space's process)
    node.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM and CHROMEDRIVER):
        message = "needs Debian's chromium and chromium-driver (installed by .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {message}")
        pytest.skip(message)

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1300", f"--user-data-dir={tmp_path_factory.mktemp('chromium') / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def _wait_ready(browser):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 90, poll_frequency=0.1)  # a tenth of a second, not half: a page answers sooner


@contextlib.contextmanager
def _viewport(browser, width: int, height: int, mobile: bool = False):
    """The page seen on a screen of exactly width x height CSS pixels (a phone's at twice the pixel density)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                                     "deviceScaleFactor": 2 if mobile else 1,
                                                                     "mobile": mobile})
    try:
        yield
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _load_compare(browser, server: str, photo=None):
    """Load the page, open the Compare tab and (given a photo) drop it there; the page's wait."""
    browser.get(server)
    wait = _wait_ready(browser)
    _open_compare(browser, wait, photo)
    return wait


def _open_compare(browser, wait, photo=None) -> None:
    """Click the Compare tab (on a page already loaded) and, given a photo, drop it on the tab's photo box."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    tab = wait.until(lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]") if "Compare" in t.text])
    tab[0].click()
    if photo is not None:
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#compare-image input[type=file]"))).send_keys(
            str(photo))


def _map_drawn(d) -> bool:
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, "#map .ll-map-plot").get_attribute("data-points") not in (None, "", "0")


def _first_result_path(browser, wait) -> str:
    """Click result #1 and read its gallery path from the detail panel."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    browser.find_elements(By.CSS_SELECTOR, "#results .thumbnail-item")[0].click()
    wait.until(EC.visibility_of_element_located((By.ID, "detail")))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#detail-text").text.startswith("#1"))
    return browser.find_element(By.CSS_SELECTOR, "#detail-path textarea, #detail-path input").get_attribute("value")


def test_perturbed_copy_finds_that_photo_first_and_the_search_button_honours_k(server, browser, dataset, tmp_path):
    from PIL import Image, ImageEnhance
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC

    original = "train/00.Red_Stripes/00_train_3.jpg"
    photo = tmp_path / "perturbed.jpg"
    img = Image.open(dataset / original).convert("RGB")
    ImageEnhance.Brightness(img.crop((2, 2, img.width - 2, img.height - 2))).enhance(1.08).save(photo, quality=85)
    browser.get(server)
    wait = _wait_ready(browser)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#query-image input[type=file]"))).send_keys(str(photo))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results img")) == 9)  # default k
    wait.until(_map_drawn)
    assert "% same landmark" in browser.find_element(By.ID, "results").text
    legend = browser.find_element(By.ID, "map").text
    assert "your photo" in legend and "Blue Circles" in legend
    assert _first_result_path(browser, wait) == original  # that very photo, not merely its class

    k_box = browser.find_element(By.CSS_SELECTOR, "#top-k input[type=number]")
    k_box.send_keys(Keys.CONTROL, "a")
    k_box.send_keys("4", Keys.TAB)
    wait.until(EC.element_to_be_clickable((By.ID, "search-button"))).click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results img")) == 4)
    results = browser.find_element(By.ID, "results").text
    assert "#4 ·" in results and "#5 ·" not in results


def test_compare_results_start_in_the_first_screen_at_1400_by_900(server, browser, tmp_path):
    """After a drop on Compare, the first image of each of the three columns lies within the first 900 px."""
    from selenium.webdriver.common.by import By

    photo = tmp_path / "photo.jpg"
    synthetic_image(1, np.random.default_rng(31)).save(photo)
    with _viewport(browser, 1400, 900):
        wait = _load_compare(browser, server, photo)
        for name in ("scratch", "pretrained", "transfer"):
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, f"#compare-{name} img")) == 6)
        browser.execute_script("window.scrollTo(0, 0)")
        top = "return arguments[0].getBoundingClientRect().top + window.scrollY"
        agreement = browser.execute_script(top, browser.find_element(By.ID, "agreement"))
        for name in ("scratch", "pretrained", "transfer"):
            first = browser.find_elements(By.CSS_SELECTOR, f"#compare-{name} img")[0]
            y = browser.execute_script(top, first)
            assert agreement < y < 900, (name, y)


def test_the_tab_bar_shows_every_tab_once_whichever_is_open(server, browser):
    """Clicking a tab opens it and leaves the tab bar as it was: each of the five tabs once, none replaced."""
    from selenium.webdriver.common.by import By

    names = ["Search", "Compare encoders", "Study", "Your photos", "How it works"]
    browser.get(server)
    wait = _wait_ready(browser)

    def shown(d) -> list[str]:
        return [t.text for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.is_displayed()]

    wait.until(lambda d: shown(d) == names)
    for name in [*names[1:], names[0]]:
        next(t for t in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")
             if t.text == name and t.is_displayed()).click()
        wait.until(lambda d: any(t.text == name and "selected" in t.get_attribute("class")
                                 for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")))
        assert shown(browser) == names, name
    # on a phone the tabs wrap onto a second row rather than hiding three of them behind a menu
    with _viewport(browser, 390, 844, mobile=True):
        browser.get(server)
        wait.until(lambda d: shown(d) == names)


def test_compare_tab_in_the_browser(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    photo = tmp_path / "photo.jpg"
    synthetic_image(2, np.random.default_rng(13)).save(photo)
    wait = _load_compare(browser, server, photo)
    wait.until(lambda d: "Do the encoders agree" in d.find_element(By.ID, "agreement").text)
    for name in ("scratch", "pretrained", "transfer"):
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, f"#compare-{name} img")) == 6)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"#compare-map-{name} .ll-map-plot")
                   .get_attribute("data-points") == "33")
    assert "Green Checks" in browser.find_element(By.ID, "compare-transfer").text
    # Linked brushing: a photo picked in one column is marked on all three maps.
    browser.find_elements(By.CSS_SELECTOR, "#compare-transfer .thumbnail-item")[0].click()
    wait.until(lambda d: "Selected" in d.find_element(By.ID, "compare-selected").text)
    for name in ("scratch", "pretrained", "transfer"):
        wait.until(lambda d: "selected photo" in d.find_element(By.CSS_SELECTOR, f"#compare-map-{name} .ll-map-plot")
                   .get_attribute("data-query"))
    assert "transfer: #1" in browser.find_element(By.ID, "compare-selected").text


def test_click_result_search_with_it_then_click_the_map(server, browser, tmp_path):
    """Result -> detail panel with heatmaps -> "Search with this photo" -> a map point: each time the gallery
    becomes that photo's neighbours, its own photo first."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    photo = tmp_path / "photo.jpg"
    synthetic_image(1, np.random.default_rng(12)).save(photo)
    browser.get(server)
    wait = _wait_ready(browser)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#query-image input[type=file]"))).send_keys(str(photo))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results img")) >= 9)
    wait.until(_map_drawn)

    browser.find_elements(By.CSS_SELECTOR, "#results .thumbnail-item")[3].click()  # result #4
    wait.until(EC.visibility_of_element_located((By.ID, "detail")))
    wait.until(lambda d: d.find_element(By.ID, "detail-text").text.startswith("#4"))
    chosen = browser.find_element(By.CSS_SELECTOR, "#detail-path textarea, #detail-path input").get_attribute("value")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#heat-query img, #heat-hit img")) == 2)
    browser.find_element(By.ID, "search-this").click()
    wait.until(EC.invisibility_of_element_located((By.ID, "detail")))
    wait.until(lambda d: "query photo" in d.find_element(By.ID, "map").text)
    assert _first_result_path(browser, wait) == chosen

    # A real mouse on a map point of another class: hover shows its thumbnail, a click searches from it.
    browser.execute_script("document.querySelector('#map').scrollIntoView()")
    x, y = browser.execute_script("""
        const gd = document.querySelector('#map .ll-map-plot'), fl = gd._fullLayout, r = gd.getBoundingClientRect();
        const tr = gd._fullData.find(t => t.name === 'Green Checks');
        return [r.left + fl._size.l + fl.xaxis.l2p(tr.x[0]), r.top + fl._size.t + fl.yaxis.l2p(tr.y[0])];""")
    hover = ActionBuilder(browser)
    hover.pointer_action.move_to_location(int(x), int(y))
    hover.perform()
    wait.until(lambda d: "shown" in d.find_element(By.CSS_SELECTOR, "#map .ll-map-preview").get_attribute("class"))
    hovered = browser.find_element(By.CSS_SELECTOR, "#map .ll-map-preview-text").text  # "Green Checks · file.jpg"
    assert hovered.startswith("Green Checks · ")
    click = ActionBuilder(browser)
    click.pointer_action.move_to_location(int(x), int(y))
    click.pointer_action.click()
    click.perform()
    wait.until(lambda d: d.find_element(By.ID, "results").text.count("Green Checks") >= 3)
    assert _first_result_path(browser, wait).endswith("/" + hovered.split(" · ")[1])


@pytest.mark.parametrize("app_server", ["server", "ssr_server"])
def test_your_photos_tab_builds_a_private_gallery_and_searches_it(app_server, request, browser, tmp_path):
    """Three generated photos dropped in the Your photos tab: the progress runs to a status line, the gallery radio
    switches to them, and searching one of them returns it first, its map drawn from the private layer; with and
    without server-side rendering."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    server = request.getfixturevalue(app_server)
    rng = np.random.default_rng(21)
    photos = []
    for i, cid in enumerate((0, 1, 2)):
        photos.append(tmp_path / f"holiday-{i}.jpg")
        synthetic_image(cid, rng).save(photos[-1])
    # a burst: three more shots of holiday-1, a touch brighter each time, re-compressed
    shot = Image.open(photos[1])
    burst = []
    for i in range(3):
        burst.append(tmp_path / f"burst-{i}.jpg")
        ImageEnhance.Brightness(shot).enhance(1.0 + 0.02 * (i + 1)).save(burst[-1], quality=85 - 5 * i)
    browser.get(server)
    wait = _wait_ready(browser)
    tab = wait.until(lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                                if "Your photos" in t.text])
    tab[0].click()
    files = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#mine-files input[type=file]")))
    files.send_keys("\n".join(str(p) for p in photos + burst))
    wait.until(lambda d: all(p.stem in d.find_element(By.ID, "mine-files").text for p in photos + burst))
    browser.find_element(By.ID, "mine-build").click()
    wait.until(lambda d: "Your gallery: 6 photos" in d.find_element(By.ID, "mine-status").text)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#mine-map .ll-map-plot").get_attribute("data-points") == "6")
    radio = browser.find_element(By.CSS_SELECTOR, "#gallery-source input[value=mine]")
    wait.until(lambda d: radio.is_selected())

    [t for t in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text.strip() == "Search"][0].click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#query-image input[type=file]"))).send_keys(
        str(photos[1]))
    # the whole private gallery, the burst folded into the photo it repeats: three results, not six
    wait.until(lambda d: "near-identical" in d.find_element(By.ID, "results").text)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#results img")) == 3
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#map .ll-map-plot").get_attribute("data-points") == "6")
    assert browser.find_element(By.ID, "results").text.count("holiday-") == 3
    assert "+3 near-identical" in browser.find_element(By.ID, "results").text
    assert _first_result_path(browser, wait) == photos[1].name
    loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    wait.until(lambda d: all(d.execute_script(loaded, img) for img in d.find_elements(By.CSS_SELECTOR, "#results img")))
    # the detail panel and its heatmaps over the private gallery: shown to this browser, from the private route
    browser.find_elements(By.CSS_SELECTOR, "#results .thumbnail-item")[1].click()
    wait.until(EC.visibility_of_element_located((By.ID, "detail")))
    heatmaps = "#detail-image img, #heat-query img, #heat-hit img"
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, heatmaps)) == 3)
    shown = browser.find_elements(By.CSS_SELECTOR, "#detail-image img, #heat-query img, #heat-hit img")
    wait.until(lambda d: all(d.execute_script(loaded, img) for img in shown))
    assert all("/gradio_api/private/" in img.get_attribute("src") for img in shown)
    # The visitor's files: served to this browser, to no one else, and gone once the tab is closed.
    thumb = browser.find_elements(By.CSS_SELECTOR, "#results img")[0].get_attribute("src")
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    assert httpx.get(thumb, cookies=cookies).status_code == 200 and httpx.get(thumb).status_code == 404
    browser.get("about:blank")
    wait.until(lambda d: httpx.get(thumb, cookies=cookies).status_code == 404)


def test_a_photo_of_a_landmark_the_gallery_lacks_gets_the_not_in_the_gallery_verdict(server, browser, tmp_path):
    """A generated picture of a kind the gallery does not hold, dropped in the Search tab: the verdict says the
    landmark does not seem to be in the gallery (the transfer encoder, which used to call such photos a match)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    from tests.evaluation.test_open_set import absent_landmark

    photo = tmp_path / "elsewhere.jpg"
    absent_landmark(np.random.default_rng(303)).save(photo, quality=92)
    browser.get(server)
    wait = _wait_ready(browser)
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#encoder input[value=transfer]"))).click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#query-image input[type=file]"))).send_keys(str(photo))
    wait.until(lambda d: "does not seem to be in the gallery" in d.find_element(By.ID, "verdict").text)
    assert "Best match" not in browser.find_element(By.ID, "verdict").text


def test_study_tab_click_a_least_agreeing_photo_and_search_from_it(server, browser):
    """The Study tab: click the photo two encoders agree on least; its dominoes show, and the Search tab opens with
    that photo as the query and first among the results."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    browser.get(server)
    wait = _wait_ready(browser)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#query-image input[type=file]")))
    next(t for t in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if t.text.strip() == "Study").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#study-least .thumbnail-item"))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#study-map .ll-map-plot").get_attribute("data-points")
               not in (None, "", "0"))
    assert "mean Jaccard" in browser.find_element(By.ID, "study-agreement").text
    # before a photo is chosen: a one-line hint, and no empty neighbourhood boxes
    assert "Click a photo above" in browser.find_element(By.ID, "study-dominoes").text
    assert not any(e.is_displayed() for e in browser.find_elements(By.ID, "study-both"))
    browser.find_elements(By.CSS_SELECTOR, "#study-least .thumbnail-item")[0].click()
    wait.until(lambda d: d.find_element(By.ID, "results").is_displayed()
               and d.find_elements(By.CSS_SELECTOR, "#results .thumbnail-item"))
    wait.until(lambda d: "query photo" in (d.find_element(By.CSS_SELECTOR, "#map .ll-map-plot").get_attribute(
        "data-query") or ""))
    dominoes = browser.find_element(By.ID, "study-dominoes").get_attribute("textContent")  # its tab is hidden now
    name = dominoes.split(":", 1)[0].strip()
    assert name and "neighbours in common" in dominoes
    assert browser.find_elements(By.CSS_SELECTOR, "#study-neighbourhood #study-both .thumbnail-item")  # now shown
    first = _first_result_path(browser, wait)
    assert first.rsplit("/", 1)[-1] == name  # the photo clicked is the query, and first at distance 0
    shown = re.search(r"distance under [^:]+: \**([0-9.]+)", browser.find_element(By.ID, "detail-text").text)
    assert shown and float(shown.group(1)) < 1e-3  # its own vector: sqrt(2 - 2 cos) of float32 rounding, not 0


def _downloads(browser, wait, elem_id: str) -> dict[str, str]:
    """The CSV and JSON the download box offers, fetched as this browser (its cookie), by file suffix."""
    from selenium.webdriver.common.by import By

    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, f"#{elem_id} a[href]")) == 2)
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    files = {}
    for link in browser.find_elements(By.CSS_SELECTOR, f"#{elem_id} a[href]"):
        href = link.get_attribute("href")
        r = httpx.get(href, cookies=cookies, timeout=30)
        assert r.status_code == 200, href
        files[href.split("?")[0].rsplit(".", 1)[-1]] = r.text
    return files


def _shown(browser, elem_id: str) -> list[tuple[int, str]]:
    """(rank, landmark) of each result shown in a gallery, in order, from its captions ('#1 · Landmark · ...')."""
    from selenium.webdriver.common.by import By

    captions = [c.get_attribute("textContent") for c in
                browser.find_elements(By.CSS_SELECTOR, f"#{elem_id} .thumbnail-item .caption-label")]
    if not captions:  # some Gradio versions render the caption as the item's text
        captions = [e.text for e in browser.find_elements(By.CSS_SELECTOR, f"#{elem_id} .thumbnail-item")]
    parts = [c.split(" · ") for c in captions]
    return [(int(p[0].lstrip("#")), p[1].strip()) for p in parts]


def test_search_and_compare_results_download_as_csv_and_json(server, browser, tmp_path):
    """The CSV and the JSON beside the results hold exactly the shown results, in order: on Search for the chosen
    encoder, on Compare for every encoder in one file."""
    import csv
    import io
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    photo = tmp_path / "photo.jpg"
    synthetic_image(0, np.random.default_rng(41)).save(photo)
    browser.get(server)
    wait = _wait_ready(browser)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#query-image input[type=file]"))).send_keys(str(photo))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results img")) == 9)
    shown = _shown(browser, "results")
    files = _downloads(browser, wait, "search-downloads")
    rows = list(csv.DictReader(io.StringIO(files["csv"])))
    assert [(int(r["rank"]), r["landmark"]) for r in rows] == shown and len(rows) == 9
    assert {r["encoder"] for r in rows} == {"scratch"} and all(0 <= float(r["p_same"]) <= 1 for r in rows)
    assert [(r["rank"], r["landmark"], r["path"]) for r in json.loads(files["json"])] == \
        [(int(r["rank"]), r["landmark"], r["path"]) for r in rows]

    _open_compare(browser, wait, photo)
    for name in ("scratch", "pretrained", "transfer"):
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, f"#compare-{name} img")) == 6)
    files = _downloads(browser, wait, "compare-downloads")
    rows = list(csv.DictReader(io.StringIO(files["csv"])))
    for name in ("scratch", "pretrained", "transfer"):
        mine = [(int(r["rank"]), r["landmark"]) for r in rows if r["encoder"] == name]
        assert mine == _shown(browser, f"compare-{name}") and len(mine) == 6
    assert [r["encoder"] for r in json.loads(files["json"])] == [r["encoder"] for r in rows]


def test_a_link_reopens_a_search_on_search_or_compare_and_a_bad_link_says_why(server, browser, app_work):
    """`?photo=<gallery path>&encoder=<name>` opens Search with that photo first under that encoder; its Copy link
    gives that very link; `&tab=compare` fills the three columns; a link to a photo the gallery lacks or to an
    unknown encoder opens the page with one message; one naming a private gallery's folder is refused outright."""
    import time
    from urllib.parse import urlencode

    from selenium.webdriver.common.by import By

    browser.get(server)  # a page without a link: its load event says nothing, and fails on nothing
    wait = _wait_ready(browser)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#query-image input[type=file]"))
    time.sleep(3)  # the load event has answered by now (it does no work without a link)
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='toast-body']")
    assert browser.find_element(By.ID, "link-message").text.strip() == ""
    photo = "train/01.Blue_Circles/01_train_2.jpg"
    link = server + "?" + urlencode({"photo": photo, "encoder": "transfer"})
    browser.get(link)
    wait = _wait_ready(browser)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results img")) == 9)
    assert browser.find_element(By.CSS_SELECTOR, "#encoder input[value=transfer]").is_selected()
    assert _first_result_path(browser, wait) == photo
    assert browser.find_element(By.ID, "link-message").text.strip() == ""
    browser.execute_script("window.__copied = null; "
                           "navigator.clipboard.writeText = async t => { window.__copied = t; };")
    browser.find_element(By.ID, "copy-link").click()
    wait.until(lambda d: d.execute_script("return window.__copied"))
    assert browser.execute_script("return window.__copied") == link

    browser.get(server + "?" + urlencode({"photo": photo, "encoder": "scratch", "tab": "compare"}))
    wait = _wait_ready(browser)
    for name in ("scratch", "pretrained", "transfer"):
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, f"#compare-{name} img")) == 6)
    assert "Blue Circles" in browser.find_element(By.ID, "compare-transfer").text

    for params, says in (({"photo": "train/nowhere.jpg", "encoder": "transfer"}, "is not a photo of"),
                         ({"photo": "train/01.Blue_Circles/01_train_2.jpg/../../x.jpg"}, "is not a photo of"),
                         ({"photo": photo, "encoder": "nope"}, "does not have")):
        browser.get(server + "?" + urlencode(params))
        wait = _wait_ready(browser)
        wait.until(lambda d: "cannot be opened" in d.find_element(By.ID, "link-message").text)
        message = browser.find_element(By.ID, "link-message").text
        assert says in message and "Traceback" not in message, message
        assert not browser.find_elements(By.CSS_SELECTOR, "#results img")
    # a link naming a private gallery's folder: the guard answers 404 before the app sees it (the page and every
    # event carry the page's query), so nothing of it is read or served
    private = str(app_work / "sessions" / "0123abcd" / "index" / "thumbnails" / "x.jpg")
    r = httpx.get(server + "?" + urlencode({"photo": private, "encoder": "pretrained"}))
    assert r.status_code == 404 and r.text == "Not found."


def test_search_on_a_phone_shows_two_result_columns_and_a_map_within_the_screen(server, browser, tmp_path):
    """At 390x844: the photo box, the encoder, the results in two columns and the map no wider than the screen."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "photo.jpg"
    synthetic_image(2, np.random.default_rng(51)).save(photo)
    with _viewport(browser, 390, 844, mobile=True):
        browser.get(server)
        wait = _wait_ready(browser)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#query-image input[type=file]"))).send_keys(
            str(photo))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .thumbnail-item")) == 9)
        wait.until(_map_drawn)
        rect = "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];"

        def first_three(d) -> list:
            return [d.execute_script(rect, e) for e in d.find_elements(By.CSS_SELECTOR, "#results .thumbnail-item")[:3]]

        def two_per_row(items) -> bool:  # the first two side by side, the third below them
            return abs(items[0][1] - items[1][1]) < 2 and items[2][1] > items[0][3] - 2

        with contextlib.suppress(TimeoutException):  # the grid settles as its thumbnails arrive
            WebDriverWait(browser, 10, poll_frequency=0.1).until(lambda d: two_per_row(first_three(d)))
        items = first_three(browser)
        assert two_per_row(items), items
        assert (items[1][2] - items[0][0]) > 390 * 0.6  # two columns across most of the screen
        for selector in ("#query-image", "#encoder", "#results", "#map .ll-map-plot"):
            left, _, right, _ = browser.execute_script(rect, browser.find_element(By.CSS_SELECTOR, selector))
            assert left >= 0 and right <= 390 + 1, (selector, left, right)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390 + 1


def test_a_photo_from_a_web_address_is_searched_and_compared_and_a_loopback_address_is_refused(server, browser,
                                                                                                photo_host):
    """Search and Compare take a photo's web address: the server fetches it (from the tests' photo host, a host only
    the tests' app trusts) and searches it; the same host by its loopback address is refused with the message."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from tests.conftest import PHOTO_HOST_PHOTO

    def enter(elem_id: str, url: str) -> None:
        box = browser.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea, #{elem_id} input")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(url, Keys.ENTER)

    browser.get(server)
    wait = _wait_ready(browser)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#query-url textarea, #query-url input"))
    enter("query-url", f"{photo_host}/photo.jpg")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results img")) == 9)
    assert _first_result_path(browser, wait) == PHOTO_HOST_PHOTO  # the fetched photo itself, found first
    assert browser.find_elements(By.CSS_SELECTOR, "#query-image img")  # and shown in the photo box

    port = photo_host.rsplit(":", 1)[1]
    enter("query-url", f"http://127.0.0.1:{port}/photo.jpg")
    wait.until(lambda d: "not a public address" in " ".join(
        t.text for t in d.find_elements(By.CSS_SELECTOR, "[data-testid='toast-body']")))

    wait = _load_compare(browser, server)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#compare-url textarea, #compare-url input").is_displayed())
    enter("compare-url", f"{photo_host}/photo.jpg")
    for name in ("scratch", "pretrained", "transfer"):
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, f"#compare-{name} img")) == 6)
    assert "Do the encoders agree" in browser.find_element(By.ID, "agreement").text


def test_compare_shows_the_encoders_ticked_and_compares_the_photo_again(server, browser, tmp_path):
    """Unticking an encoder hides its column and compares the shown photo again under the others; fewer than two is
    refused with a message; ticking it again brings its column back."""
    from selenium.webdriver.common.by import By

    def shown(d) -> list[str]:
        return [n for n in ("scratch", "pretrained", "transfer")
                if d.find_elements(By.ID, f"compare-{n}") and d.find_element(By.ID, f"compare-{n}").is_displayed()]

    def tick(name: str) -> None:
        next(label for label in browser.find_elements(By.CSS_SELECTOR, "#compare-encoders label")
             if label.text.strip() == name).click()

    photo = tmp_path / "photo.jpg"
    synthetic_image(0, np.random.default_rng(23)).save(photo)
    wait = _load_compare(browser, server, photo)
    wait.until(lambda d: "returned by all 3" in d.find_element(By.ID, "agreement").text)
    assert shown(browser) == ["scratch", "pretrained", "transfer"]
    tick("scratch")
    wait.until(lambda d: "returned by all 2" in d.find_element(By.ID, "agreement").text)
    assert shown(browser) == ["pretrained", "transfer"]
    assert "scratch" not in browser.find_element(By.ID, "agreement").text
    tick("pretrained")  # one left: refused
    wait.until(lambda d: "Choose at least two encoders to compare." in " ".join(
        t.text for t in d.find_elements(By.CSS_SELECTOR, "[data-testid='toast-body']")))
    tick("scratch")
    wait.until(lambda d: "scratch ∩ transfer" in d.find_element(By.ID, "agreement").text)
    assert shown(browser) == ["scratch", "transfer"]


def _selected(browser, name: str) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, f"#compare-map-{name} .ll-map-plot").get_attribute("data-selected")


def _painted(browser, name: str) -> int:
    """How many pixels the selection's layer over a compared map has painted (the dots and the veil)."""
    return browser.execute_script(
        "const c = document.querySelector(arguments[0]); if (!c) return 0;"
        "const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < px.length; i += 4) n += px[i] > 0; return n;",
        f"#compare-map-{name} .ll-map-overlay")


def _box_select(browser, map_id: str) -> None:
    """What a visitor does: the map's Box Select button, then a drag over the whole plot."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    plot = browser.find_element(By.CSS_SELECTOR, f"#{map_id} .ll-map-plot")
    ActionChains(browser).move_to_element(plot).perform()  # the mode bar shows on hover
    plot.find_element(By.CSS_SELECTOR, '.modebar-btn[data-val="select"]').click()
    drag = plot.find_element(By.CSS_SELECTOR, ".nsewdrag")
    w, h = drag.size["width"], drag.size["height"]
    ActionChains(browser).move_to_element_with_offset(drag, -w // 2 + 3, -h // 2 + 3).click_and_hold().move_by_offset(
        w // 2, h // 2).move_by_offset(w // 2 - 6, h // 2 - 6).release().perform()


def test_a_box_selection_lights_up_every_map_lists_and_downloads_and_the_morph_plays_there_and_back(server, browser,
                                                                                                   tmp_path):
    import csv
    import io

    from selenium.webdriver.common.by import By

    photo = tmp_path / "photo.jpg"
    synthetic_image(1, np.random.default_rng(17)).save(photo)
    wait = _load_compare(browser, server, photo)
    for name in ("scratch", "pretrained", "transfer"):
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"#compare-map-{name} .ll-map-plot")
                   .get_attribute("data-points") == "33")
    _box_select(browser, "compare-map-scratch")
    # the same photos, by path, on every map: the whole gallery, as the box covered the whole plot
    for name in ("scratch", "pretrained", "transfer"):
        wait.until(lambda d: _selected(d, name) == "33")
        assert _painted(browser, name) > 0, name
    wait.until(lambda d: d.find_element(By.ID, "compare-selection").is_displayed())
    summary = browser.find_element(By.ID, "compare-selection-summary").text
    assert "33 photos selected" in summary
    for landmark in ("Red Stripes", "Blue Circles", "Green Checks"):
        assert re.search(landmark + r"\s+11", summary), summary
    assert all(re.search(name + r"\s+100%", summary) for name in ("scratch", "pretrained", "transfer")), summary
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#compare-selection-grid img")) == 33)
    rows = list(csv.DictReader(io.StringIO(_downloads(browser, wait, "compare-selection-downloads")["csv"])))
    assert len(rows) == 33 and {"path", "landmark", "x_scratch", "y_transfer"} <= set(rows[0])
    # clearing restores every map
    browser.find_element(By.ID, "compare-selection-clear").click()
    for name in ("scratch", "pretrained", "transfer"):
        wait.until(lambda d: _selected(d, name) == "0")
        assert _painted(browser, name) == 0, name
    wait.until(lambda d: not [e for e in d.find_elements(By.ID, "compare-selection") if e.is_displayed()])
    # the morph from scratch's map to pretrained's, the compared photo's star (the query layer, last) travelling too
    morph = browser.find_element(By.CSS_SELECTOR, "#compare-morph .ll-morph-plot")
    wait.until(lambda d: morph.get_attribute("data-points") == "33")
    assert morph.get_attribute("data-pair") == "scratch|pretrained"
    wait.until(lambda d: d.execute_script(
        "const p = document.querySelector('#compare-morph .ll-morph-plot');"
        "return p.data && p.data[p.data.length - 1].name === 'your photo';"))
    browser.execute_script("arguments[0].scrollIntoView()", morph)
    browser.find_element(By.CSS_SELECTOR, "#compare-morph .ll-morph-play").click()
    wait.until(lambda d: morph.get_attribute("data-reached") == "1")  # at B
    wait.until(lambda d: morph.get_attribute("data-played") == "1" and morph.get_attribute("data-t") == "0.00")


def test_a_legend_tap_selects_a_landmark_opens_it_in_compare_and_a_suggestion_selects_on_the_study(server, browser,
                                                                                                   tmp_path):
    from selenium.webdriver.common.by import By

    photo = tmp_path / "photo.jpg"
    synthetic_image(2, np.random.default_rng(19)).save(photo)
    browser.get(server)
    wait = _wait_ready(browser)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#query-image input[type=file]"))[0].send_keys(str(photo))
    wait.until(_map_drawn)
    legend = wait.until(lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, "#map .legend .traces")
                                   if "Green Checks" in t.text])
    legend[0].find_element(By.CSS_SELECTOR, ".legendtoggle").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#map .ll-map-plot").get_attribute("data-selected") == "11")
    wait.until(lambda d: "11 photos selected" in d.find_element(By.ID, "search-selection-summary").text)
    assert "Green Checks" in browser.find_element(By.ID, "search-selection-summary").text
    browser.find_element(By.ID, "search-selection-compare").click()
    wait.until(lambda d: "11 photos selected" in d.find_element(By.ID, "compare-selection-summary").text)
    assert browser.find_element(By.ID, "compare-selection").is_displayed()
    # the Study suggests the landmarks whose neighbourhoods change most; one click selects one on its map
    browser.execute_script("window.__llSelection = []; window.dispatchEvent(new CustomEvent('ll-selection', "
                           "{detail: {paths: []}}));")
    [t for t in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]") if "Study" in t.text][0].click()
    plot = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#study-map .ll-map-plot"))
    wait.until(lambda d: plot.get_attribute("data-points") == "33")
    options = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#study-suggestions label"))
    assert len(options) == 3 and "11 photos" in options[0].text  # the 3 landmarks, least shared neighbours first
    landmark = options[0].text.split(":")[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", options[0])
    options[0].click()
    wait.until(lambda d: plot.get_attribute("data-selected") == "11")
    wait.until(lambda d: "11 photos selected" in d.find_element(By.ID, "study-selection-summary").text)
    assert f"{landmark} 11" in browser.find_element(By.ID, "study-selection-summary").text

