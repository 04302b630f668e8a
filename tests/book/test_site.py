"""The built site in a real browser: headless Chromium (Debian's package, ``make browser``) driven by Playwright.

``_build/html`` is served on loopback and every page of the table of contents is opened as a reader would: it
loads with no console error, no script error and no failed request, its links lead to pages and anchors that
exist, its images load, its math is typeset by the MathJax that the site serves itself, it has a favicon, its
outputs show no Markdown table as lines of pipes, no NumPy scalar repr and no TensorFlow warning, notebook pages
carry a Colab link to their own notebook, explorers show their static figures, and the search page finds a page
by a word only that page holds. On a phone's screen (390 px) no page scrolls sideways and the explorers' figures
stay legible. Nothing is fetched from outside: a request to another host is blocked and reported, so the site is
known to work offline. Screenshots of a few pages at both widths land in ``_build/screenshots/``.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import pathlib
import re
import shutil
import threading
import urllib.parse
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import sync_playwright

from tests.book.test_hygiene import toc_files
from tools import book

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
# Playwright starts it headless and with --no-sandbox (its default, and needed as root); these keep it quiet and
# off the network.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = (390, 844)  # a phone held upright, in CSS pixels
PAGES = toc_files()
NOTEBOOK_PAGES = [entry for entry in PAGES if (ROOT / f"{entry}.ipynb").exists()]
EXPLORER_CALL = re.compile(r"\bexplore_\w+\(")

pytestmark = [
    pytest.mark.book,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no {CHROMIUM} here (make browser)"),
]


def explorer_calls(entry: str) -> int:
    """How many explorers a notebook displays: calls of a ``cnnbook`` ``explore_*`` function in its code cells."""
    nb = json.loads((ROOT / f"{entry}.ipynb").read_text(encoding="utf-8"))
    sources = ("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    return sum(len(EXPLORER_CALL.findall(source)) for source in sources)


WIDGET_PAGES = [entry for entry in NOTEBOOK_PAGES if explorer_calls(entry)]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def site(built_book):
    """The built site served by a thread on 127.0.0.1 (a free port); yields its base URL."""
    status, _ = built_book
    assert status == 0, "the book did not build (log in _build/book-build.log)"
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(HTML))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser(site):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Visit:
    """What a reader's browser met on one page."""

    url: str
    status: int | None = None
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # internal requests that failed or answered >= 400
    external: list[str] = field(default_factory=list)  # requests to other hosts (blocked)


def open_page(browser, site: str, path: str, *, viewport=(1280, 900)):
    """A new page in a fresh context that records errors and blocks everything not served by ``site``.

    Returns (context, page, visit); the caller navigates (``goto``) and closes the context.
    """
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    visit = Visit(url=site + path)

    def route(route):
        if route.request.url.startswith(site):
            route.continue_()
        else:
            visit.external.append(route.request.url)
            route.abort("blockedbyclient")

    def on_console(message):
        if message.type != "error":
            return
        source = message.location.get("url", "")
        if source and not source.startswith(site) and source in visit.external:
            return  # the console's report of an external request blocked above: reported as such
        visit.console_errors.append(f"{message.text} ({source})")

    def on_response(response):
        if response.url.startswith(site) and response.status >= 400:
            visit.failed.append(f"{response.status} {response.url}")

    def on_failed(request):
        if request.url.startswith(site):
            visit.failed.append(f"{request.failure} {request.url}")

    context.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    return context, page, visit


def goto(page, visit: Visit) -> None:
    response = page.goto(visit.url, wait_until="load")
    visit.status = response.status if response else None
    page.wait_for_load_state("networkidle")
    # MathJax typesets after it loaded; wait for that where it did load (the checks catch it when it did not).
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise.then(() => true)")


@functools.cache
def ids_in(file: pathlib.Path) -> frozenset[str]:
    text = file.read_text(encoding="utf-8", errors="replace")
    return frozenset(html.unescape(i) for i in re.findall(r"""\bid=["']([^"']+)["']""", text))


