"""The rendered book, checked as a reader sees it: every chapter opened in headless Chromium.

The book is served from 127.0.0.1 and opened at a laptop's size (1366×768). Each page is asserted
to load without console errors, to draw its plotly figures (svg nodes inside each figure), to
render its maths with the offline MathJax, and to show no cell error; and to read well: no
progress-bar output (tqdm's ``40%|████      | 4/10 [00:01<00:02, 2.5it/s]``) in any output block,
and no figure wider than the column that holds it. A full-page screenshot of every page at that
width goes to ``$DDLIB_SCREENSHOTS`` (default ``book/_build/screenshots/<page>.png``), for a person
to look at.

Which book: ``$DDLIB_BOOK_HTML`` when set (e.g. ``book/_build/html`` after ``make book``);
otherwise the test builds the book with every chapter at scale "test" into a temporary folder.
Needs Debian's ``chromium`` + ``chromium-driver`` (``make test`` installs them where it can)
and selenium; without them the test is skipped, except under CI (``CI=true``), where it fails.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ddlib import bookbuild

pytestmark = [pytest.mark.slow, pytest.mark.notebook]
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WIDTH, HEIGHT = 1366, 768  # a laptop's screen
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--window-size={WIDTH},{HEIGHT}"]


def _missing() -> str | None:
    if not CHROMIUM or not CHROMEDRIVER:
        return "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@pytest.fixture(scope="module")
def browser_or_skip() -> None:
    reason = _missing()
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"CI must check the rendered book, but {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def html_root(browser_or_skip: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("DDLIB_BOOK_HTML")
    if given:
        root = Path(given)
        if not (root / "index.html").is_file() and os.environ.get("CI") != "true":
            pytest.skip(f"DDLIB_BOOK_HTML={given} holds no built book (run make book)")
        assert (root / "index.html").is_file(), f"DDLIB_BOOK_HTML={given} holds no built book"
        return root
    return bookbuild.build("test", out=tmp_path_factory.mktemp("book"), progress=False)


@pytest.fixture(scope="module")
def server(html_root: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html_root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def driver(browser_or_skip: None) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


# the root page and every chapter (index.html is only a redirect to the root page)
PAGES = bookbuild.toc_files(yaml.safe_load((ROOT / "book" / "_toc.yml").read_text()))
CHAPTERS = set(bookbuild.chapters())
# drawn: every .plotly-graph-div holds plotly's svg; maths: every .math element typeset by MathJax;
# progress: output blocks (folded ones too) holding a tqdm bar; wide: figures (or their svg) wider than
# the output box that holds them or than the article's column, in px
STATE_JS = """
const figs = [...document.querySelectorAll('.plotly-graph-div')];
const maths = document.querySelectorAll('div.math, span.math');
const bar = /\\d+%\\|[^|\\n]*\\|\\s*\\d+\\/\\d+|\\d(it\\/s|s\\/it)\\]|[\u2588\u258f\u258e\u258d\u258c\u258b\u258a\u2589]{2,}/;
const outputs = [...document.querySelectorAll('.cell_output .output, .cell_output > div')];
const wide = [];
figs.forEach((f, i) => {
  const svg = f.querySelector('svg.main-svg');
  const fw = Math.max(f.getBoundingClientRect().width, svg ? svg.getBoundingClientRect().width : 0);
  if (fw === 0) return;  // in a folded cell: not laid out
  const box = f.closest('.output') || f.closest('.cell_output') || f.parentElement;
  const column = f.closest('article') || document.body;
  const room = Math.min(box.clientWidth, column.clientWidth);
  if (fw > room + 1) wide.push({figure: i, title: (f.querySelector('.gtitle') || {}).textContent || '',
                                width: Math.round(fw), column: Math.round(room)});
});
return {ready: document.readyState,
        figures: figs.length,
        drawn: figs.filter(f => f.querySelector('svg.main-svg')).length,
        maths: maths.length,
        typeset: document.querySelectorAll('mjx-container').length,
        errors: [...document.querySelectorAll('.cell_output .traceback, .cell_output .output.error')]
                  .map(e => e.innerText.slice(0, 300)),
        progress: outputs.filter(o => bar.test(o.textContent)).map(o => o.textContent.trim().slice(0, 160)),
        wide: wide,
        column: Math.round((document.querySelector('article') || document.body).clientWidth),
        height: document.documentElement.scrollHeight};
"""


def full_page_screenshot(driver, path: Path, tile: int = 12000) -> None:
    """The whole page at the window's width, as one PNG: the window is made as tall as the page (up to
    ``tile`` px; a taller page is taken in tiles, scrolled, and stitched), then set back to the laptop's
    size. The sticky header and sidebars are made static, so that they show once, not at every tile."""
    import io

    from PIL import Image

    driver.execute_script("for (const e of document.querySelectorAll('*'))"  # sticky -> static: same layout
                          "  if (getComputedStyle(e).position === 'sticky') e.style.position = 'static';")
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    chrome = int(driver.execute_script("return window.outerHeight - window.innerHeight"))
    view = min(height, tile)
    try:
        driver.set_window_size(WIDTH, view + chrome)
        page = None
        for top in range(0, height, view):
            driver.execute_script("window.scrollTo(0, arguments[0])", top)
            shot = Image.open(io.BytesIO(driver.get_screenshot_as_png()))
            at = int(driver.execute_script("return window.scrollY"))  # the last tile stops at the bottom
            if page is None:
                page = Image.new("RGB", (shot.width, height), "white")
            page.paste(shot.convert("RGB"), (0, at))
        page.save(path)
    finally:
        driver.set_window_size(WIDTH, HEIGHT)
        driver.execute_script("window.scrollTo(0, 0)")


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page: str, server: str, driver, html_root: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    assert (html_root / f"{page}.html").is_file(), f"{page} is in book/_toc.yml but was not built"
    url = f"{server}/{page}.html"
    driver.get_log("browser")  # drop what earlier pages left
    driver.get(url)

    def settled(d: object) -> dict | bool:
        s = d.execute_script(STATE_JS)
        done = s["ready"] == "complete" and s["drawn"] == s["figures"] and (s["maths"] == 0 or s["typeset"] > 0)
        return s if done else False

    try:
        state = WebDriverWait(driver, 60, poll_frequency=0.5).until(settled)
    except Exception:  # noqa: BLE001 - report what was missing
        state = driver.execute_script(STATE_JS)
    shots = Path(os.environ.get("DDLIB_SCREENSHOTS") or ROOT / "book" / "_build" / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    full_page_screenshot(driver, shots / f"{page.replace('/', '__')}.png")

    console = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not console, f"{page}: console errors: {[e['message'] for e in console]}"
    assert not state["errors"], f"{page}: cells show errors: {state['errors']}"
    assert state["drawn"] == state["figures"], f"{page}: {state['figures'] - state['drawn']} plotly figures not drawn"
    if page in CHAPTERS:
        assert state["figures"] >= 1, f"{page}: a chapter shows at least one plotly figure"
    if state["maths"]:
        assert state["typeset"] > 0, f"{page}: MathJax did not typeset the maths (offline MathJax missing?)"
    assert not state["progress"], (f"{page}: {len(state['progress'])} output block(s) show progress bars, "
                                   f"e.g. {state['progress'][:3]}")
    assert not state["wide"], f"{page}: figures wider than the {state['column']} px column: {state['wide']}"
