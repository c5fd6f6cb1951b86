"""The rendered book, checked as a reader sees it: every page of ``book/_toc.yml`` opened in headless Chromium.

The book is served from 127.0.0.1 and opened at a laptop's size (1366×768). Each page is loaded once (a
full-page screenshot goes to ``$DDLIB_SCREENSHOTS``, default ``book/_build/screenshots/<page>.png``, for a
person to look at); then its folded cells are opened and every check of :data:`CHECKS` reads what the page
showed. One test per (page, check), so a report says which page fails which check:

- it loads without console errors, shows no cell error, draws every plotly figure, typesets its maths with
  the offline MathJax, shows no progress bar, and no figure is wider than the column (the earlier checks);
- no ``NaN``/``nan`` in any output;
- no table scrolls sideways (its own or its wrapper's scrollWidth over its clientWidth, or wider than the
  column);
- no code block, printout or display equation is clipped or runs past the column (scrollWidth over
  clientWidth, or wider than the column): CSS wraps code and printouts (``book/_vendor/ddlib.css``), but a
  MathJax equation cannot be broken by CSS, so a wide one is reported for the chapter to break with
  ``aligned``;
- no paragraph of prose is over :data:`MAX_WORDS` words;
- the page weighs at most :data:`MAX_PAGE_BYTES`: its HTML and the local files it loads, except the site's
  shared files (``_static/``: plotly.js, MathJax, the theme; the search index), which a reader's browser fetches once for
  the whole site and which weigh the same on every page (the failure message adds them, for scale);
- a chapter shows at least one figure and an admonition titled "What we found";
- across pages, a method has one colour (the book's palette, ``ddlib.plots.style``).

Every failure names the page and the start of the offending element's text.

Which book: ``$DDLIB_BOOK_HTML`` when set (e.g. ``book/_build/html`` after ``make book``); otherwise the
test builds the book with every chapter at scale "test" into a temporary folder. Needs Debian's
``chromium`` + ``chromium-driver`` (``make test`` installs them where it can) and selenium; without them
the test is skipped, except under CI (``CI=true``), where it fails.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

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
MAX_WORDS = 150                 # a paragraph of prose longer than this is a wall of text
MAX_PAGE_BYTES = 2_500_000      # a page's weight, the site's shared static files (fetched once) not counted
SITE_WIDE = ("_static/", "searchindex.js")  # what every page shares (plotly.js, MathJax, the theme, the search)
START = 70                      # how much of an offending element's text a failure quotes


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
    return bookbuild.build("test", out=tmp_path_factory.mktemp("book"), progress=False, jobs=2)  # as make book


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
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})  # every page lists every file it loads
    yield d
    d.quit()


# the root page, every chapter and the other pages (index.html is only a redirect to the root page)
PAGES = bookbuild.toc_files(yaml.safe_load((ROOT / "book" / "_toc.yml").read_text()))
CHAPTERS = set(bookbuild.chapters())

# Whether the page has settled: figures drawn, maths typeset (read while the page loads).
READY_JS = """
const figs = [...document.querySelectorAll('.plotly-graph-div')];
return {ready: document.readyState,
        figures: figs.length,
        drawn: figs.filter(f => f.querySelector('svg.main-svg')).length,
        maths: document.querySelectorAll('div.math, span.math').length,
        typeset: document.querySelectorAll('mjx-container').length};
"""

OPEN_AND_RESIZE_JS = """
for (const d of document.querySelectorAll('article details')) d.open = true;
window.dispatchEvent(new Event('resize'));
"""
# whether every laid-out figure is as wide as its box (plotly has followed the last resize)
FIGURES_FIT_JS = """
return [...document.querySelectorAll('article .plotly-graph-div')].every(f => {
  const svg = f.querySelector('svg.main-svg');
  const w = svg ? svg.getBoundingClientRect().width : 0, box = f.getBoundingClientRect().width;
  return w === 0 || box === 0 || Math.abs(w - box) <= 1;
});
"""

# What the checks read, with every folded cell opened. Each list holds the offending elements, each with the
# start of its text (`start`) so that a failure message points at it.
STATE_JS = r"""
const START = arguments[0];
for (const d of document.querySelectorAll('article details')) d.open = true;  // folded cells, laid out now
const article = document.querySelector('article.bd-article') || document.querySelector('article') || document.body;
const pad = getComputedStyle(article);
const column = article.clientWidth - parseFloat(pad.paddingLeft) - parseFloat(pad.paddingRight);  // the text column
const start = (s) => (s || '').replace(/\s+/g, ' ').trim().slice(0, START);
const shown = (e) => e.getClientRects().length > 0 && e.clientWidth > 0;
// the text an output shows, without its scripts and styles (plotly's JSON holds NaN for gaps)
function visibleText(root) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode: (n) =>
    n.parentElement.closest('script, style, .plotly-graph-div') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  let text = '', n;
  while ((n = walker.nextNode())) text += n.nodeValue + ' ';
  return text;
}
const outputs = [...article.querySelectorAll('.cell_output .output, .cell_output > div')]
  .filter(o => !o.parentElement.closest('.cell_output .output'));