def local_file(site: str, url: str) -> pathlib.Path:
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    relative = path.removeprefix(urllib.parse.urlsplit(site).path)
    file = HTML / relative
    return file / "index.html" if relative == "" or relative.endswith("/") else file


def broken_links(page, site: str) -> list[str]:
    """Links to this site whose page does not exist, or whose #fragment names no element on the target page."""
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    current = page.url.split("#")[0]
    here = set(page.eval_on_selector_all("[id]", "elements => elements.map(e => e.id)"))
    broken = []
    for href in sorted(set(hrefs)):
        if not href.startswith(site):
            continue
        target, _, fragment = href.partition("#")
        target = target.split("?")[0]
        file = local_file(site, target)
        if not file.is_file():
            broken.append(f"{href} (no file {file.relative_to(HTML)})")
            continue
        if not fragment:
            continue
        fragment = urllib.parse.unquote(fragment)
        ids = here if target == current.split("?")[0] else ids_in(file)
        if fragment not in ids:
            broken.append(f"{href} (no id {fragment!r} on {file.relative_to(HTML)})")
    return broken


VISIBLE_TEXTS = "elements => elements.filter(e => e.getClientRects().length).map(e => e.innerText)"
BROKEN_IMAGES = """
images => images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.currentSrc || i.src)
"""

# Text a reader sees outside code and typeset math that still looks like TeX: unrendered math.
RAW_MATH = r"""
() => {
  const walker = document.createTreeWalker(document.querySelector("main") || document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest("pre, code, script, style, mjx-container, .highlight, .cell_output")) continue;
    const text = node.textContent;
    if (/\$\$|\\\(|\\\[|\\(frac|sum|partial|cdot|times|mathbf|left|right)\b/.test(text))
      raw.push(text.trim().slice(0, 120));
  }
  return raw;
}
"""


# What a reader must not meet in a page's text (code cells' own source aside). Each entry: the JavaScript regular
# expression, where it is looked for ("outputs": cell outputs only; "page": all text but code cells' source), and
# what it means.
RAW_TEXT_CHECKS = [
    (r"\|\s*:?(-{3,}|[\u2013\u2014]+):?\s*\|\s*:?(-{3,}|[\u2013\u2014]+):?\s*\|", "page",
     "a Markdown table shown as lines of pipes"),
    (r"\bnp\.(float|int|uint|bool|complex|str_)\w*\(", "outputs", "a NumPy scalar repr such as np.float32(0.25)"),
    (r"triggered tf\.function retracing", "outputs", "TensorFlow's retracing warning"),
    (r"URL fetch failure|\[Errno|could not be downloaded \(", "outputs", "a raw download error"),
]  # fmt: skip
RAW_TEXT = r"""
checks => {
  const root = document.querySelector("main") || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (element.closest(".cell_input, script, style")) continue;
    const output = element.closest(".cell_output") !== null;
    if (!output && element.closest("div[class*='highlight']")) continue;  // a code block in the prose
    for (const [pattern, where, meaning] of checks) {
      if (where === "outputs" && !output) continue;
      const match = new RegExp(pattern).exec(node.textContent);
      if (match) {
        const start = Math.max(0, match.index - 40);
        found.push(`${meaning}: ...${node.textContent.slice(start, match.index + 80).replace(/\s+/g, " ")}...`);
      }
    }
  }
  return [...new Set(found)].slice(0, 10);
}
"""


