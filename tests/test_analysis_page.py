"""The featuremaps page in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``)
driven by Selenium loads it from a localhost HTTP server, every image and audio element must resolve, the two
compared runs sit side by side, channels are sorted by dominant frequency, filter heatmaps sit beside their
layers, and a full-page screenshot is written.

A machine without Chromium fails these tests with the install command (``make test-deps`` runs it).
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from test_analysis import tiny_run, write_clip

CHROMIUM_INSTALL = "apt-get install -y chromium chromium-driver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,1000",
)


def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail(
            f"headless Chromium is needed to check the analysis page (chromium: {browser}, chromedriver: "
            f"{driver}); install it: {CHROMIUM_INSTALL} (or `make test-deps`)"
        )
    return browser, driver


@pytest.fixture
def browser():
    """A headless Chromium under chromedriver (Selenium), with a fresh profile; quit even when a test fails."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the page test needs Selenium: pip install -e '.[dev]' (or pip install 'selenium>=4.20')")
    binary, driver_path = _binaries()
    profile = tempfile.mkdtemp(prefix="hvd_magtag-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def serve():
    """``serve(folder) -> base URL``: a threaded HTTP server on 127.0.0.1 (a free port) for the test."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


#: JavaScript: force every <audio> to load its metadata, then report images and audio when all settled.
RESOLVE_MEDIA = """
const done = arguments[arguments.length - 1];
const audios = [...document.querySelectorAll('audio')];
audios.forEach(a => { a.preload = 'metadata'; a.load(); });
const deadline = Date.now() + 60000;
(function check() {
  const images = [...document.images];
  const settled = images.every(i => i.complete) &&
                  audios.every(a => a.readyState >= 1 || a.error);
  if (settled || Date.now() > deadline) {
    done({
      images: images.map(i => [i.getAttribute('src'), i.naturalWidth]),
      audio: audios.map(a => [a.getAttribute('src'), a.readyState, a.error ? a.error.code : 0,
                              a.duration]),
      runs: [...document.querySelectorAll('.run')].map(r => {
        const b = r.getBoundingClientRect(); return [b.left, b.top, b.width]; }),
    });
  } else { setTimeout(check, 100); }
})();
"""


def _hz(text: str) -> float:
    m = re.fullmatch(r"([\d.]+) (k?)Hz", text.strip())
    return float("inf") if m is None else float(m.group(1)) * (1000 if m.group(2) else 1)


def test_featuremaps_page_loads_in_chromium_with_every_image_and_player(tmp_path, browser, serve):
    from selenium.webdriver.common.by import By

    from hvd_magtag.analysis.__main__ import main

    raw = tiny_run(tmp_path / "raw_run")
    spectral = tiny_run(tmp_path / "spectral_run", "shortchunk_cnn", {"width": 0.0625})
    clip = tmp_path / "clip.wav"
    write_clip(clip, 0.5, freq_hz=660.0)
    out = tmp_path / "page"
    argv = ["featuremaps", str(raw.path), "--clip", str(clip), "--compare", str(spectral.path)]
    assert main([*argv, "--out", str(out), "--duration", "0", "--with-filters"]) == 0

    browser.set_script_timeout(90)
    browser.get(serve(out) + "index.html")
    assert browser.title.startswith("Feature maps of clip.wav")
    report = browser.execute_async_script(RESOLVE_MEDIA)
    broken_images = [src for src, width in report["images"] if width <= 0]
    assert not broken_images, broken_images
    broken_audio = [(src, state, err) for src, state, err, _ in report["audio"] if state < 1 or err]
    assert not broken_audio, broken_audio
    n_channels = len(list(out.glob("*/*/ch*.wav")))
    assert len(report["audio"]) == 1 + n_channels  # the input and every channel
    assert sum(1 for src, _ in report["images"] if src.endswith(".png") and "/ch" in src) == n_channels
    durations = {round(d, 2) for src, _, _, d in report["audio"]}
    assert durations == {0.5}, durations  # every sonified channel is as long as the clip

    (left, top_a, width_a), (right, top_b, _) = report["runs"]
    assert right >= left + width_a - 1 and abs(top_a - top_b) < 2, report["runs"]  # side by side

    for section in browser.find_elements(By.CSS_SELECTOR, "section.layer"):
        dominant = [_hz(e.text) for e in section.find_elements(By.CSS_SELECTOR, ".num span:last-child")]
        assert dominant == sorted(dominant), (section.get_attribute("data-layer"), dominant)
    raw_column, spectral_column = browser.find_elements(By.CSS_SELECTOR, ".run")
    first = raw_column.find_element(By.CSS_SELECTOR, "section.layer")
    captions = [e.text for e in first.find_elements(By.CSS_SELECTOR, ".figures figcaption")]
    assert captions == ["kernel responses", "map spectra", "transfer vs level below"], captions
    assert spectral_column.find_elements(By.CSS_SELECTOR, "section.layer .figures img")  # mel profiles

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1600, min(int(height) + 100, 12000))
    shot = tmp_path / "featuremaps_page.png"
    assert browser.save_screenshot(str(shot))
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] > 1000 and np.std(pixels[..., :3]) > 0.05  # a real, non-blank rendering
    print(f"screenshot: {shot}")