const nanWord = /(^|[^A-Za-z0-9_])(nan|NaN|NAN)([^A-Za-z0-9_]|$)/;
const nan = [];
outputs.forEach(o => {
  const text = visibleText(o);
  const m = text.match(nanWord);
  if (m) { const at = Math.max(0, m.index - 30); nan.push({start: start(text.slice(at, at + START))}); }
});
// tables: the table or the box that holds it scrolls sideways, or it is wider than the column
const tables = [];
article.querySelectorAll('table').forEach(t => {
  if (!shown(t)) return;
  const box = t.closest('.output, .cell_output, .table-wrapper, .pst-scrollable-table-container') || t.parentElement;
  const width = t.getBoundingClientRect().width;
  const over = Math.max(t.scrollWidth - t.clientWidth, box.scrollWidth - box.clientWidth, width - column);
  if (over > 1) tables.push({start: start(t.innerText), width: Math.round(Math.max(width, t.scrollWidth)),
                             column: column});
});
// code blocks (inputs, the prose's blocks) and printouts (outputs): content wider than the box or the column
const clipped = [];
article.querySelectorAll('pre').forEach(p => {
  if (!shown(p)) return;
  const kind = p.closest('.cell_output') ? 'printout' : 'code block';
  const width = p.getBoundingClientRect().width;
  const over = Math.max(p.scrollWidth - p.clientWidth, width - column);
  if (over > 1) clipped.push({kind: kind, start: start(p.innerText), width: Math.round(p.scrollWidth),
                              box: p.clientWidth, overflow: getComputedStyle(p).overflowX});
});
// display maths: the typeset equation wider than its box or the column (MathJax keeps each one's TeX)
const items = (window.MathJax && MathJax.startup && MathJax.startup.document &&
               MathJax.startup.document.getMathItemsWithin) ? MathJax.startup.document.getMathItemsWithin(article) : [];
items.forEach(item => {
  const c = item.typesetRoot;
  if (!item.display || !c || !shown(c)) return;
  const inner = c.firstElementChild || c;
  const width = Math.max(inner.getBoundingClientRect().width, c.scrollWidth);
  const box = c.clientWidth;
  if (width > Math.min(box, column) + 1)
    clipped.push({kind: 'display maths', start: start(item.math), width: Math.round(width), box: box,
                  overflow: getComputedStyle(c).overflowX});
});
// prose: paragraphs outside outputs, code and tables
const prose = [];
article.querySelectorAll('p').forEach(p => {
  if (p.closest('.cell_output, .cell_input, table, pre, nav, .admonition-title, .toctree-wrapper, dl.py')) return;
  const words = (p.innerText || '').split(/\s+/).filter(Boolean).length;
  if (words > %MAX_WORDS%) prose.push({start: start(p.innerText), words: words});
});
// figures wider than the output box that holds them or than the column (in a folded cell: not laid out)
const figs = [...article.querySelectorAll('.plotly-graph-div')];
const wide = [];
const traces = [];
figs.forEach((f, i) => {
  const title = (f.querySelector('.gtitle') || {}).textContent || '';
  (f.data || []).forEach(t => {
    const colour = (t.marker && typeof t.marker.color === 'string' && t.marker.color) ||
                   (t.line && typeof t.line.color === 'string' && t.line.color) || null;
    if (t.name && colour && t.showlegend !== false) traces.push({figure: start(title) || `figure ${i + 1}`,
                                                                 name: String(t.name), colour: colour});
  });
  const svg = f.querySelector('svg.main-svg');
  const fw = Math.max(f.getBoundingClientRect().width, svg ? svg.getBoundingClientRect().width : 0);
  if (fw === 0) return;
  const box = f.closest('.output') || f.closest('.cell_output') || f.parentElement;
  const room = Math.min(box.clientWidth, column);
  if (fw > room + 1) wide.push({start: start(title) || `figure ${i + 1}`, width: Math.round(fw), column: Math.round(room)});
});
const bar = /\d+%\|[^|\n]*\|\s*\d+\/\d+|\d(it\/s|s\/it)\]|[\u2588\u258f\u258e\u258d\u258c\u258b\u258a\u2589]{2,}/;
const titles = [...article.querySelectorAll('.admonition-title')].map(t => t.innerText.trim());
return {column: column,
        figures: figs.length,
        drawn: figs.filter(f => f.querySelector('svg.main-svg')).length,
        maths: article.querySelectorAll('div.math, span.math').length,
        typeset: article.querySelectorAll('mjx-container').length,
        errors: [...article.querySelectorAll('.cell_output .traceback, .cell_output .output.error')]
                  .map(e => start(e.innerText)),
        progress: outputs.filter(o => bar.test(o.textContent)).map(o => start(o.textContent)),
        nan: nan, tables: tables, clipped: clipped, prose: prose, wide: wide, traces: traces,
        admonitions: titles,
        resources: [location.href, ...performance.getEntriesByType('resource').map(r => r.name)]};