@pytest.mark.parametrize("entry", PAGES)
def test_page_loads_cleanly_with_working_links_images_and_math(browser, site, entry):
    context, page, visit = open_page(browser, site, f"{entry}.html")
    try:
        goto(page, visit)
        links = broken_links(page, site)
        images = page.eval_on_selector_all("img", BROKEN_IMAGES)
        math = page.eval_on_selector_all(".math", "elements => elements.length")
        typeset = page.eval_on_selector_all(".math mjx-container", "elements => elements.length")
        raw_math = page.evaluate(RAW_MATH)
        titles = page.eval_on_selector_all("h1", VISIBLE_TEXTS)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        raw_text = page.evaluate(RAW_TEXT, RAW_TEXT_CHECKS)
        icons = page.eval_on_selector_all("link[rel~='icon']", "links => links.map(link => link.href)")
    finally:
        context.close()
    problems = [
        f"HTTP {visit.status}" if visit.status != 200 else "",
        f"loads from outside the site (blocked here): {visit.external}" if visit.external else "",
        f"script errors: {visit.page_errors}" if visit.page_errors else "",
        f"console errors: {visit.console_errors}" if visit.console_errors else "",
        f"failed requests: {visit.failed}" if visit.failed else "",
        "broken links:\n  " + "\n  ".join(links) if links else "",
        f"images that did not load: {images}" if images else "",
        f"MathJax typeset {typeset} of the {math} math elements" if typeset != math else "",
        f"math left as TeX: {raw_math}" if raw_math else "",
        # One title: a Markdown line that starts with "# " (say, a wrapped "# of ...") becomes a second one.
        f"{len(titles)} titles: {titles}" if len(titles) != 1 else "",
        f"the page scrolls sideways by {overflow} px" if overflow > 0 else "",
        "shown as raw text:\n  " + "\n  ".join(raw_text) if raw_text else "",
        "no favicon" if not icons else "",
        *(f"favicon {icon} is not in the site" for icon in icons if not local_file(site, icon).is_file()),
    ]
    problems = [problem for problem in problems if problem]
    assert not problems, f"{visit.url}:\n" + "\n".join(problems)


# Elements that stick out of the screen without a box of their own that scrolls or clips them: what makes a page
# scroll sideways. (The theme's closed side drawers sit off-screen on purpose.)
WIDER_THAN_SCREEN = """
() => {
  const found = [];
  for (const element of document.querySelectorAll("main *")) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.right <= window.innerWidth + 1) continue;
    if (element.closest(".bd-sidebar-primary, .bd-sidebar-secondary")) continue;
    let parent = element.parentElement, held = false;
    for (; parent && parent !== document.body; parent = parent.parentElement) {
      held = ["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(parent).overflowX);
      if (held) break;
    }
    const what = `<${element.tagName.toLowerCase()} class="${element.className}">`;
    if (!held) found.push(`${what} to ${Math.round(box.right)} px: ${element.textContent.trim().slice(0, 60)}`);
  }
  return found.slice(0, 8);
}
"""


@pytest.mark.parametrize("entry", PAGES)
def test_page_fits_a_phone_screen(browser, site, entry):
    """At 390 px no page scrolls sideways: tables and code may scroll inside their own box, the page may not."""
    context, page, visit = open_page(browser, site, f"{entry}.html", viewport=PHONE)
    try:
        goto(page, visit)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        sticking_out = page.evaluate(WIDER_THAN_SCREEN) if overflow > 0 else []
    finally:
        context.close()
    where = "\n  ".join(sticking_out)
    assert overflow <= 0, f"{visit.url} scrolls sideways by {overflow} px on a phone:\n  {where}"
    assert not visit.console_errors and not visit.page_errors and not visit.failed, visit


@pytest.mark.parametrize("entry", WIDGET_PAGES)
def test_explorer_figures_are_legible_on_a_phone(browser, site, entry):
    """On a phone each explorer shows a figure drawn for it: at no less than 3/4 of its natural size (a figure's
    natural size is 100 px per inch, so its 8-point labels stay at least 8 px high), not a wide figure shrunk."""
    context, page, visit = open_page(browser, site, f"{entry}.html", viewport=PHONE)
    try:
        goto(page, visit)
        cells = page.locator("div.cell").filter(has=page.locator(".cell_input", has_text=EXPLORER_CALL))
        shown = []
        for i in range(cells.count()):
            figure = cells.nth(i).locator(".cell_output img").first
            figure.scroll_into_view_if_needed()
            natural = figure.evaluate("img => img.naturalWidth")  # density-corrected: CSS px at 100 %
            shown.append((figure.is_visible(), figure.bounding_box(), natural))
    finally:
        context.close()
    assert len(shown) == explorer_calls(entry), f"{len(shown)} explorer cells on the page"
    for visible, box, natural in shown:
        assert visible and box and natural > 0, f"figure not shown: {box}, natural width {natural}"
        scale = box["width"] / natural
        assert scale >= 0.75, f"the figure is drawn at {scale:.0%} of its size ({natural} px in {box['width']} px)"


