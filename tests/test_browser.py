"""A real browser: headless Chromium uploads a photo, clicks Search, and sees the gallery and the map."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.conftest import synthetic_image
from tests.test_app import server  # noqa: F401  (the running app fixture)

webdriver = pytest.importorskip("selenium.webdriver")

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (installed by .ci/run)")


@pytest.fixture()
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1300", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def test_upload_search_shows_gallery_and_map(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "photo.jpg"
    synthetic_image(0, np.random.default_rng(11)).save(photo)
    browser.get(server)
    wait = WebDriverWait(browser, 90)
    upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#query-image input[type=file]")))
    upload.send_keys(str(photo))
    wait.until(EC.element_to_be_clickable((By.ID, "search-button"))).click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results img")) >= 9)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#map .js-plotly-plot")))
    captions = browser.find_element(By.ID, "results").text
    assert "#1" in captions and "Red Stripes" in captions
    legend = browser.find_element(By.ID, "map").text
    assert "your photo" in legend and "Blue Circles" in legend
    shot = tmp_path / "search.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