""".replace("%MAX_WORDS%", str(MAX_WORDS))


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


def page_weight(resources: list[str], html_root: Path) -> dict:
    """The bytes of the page's HTML and of each local file it loaded (read from the built site), the shared
    files under :data:`SITE_WIDE` apart."""
    files: dict[str, int] = {}
    for url in dict.fromkeys(resources):
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or parsed.hostname != "127.0.0.1":
            continue  # data: URIs are in the HTML already; nothing else is local
        rel = unquote(parsed.path).lstrip("/")
        path = html_root / rel
        if path.is_file():
            files[rel] = path.stat().st_size
    counted = {k: v for k, v in files.items() if not k.startswith(SITE_WIDE)}
    return {"total": sum(counted.values()), "files": counted,
            "site_wide": {k: v for k, v in files.items() if k.startswith(SITE_WIDE)}}


def render(page: str, server: str, driver, html_root: Path) -> dict:
    """Open ``page``, wait until it has settled, take its screenshot, and read what the checks need."""
    from selenium.webdriver.support.ui import WebDriverWait

    assert (html_root / f"{page}.html").is_file(), f"{page} is in book/_toc.yml but was not built"
    driver.get_log("browser")  # drop what earlier pages left
    driver.get(f"{server}/{page}.html")

    def settled(d: object) -> dict | bool:
        s = d.execute_script(READY_JS)
        done = s["ready"] == "complete" and s["drawn"] == s["figures"] and (s["maths"] == 0 or s["typeset"] > 0)
        return s if done else False

    try:
        WebDriverWait(driver, 60, poll_frequency=0.5).until(settled)
    except Exception:  # noqa: BLE001 - the checks report what was missing
        pass
    shots = Path(os.environ.get("DDLIB_SCREENSHOTS") or ROOT / "book" / "_build" / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    full_page_screenshot(driver, shots / f"{page.replace('/', '__')}.png")
    # the screenshot resized the window, and opening the folded cells lays out figures drawn while hidden: plotly
    # follows the window's resize events (its figures are responsive), so send one and let it lay them out again
    driver.execute_script(OPEN_AND_RESIZE_JS)
    try:
        WebDriverWait(driver, 10, poll_frequency=0.25).until(lambda d: d.execute_script(FIGURES_FIT_JS))
    except Exception:  # noqa: BLE001 - a figure that stays wider is reported by its check
        pass
    state = driver.execute_script(STATE_JS, START)
    state["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    state["weight"] = page_weight(state["resources"], html_root)
    return state


@pytest.fixture(scope="module")
def rendered(server: str, driver, html_root: Path) -> Callable[[str], dict]:
    """``rendered(page)``: what the checks read of ``page``, each page opened once."""
    states: dict[str, dict] = {}

    def get(page: str) -> dict:
        if page not in states:
            states[page] = render(page, server, driver, html_root)
        return states[page]

    return get


# ----------------------------------------------------------------------------- the checks
# Each takes (page, state) and returns the problems it found, one line each (empty: the check passes).
def _kb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def no_console_errors(page: str, s: dict) -> list[str]:
    return [f"console error: {m[:300]}" for m in s["console"]]


def no_cell_errors(page: str, s: dict) -> list[str]:
    return [f"a cell shows an error: {e!r}" for e in s["errors"]]


def figures_drawn(page: str, s: dict) -> list[str]:
    out = []
    if s["drawn"] != s["figures"]:
        out.append(f"{s['figures'] - s['drawn']} of {s['figures']} plotly figures not drawn (plotly.js not loaded?)")
    if page in CHAPTERS and s["figures"] < 1:
        out.append("a chapter shows at least one plotly figure; this one shows none")
    return out


def maths_typeset(page: str, s: dict) -> list[str]:
    if s["maths"] and not s["typeset"]:
        return [f"MathJax typeset none of the {s['maths']} maths elements (offline MathJax missing? make mathjax)"]
    return []


def no_progress_bars(page: str, s: dict) -> list[str]:
    return [f"an output shows a progress bar: {p!r}" for p in s["progress"]]


def no_wide_figures(page: str, s: dict) -> list[str]:
    return [f"figure {w['start']!r} is {w['width']} px wide in a {w['column']} px column" for w in s["wide"]]


def no_nan_in_outputs(page: str, s: dict) -> list[str]:
    return [f"an output shows NaN: {n['start']!r}" for n in s["nan"]]


def no_sideways_tables(page: str, s: dict) -> list[str]:
    return [f"table {t['start']!r} is {t['width']} px wide in a {t['column']} px column (it scrolls sideways)"
            for t in s["tables"]]


def nothing_clipped(page: str, s: dict) -> list[str]:
    out = []
    for c in s["clipped"]:
        why = "is clipped" if c["overflow"] in ("hidden", "clip") else "runs past its box (scrolls sideways)"
        fix = " — break it with \\begin{aligned}" if c["kind"] == "display maths" else ""
        out.append(f"{c['kind']} {c['start']!r} {why}: {c['width']} px in {c['box']} px{fix}")
    return out


#: pages generated from the docstrings (the API appendix): reference text, not the book's prose; the rule on
#: paragraph length is for the pages a reader reads through (chapters, introduction, workshop)
REFERENCE_PAGES = {"api"}


def short_paragraphs(page: str, s: dict) -> list[str]:
    if page in REFERENCE_PAGES:
        return []
    return [f"a paragraph of {p['words']} words (at most {MAX_WORDS}): {p['start']!r}" for p in s["prose"]]


def light_page(page: str, s: dict) -> list[str]:
    w = s["weight"]
    if w["total"] <= MAX_PAGE_BYTES:
        return []
    heaviest = sorted(w["files"].items(), key=lambda kv: -kv[1])[:4]
    shared = sum(w["site_wide"].values())
    return [f"weighs {_kb(w['total'])} (at most {_kb(MAX_PAGE_BYTES)}; plus {_kb(shared)} of the site's shared "
            f"files, fetched once); heaviest: " + ", ".join(f"{k} {_kb(v)}" for k, v in heaviest)]


def what_we_found(page: str, s: dict) -> list[str]:
    if page not in CHAPTERS or any(re.search(r"what we found", t, re.I) for t in s["admonitions"]):
        return []
    titles = [t for t in s["admonitions"] if not re.match(r"(Show|Hide) ", t)]  # not the folds' buttons
    return [f"no admonition titled 'What we found' (its admonitions: {titles})"]


CHECKS: dict[str, Callable[[str, dict], list[str]]] = {
    "console": no_console_errors, "cell errors": no_cell_errors, "figures drawn": figures_drawn,
    "maths typeset": maths_typeset, "progress bars": no_progress_bars, "wide figures": no_wide_figures,
    "nan": no_nan_in_outputs, "sideways tables": no_sideways_tables, "clipped": nothing_clipped,
    "prose": short_paragraphs, "weight": light_page, "what we found": what_we_found,
}


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("page", PAGES)
def test_page(page: str, check: str, rendered: Callable[[str], dict]) -> None:
    problems = CHECKS[check](page, rendered(page))
    assert not problems, f"{page}: {check}:\n  " + "\n  ".join(problems)


def test_plotly_js_is_served_once_for_the_site(html_root: Path) -> None:
    """plotly.js is one static file of the site, and no page embeds its own copy."""
    from ddlib.plots.style import PLOTLY_JS_NAME

    assert (html_root / "_static" / PLOTLY_JS_NAME).is_file(), f"_static/{PLOTLY_JS_NAME} missing from the site"
    embedded = [p for p in PAGES if "* plotly.js v" in (html_root / f"{p}.html").read_text(errors="replace")]
    assert not embedded, f"pages that embed plotly.js themselves: {embedded}"


def test_a_method_has_one_colour_across_pages(rendered: Callable[[str], dict]) -> None:
    """Every trace named after a method (``ddlib.plots.style.canonical``) has that method's colour, on every page."""
    from ddlib.plots.style import METHOD_COLOURS, canonical

    seen: dict[str, set[tuple[str, str, str]]] = {}
    for page in PAGES:
        for t in rendered(page)["traces"]:
            method = canonical(t["name"])
            if method is not None:
                seen.setdefault(method, set()).add((t["colour"].lower(), page, t["figure"]))
    wrong = [f"{method} drawn {colour} in {page}: {figure!r} (the book's colour: {METHOD_COLOURS[method]})"
             for method, uses in sorted(seen.items()) for colour, page, figure in sorted(uses)
             if colour != METHOD_COLOURS[method].lower()]
    assert not wrong, "methods drawn in another colour than the book's:\n  " + "\n  ".join(wrong)