def test_site_root_opens_the_introduction(browser, site):
    context, page, visit = open_page(browser, site, "")
    try:
        goto(page, visit)
        page.wait_for_url(f"{site}book/intro.html")
        title = page.locator("article h1").inner_text()
    finally:
        context.close()
    assert visit.status == 200 and not visit.failed and not visit.console_errors and not visit.page_errors, visit
    assert title.startswith("Convolutional Neural Networks"), title


def test_math_is_typeset_by_the_sites_own_mathjax(browser, site):
    """A lecture full of math: MathJax (served from the site, not a CDN) turns it into ``mjx-container``s."""
    context, page, visit = open_page(browser, site, "notebooks/01_backprop.html")
    try:
        goto(page, visit)
        scripts = page.eval_on_selector_all("script[src]", "scripts => scripts.map(s => s.src)")
        containers = page.eval_on_selector_all("mjx-container", "elements => elements.length")
        displayed = page.eval_on_selector_all("mjx-container[display='true']", "elements => elements.length")
        size = page.eval_on_selector("mjx-container", "e => [e.offsetWidth, e.offsetHeight]")
    finally:
        context.close()
    mathjax = [src for src in scripts if "mathjax" in src.lower()]
    assert mathjax and all(src.startswith(site) for src in mathjax), f"MathJax scripts: {mathjax}"
    assert containers >= 10 and displayed >= 1, (containers, displayed)
    assert min(size) > 0, f"typeset math has no size: {size}"
    assert not visit.external and not visit.failed and not visit.console_errors, visit


def colab_expected(entry: str) -> str:
    repo = book.repository_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/main/{entry}.ipynb"


@pytest.mark.parametrize("entry", NOTEBOOK_PAGES)
def test_notebook_page_opens_its_own_notebook_in_colab(browser, site, entry):
    context, page, visit = open_page(browser, site, f"{entry}.html")
    try:
        goto(page, visit)
        links = page.eval_on_selector_all(
            "a[href*='colab.research.google.com']", "links => links.map(a => a.href)"
        )
        # A reader finds it in the launch menu of the header.
        page.hover(".dropdown-launch-buttons button")
        colab = page.locator(".dropdown-launch-buttons a[href*='colab.research.google.com']")
        colab.wait_for(state="visible", timeout=5000)
        visible_text = colab.inner_text()
    finally:
        context.close()
    assert set(links) == {colab_expected(entry)}, f"Colab links on the page: {links}"
    assert urllib.parse.urlsplit(links[0]).path.endswith(f"/{entry}.ipynb")
    assert "Colab" in visible_text


@pytest.mark.parametrize("entry", WIDGET_PAGES)
def test_explorers_show_their_static_figures(browser, site, entry):
    """Each ``explore_*`` cell shows its figure (a loaded image with a size) and no widget placeholder."""
    context, page, visit = open_page(browser, site, f"{entry}.html")
    try:
        goto(page, visit)
        cells = page.locator("div.cell").filter(has=page.locator(".cell_input", has_text=EXPLORER_CALL))
        shown = []
        for i in range(cells.count()):
            output = cells.nth(i).locator(".cell_output")
            figure = output.locator("img").first
            figure.scroll_into_view_if_needed()
            box = figure.bounding_box()
            natural = figure.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            shown.append((figure.is_visible(), box, natural, output.inner_text()))
    finally:
        context.close()
    assert len(shown) == explorer_calls(entry), f"{len(shown)} explorer cells on the page"
    for visible, box, natural, text in shown:
        assert visible and box and box["width"] > 200 and box["height"] > 100, f"figure not visible: {box}"
        assert min(natural) > 0, f"figure did not load: {natural}"
        assert "Static view of an interactive explorer" in text
        assert "Loading widget" not in text and "Box(children" not in text, text[:300]


def test_pages_carry_no_dead_widget_state(built_book):
    """The site loads no widget manager, so the state the executor recorded for the live explorers (built, not
    shown, at build time) must not be written into the pages (it was ~430 KB on lecture 07)."""
    status, _ = built_book
    assert status == 0, "the book did not build (log in _build/book-build.log)"
    carrying = [e for e in NOTEBOOK_PAGES if "widget-state+json" in (HTML / f"{e}.html").read_text("utf-8")]
    assert carrying == []


def search_index() -> dict:
    text = (HTML / "searchindex.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


def unique_word(entry: str) -> str:
    """The longest plain word of a page's text that the search index holds for that page only."""
    from sphinx.search.en import SearchEnglish

    index = search_index()
    doc = index["docnames"].index(entry)
    stem = SearchEnglish({}).stem
    text = re.sub(r"<[^>]+>", " ", (HTML / f"{entry}.html").read_text(encoding="utf-8"))
    candidates = sorted(set(re.findall(r"\b[a-z]{7,}\b", html.unescape(text))), key=lambda w: (-len(w), w))
    for word in candidates:
        key = stem(word)
        others = [index["titleterms"].get(key), index["terms"].get(key)]
        if index["terms"].get(key) == doc and all(o in (None, doc, [doc]) for o in others):
            return word
    raise AssertionError(f"no word of {entry} is found on that page only")


# A lecture, an assignment and a page written in Markdown: the three kinds of page the search index is built from.
SEARCHED = ["notebooks/03_pooling", "release/a2_conv_arithmetic/a2_conv_arithmetic", "book/grading"]


@pytest.mark.parametrize("entry", SEARCHED)
def test_search_finds_the_one_page_with_a_word(browser, site, entry):
    word = unique_word(entry)
    context, page, visit = open_page(browser, site, f"search.html?q={word}")
    try:
        goto(page, visit)
        summary = page.locator("#search-results p.search-summary")
        page.wait_for_function(
            "() => /Search finished|did not match/.test("
            "document.querySelector('#search-results p.search-summary')?.innerText || '')"
        )
        status = summary.inner_text()
        results = page.eval_on_selector_all(
            "#search-results ul.search > li > a", "links => links.map(a => a.getAttribute('href'))"
        )
    finally:
        context.close()
    assert "found 1 page" in status, f"searching {word!r}: {status} {results}"
    assert [r.split("#")[0].split("?")[0] for r in results] == [f"{entry}.html"], (word, results)
    assert not visit.external and not visit.failed and not visit.console_errors and not visit.page_errors, visit


# Pages a person looks at after a change: the front page, a lecture with training plots, tables and logs, an
# explorer, transfer learning (notices, a wide catalogue table), an assignment, and search results.
SCREENSHOT_PAGES = {
    "home": "book/intro.html",
    "lecture": "notebooks/06_keras_cnns.html",
    "widget": "notebooks/02_convolution.html",
    "transfer": "notebooks/08_transfer_learning.html",
    "assignment": "release/a4_keras_cnn/a4_keras_cnn.html",
    "search": "search.html?q=pooling",
}


def test_screenshots(browser, site):
    """Full-page screenshots into ``_build/screenshots/``, at 1280 px (``NAME.png``) and on a phone
    (``NAME-phone.png``): artifacts for a person to look at."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    for name, path in SCREENSHOT_PAGES.items():
        for suffix, viewport in (("", (1280, 900)), ("-phone", PHONE)):
            context, page, visit = open_page(browser, site, path, viewport=viewport)
            try:
                goto(page, visit)
                if name == "search":
                    page.wait_for_function(
                        "() => /Search finished/.test("
                        "document.querySelector('#search-results p.search-summary')?.innerText || '')"
                    )
                page.screenshot(path=str(SCREENSHOTS / f"{name}{suffix}.png"), full_page=True)
            finally:
                context.close()
            assert (SCREENSHOTS / f"{name}{suffix}.png").stat().st_size > 10_000, name + suffix
