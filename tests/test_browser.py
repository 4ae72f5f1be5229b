"""The rendered book, opened page by page in headless Chromium.

The book is built once per session (``make assets``, then ``jupyter-book build --warningiserror``
into a temporary folder, so ``_build`` is left alone). Every page listed in ``_toc.yml`` is then
loaded from ``file://`` by a fresh headless Chromium (a pool of two), which runs the page's
scripts for up to ten seconds of virtual time and prints the resulting DOM (``--dump-dom``).
One test per page checks that DOM:

* math is typeset: every element Sphinx marked as math holds a MathJax ``mjx-container``, MathJax
  reported no TeX error (``mjx-merror``), and no raw ``$$``, ``$...$``, ``\\(`` or ``\\[`` is left
  in the text outside code and scripts (math the parser missed would be left there);
* every ``<img>`` points at a file that exists inside the build (or is a ``data:``/``blob:`` URI
  made by the page), and every PNG a chapter notebook shows is one of the page's images,
  byte for byte;
* widgets are rendered from their saved state: on pages whose notebook saved widget state, the
  widget manager (``@jupyter-widgets/html-manager``) put a rendered ``.jupyter-widgets`` tree
  before every widget-view placeholder, the text that the displayed models hold (labels,
  descriptions, HTML) is in it, and every displayed image widget is drawn;
* the page requests nothing outside the book, checked two ways. Statically, in the built HTML and
  in the DOM after scripts ran: no element that makes the browser fetch something (script,
  stylesheet, preload, icon, image, iframe, media) and no ``url()``/``@import`` in a ``<style>``
  or in a style sheet the page links points at ``http(s)://`` or ``//host``, and every local one
  resolves to a file inside the build. Dynamically: Chromium runs with
  ``--host-resolver-rules="MAP * ~NOTFOUND"`` (no name resolves, so nothing could be fetched from
  a network anyway) and writes a net log (``--log-net-log``). Chromium reads ``file://`` pages
  and their files without its network stack, so a URL request in that log is a request that
  left the book; the ones the page made (initiator: the page's opaque file origin) must be none.
  Chromium's own background requests (network time, account and update checks, which the flags
  above reduce but do not stop) have no initiator and are not the book's doing. A control test
  checks that the net log does catch a page that fetches a style sheet, an image and a URL.
  (The net log was chosen over ``--enable-logging`` console output because it records every
  request, whether or not anything on the page reports its failure.)
* no Python traceback is shown: no "Traceback (most recent call last)", no error or traceback
  output block, no stderr output that reports an error, no raw ANSI escape codes;
* no script fails: the page's console (``--enable-logging``) reports no uncaught error;
* each exercise has one toggle: a Solution dropdown holds the code cell that followed it in the
  notebook (book/_ext/solution_cells.py), and no separately folded cell follows it.

Layout tests then measure each page at 1440 px and in a 390 px phone's viewport (code and
output fit the desktop column; nothing widens a phone's page; no inline math is cut off; a
figure's 9-pt labels are 9 CSS px or more on a phone, as shown or one tap away, enlarged by
book/_theme/tinygpt.js), each with a control page that has the faults.

Skipped only when no Chromium (``chromium``, ``chromium-browser``, ``google-chrome``) is on PATH.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from urllib.parse import unquote, urljoin, urlsplit

import bs4  # installed with nbconvert and the book theme
import pytest
from cdp import ISOLATED, Page
from sphinx_external_toc.parsing import parse_toc_yaml

REPO = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROME_FLAGS = [
    "--headless",
    *ISOLATED,
    "--virtual-time-budget=10000",
    "--enable-logging=stderr",  # the page's console, where an uncaught error is reported
    "--v=0",
]
PAGE_TIMEOUT_S = 90
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def toc_pages() -> list[str]:
    """Docnames of every page in _toc.yml, root first (e.g. 'book/intro')."""
    return list(parse_toc_yaml(REPO / "_toc.yml").keys())


def source_of(docname: str) -> Path:
    for suffix in (".ipynb", ".md", ".rst"):
        path = REPO / f"{docname}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"no source file for {docname}")


# ---------------------------------------------------------------- running Chromium


@dataclass
class Dump:
    """What Chromium made of one page."""

    dom: str
    requests: list[str] | None  # URLs the page asked the network for; None: no net log
    returncode: int
    stderr: str
    uncaught: list[str] = field(default_factory=list)  # errors no script caught (console)


def page_requests(path: Path) -> list[str] | None:
    """URLs that a page (not Chromium itself) asked the network for, read from a net log.

    Chromium reads file:// pages and their files without its network stack, so every request in
    the log left the book. Chromium also makes a few requests of its own (network time, account
    and update checks), logged with "initiator": "not an origin" and a network isolation key
    that is not the page's file:// one; those are not the book's doing and are left out.
    """
    if not path.exists():
        return None
    text = path.read_text(errors="replace").strip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log that Chromium did not get to close
        log = json.loads(text.rstrip(",") + "]}")
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    found = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if types.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        by_browser = params.get("initiator") == "not an origin"
        if not by_browser or "file://" in params.get("network_isolation_key", ""):
            found.append(params["url"])
    return found


def dump_page(browser: str, url: str, width: int = 1440, flags: Sequence[str] = ()) -> Dump:
    """Open url in a fresh headless Chromium; return the DOM after scripts ran and the net log."""
    with tempfile.TemporaryDirectory(prefix="tinygpt-chromium-") as tmp:
        net_log = Path(tmp) / "net-log.json"
        cmd = [
            browser,
            *CHROME_FLAGS,
            *flags,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--log-net-log={net_log}",
            f"--window-size={width},900",
            "--hide-scrollbars",  # scroll bars would take 15 px from the layout measured
            "--dump-dom",
            url,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PAGE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return Dump("", None, -1, f"Chromium did not finish within {PAGE_TIMEOUT_S} s")
        noise = ("dbus", "Fontconfig", "unexpected operator")  # harmless in containers
        err = [line for line in proc.stderr.splitlines() if not any(n in line for n in noise)]
        uncaught = [line for line in err if ":CONSOLE" in line and '] "Uncaught' in line]
        return Dump(
            proc.stdout,
            page_requests(net_log),
            proc.returncode,
            "\n".join(err[-30:]),
            [line.split('] "', 1)[1][:300] for line in uncaught],
        )


# ---------------------------------------------------------------- layout at a given width

# Injected into a copy of a page: once the page has loaded and its scripts (MathJax, widgets)
# had six seconds of virtual time, measure what a reader sees and hand the report to whoever
# opened the page: the harness around it (by postMessage) or the page's own <body>.
LAYOUT_PROBE = r"""
(function () {
  function where(el) {
    const section = el.closest("section[id]");
    const text = (el.innerText || el.textContent || "").trim().replace(/\s+/g, " ");
    return (section ? "#" + section.id + " " : "") + text.slice(0, 70);
  }
  function scrollingAncestor(el) {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== "visible") return true;
    }
    return false;
  }
  function report() {
    const article = document.querySelector("article.bd-article") || document.body;
    const viewport = document.documentElement.clientWidth;
    const r = {viewport: viewport, page: document.documentElement.scrollWidth,
               column: article.clientWidth, scrollers: [], figures: [], controls: [],
               overflowing: [], orphans: []};
    const boxes = "pre, table, div.highlight, mjx-container[display='true'], .cell_output *";
    for (const el of article.querySelectorAll(boxes)) {
      const x = getComputedStyle(el).overflowX;
      const scrolls = el.tagName === "PRE" || x === "auto" || x === "scroll";
      if (scrolls && el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0) {
        r.scrollers.push({where: where(el), tag: el.tagName.toLowerCase(),
                          scroll: el.scrollWidth, client: el.clientWidth});
      }
    }
    // Each figure as shown, and as a tap shows it (book/_theme/tinygpt.js opens a figure shown
    // smaller than drawn in an overlay): the width of the enlarged image, and whether a hint
    // under the figure says that it enlarges. Widgets' images are listed after the others.
    // A saved ipywidget that a live widget replaces (book/_theme/live/tinygpt-live.js hides it)
    // is not measured; figures in folded cells are (and found not shown).
    const shown = (el) => el.getClientRects().length > 0;
    const widget = (img) => !!img.closest(".jupyter-widgets");
    const images = [...article.querySelectorAll("img")]
      .filter((i) => i.naturalWidth && (shown(i) || !widget(i)));
    for (const img of images.filter((i) => !widget(i)).concat(images.filter(widget))) {
      const hint = img.tinygptHint;
      const figure = {where: where(img.closest(".cell") || img), natural: img.naturalWidth,
                      shown: img.getBoundingClientRect().width, widget: widget(img),
                      hint: !!hint && hint.getBoundingClientRect().height > 0,
                      enlarged: null, closes: null};
      img.click();
      const big = document.querySelector(".tinygpt-lightbox img");
      if (big) {
        const s = getComputedStyle(big);
        figure.enlarged = big.getBoundingClientRect().width - parseFloat(s.paddingLeft) -
          parseFloat(s.paddingRight) - parseFloat(s.borderLeftWidth) -
          parseFloat(s.borderRightWidth);
        document.dispatchEvent(new KeyboardEvent("keydown", {key: "Escape", bubbles: true}));
        figure.closes = !document.querySelector(".tinygpt-lightbox");
      }
      r.figures.push(figure);
    }
    const kinds = {".widget-slider .slider-container": "slider",
                   ".widget-dropdown select": "dropdown",
                   ".widget-text input:not([type='number'])": "text",
                   "button.widget-button": "button",
                   ".widget-inline-hbox input[type='number']": "number",
                   ".tinygpt-live input[type='range']": "slider",
                   ".tinygpt-live select": "dropdown",
                   ".tinygpt-live input[type='text'], .tinygpt-live textarea": "text",
                   ".tinygpt-live button": "button",
                   ".tinygpt-live input[type='number']": "number"};
    for (const [selector, kind] of Object.entries(kinds)) {
      for (const el of [...document.querySelectorAll(selector)].filter(shown)) {
        const box = el.getBoundingClientRect();
        const control = el.closest(".widget-inline-hbox, .widget-button, label") || el;
        const label = control.querySelector(".widget-label") || control;
        r.controls.push({kind: kind, label: (label ? label.innerText : el.innerText).trim(),
                         width: Math.round(box.width), left: Math.round(box.left),
                         right: Math.round(box.right)});
      }
    }
    for (const el of document.body.querySelectorAll("*")) {
      const box = el.getBoundingClientRect();
      if (box.width > 0 && box.right > viewport + 1 && !scrollingAncestor(el)) {
        r.overflowing.push({where: where(el), tag: el.tagName.toLowerCase(),
                            right: Math.round(box.right)});
      }
    }
    r.overflowing = r.overflowing.slice(0, 20);
    // Inline math wider than its paragraph that does not scroll: cut off by a box that hides
    // its overflow (a dropdown), or running out of the column.
    r.cut_math = [];
    for (const math of article.querySelectorAll("mjx-container:not([display='true'])")) {
      if (math.closest("table")) continue;
      const box = math.parentElement.closest("p, li, dd, dt, div, blockquote");
      const s = getComputedStyle(box);
      const room = box.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
      const width = math.getBoundingClientRect().width;
      if (room > 0 && width > room + 1 && getComputedStyle(math).overflowX === "visible") {
        r.cut_math.push({where: where(box), width: Math.round(width), room: Math.round(room)});
      }
    }
    for (const math of document.querySelectorAll("mjx-container:not([display='true'])")) {
      let unit = math;  // the formula as the text sees it: maybe inside Sphinx's span.math
      while (unit.parentElement && unit.parentElement.childNodes.length === 1 &&
             unit.parentElement.tagName === "SPAN") unit = unit.parentElement;
      if (unit.parentElement.classList.contains("tinygpt-nowrap")) continue;  // glued
      const next = unit.nextSibling, prev = unit.previousSibling;
      const data = (node) => node && node.nodeType === Node.TEXT_NODE ? node.data : "";
      if (/^[,.;:!?)\]]/.test(data(next)) || /[(\[]$/.test(data(prev))) {
        r.orphans.push(where(unit.parentElement));
      }
    }
    r.path = decodeURIComponent(location.pathname);
    const text = JSON.stringify(r);
    if (window.parent !== window) window.parent.postMessage(text, "*");
    document.body.setAttribute("data-layout-report", text);
  }
  // Solutions are measured open: a second before the report, every dropdown is opened.
  function openDropdowns() {
    for (const title of document.querySelectorAll(".dropdown.toggle-hidden > .admonition-title")) {
      title.click();
    }
  }
  window.addEventListener("load", function () {
    setTimeout(openDropdowns, 5000);
    setTimeout(report, 6000);
  });
})();
"""
# A page that shows others, each in a frame of a given width: a phone's 390 px viewport (headless
# Chromium's windows are at least 500 px wide), with each page's report passed up to it. One
# browser for many pages saves starting one per page.
HARNESS = """<!DOCTYPE html><html><body style="margin:0">{frames}
<script>const reports = {{}};
window.addEventListener("message", function (e) {{
  const report = JSON.parse(e.data);
  reports[report.path] = report;
  document.body.setAttribute("data-layout-reports", JSON.stringify(reports)); }});</script>
</body></html>"""
FRAME = '<iframe src="{src}" style="display:block;width:{width}px;height:844px;border:0"></iframe>'
DESKTOP, LAPTOP, PHONE = 1440, 1280, 390


def probed_copy(page: Path) -> Path:
    """A copy of a built page, beside it (so its links resolve), with LAYOUT_PROBE added."""
    copy = page.with_name(f"{page.stem}.probed.html")
    if not copy.exists():
        text = page.read_text()
        copy.write_text(text.replace("</body>", f"<script>{LAYOUT_PROBE}</script></body>", 1))
    return copy


def layout_report(dom: str) -> dict | None:
    """The report LAYOUT_PROBE left on the <body> (read without parsing the whole page)."""
    found = re.search(r'<body[^>]*\sdata-layout-report="([^"]*)"', dom)
    return json.loads(html.unescape(found.group(1))) if found else None


def open_at_width(browser: str, pages: list[Path], width: int) -> dict[Path, dict | None]:
    """The layout report of each page shown at a given viewport width: in one window of that
    width, or for a phone, in frames of that width (one browser for all the pages)."""
    copies = {page: probed_copy(page) for page in pages}
    if width >= 500:
        return {
            p: layout_report(dump_page(browser, c.as_uri(), width).dom) for p, c in copies.items()
        }
    root = Path(os.path.commonpath([p.parent for p in pages]))
    frames = "".join(
        FRAME.format(src=c.relative_to(root).as_posix(), width=width) for c in copies.values()
    )
    harness = root / f"_layout_at{width}_{pages[0].stem}.html"  # one per group of pages
    harness.write_text(HARNESS.format(frames=frames))
    budget = [f"--virtual-time-budget={10_000 + 2_000 * len(pages)}"]  # the last flag wins
    dom = dump_page(browser, harness.as_uri(), width + 200, flags=budget).dom
    reports = re.search(r'<body[^>]*\sdata-layout-reports="([^"]*)"', dom)
    found = json.loads(html.unescape(reports.group(1))) if reports else {}
    return {page: found.get(c.as_posix()) for page, c in copies.items()}


# ---------------------------------------------------------------- checks on a DOM

# Elements that make the browser fetch something, and the attributes that name it.
FETCHING = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
}
# <link> relations that make the browser fetch their href (next/prev/index/search do not).
FETCHING_LINK_RELS = {
    "stylesheet", "preload", "modulepreload", "prefetch", "prerender", "preconnect",
    "dns-prefetch", "icon", "shortcut", "apple-touch-icon", "manifest", "mask-icon",
}  # fmt: skip
CSS_URL = re.compile(r"""(?:url\(|@import\s+(?:url\()?)\s*['"]?([^'")\s]+)""")
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def css_urls(css: str) -> list[str]:
    """The URLs in url(...) and @import of a style sheet, comments left out."""
    return CSS_URL.findall(CSS_COMMENT.sub("", css))


IN_PAGE = ("data:", "blob:", "about:", "javascript:", "#")


def leaves_book(url: str) -> bool:
    """Whether a URL points off this machine: http(s)://, //host/ and any scheme but file:."""
    return url.startswith("//") or urlsplit(url).scheme.lower() not in ("", "file")


def parse(html: str):
    return bs4.BeautifulSoup(html, "html.parser")


def fetched_urls(soup) -> list[tuple[str, str]]:
    """(what, url) for every resource the markup makes the browser fetch."""
    out = []
    for tag, attrs in FETCHING.items():
        for el in soup.find_all(tag):
            for attr in attrs:
                value = el.get(attr)
                if not value:
                    continue
                urls = [value]
                if attr == "srcset":
                    urls = [part.split()[0] for part in value.split(",") if part.strip()]
                out += [(f"<{tag} {attr}>", u.strip()) for u in urls if u.strip()]
    for el in soup.find_all("link"):
        rels = {r.lower() for r in el.get("rel", [])}
        if rels & FETCHING_LINK_RELS and el.get("href"):
            out.append((f"<link rel={' '.join(sorted(rels))}>", el["href"]))
    for el in soup.find_all(style=True):
        out += [("style attribute", u) for u in css_urls(el["style"])]
    for el in soup.find_all("style"):
        out += [("<style>", u) for u in css_urls(el.get_text())]
    return out


def local_file(page: Path, url: str) -> Path:
    """The file a relative URL on page points at (query and fragment dropped)."""
    target = urlsplit(urljoin(page.as_uri(), url))
    return Path(unquote(target.path))


def inside(root: Path, path: Path) -> bool:
    return root.resolve() in path.resolve().parents


def outside_requests(page: Path, html_root: Path, soup) -> list[str]:
    """Resources the page (or a style sheet it links) would fetch from outside the book."""
    problems = []
    sheets = []
    for what, url in fetched_urls(soup):
        if url.startswith(IN_PAGE):
            continue
        if leaves_book(url):
            problems.append(f"{what} {url}")
            continue
        path = local_file(page, url)
        if not path.is_file():
            problems.append(f"{what} {url} is not a file in the book")
        elif not inside(html_root, path):
            problems.append(f"{what} {url} lies outside the book")
        elif path.suffix == ".css":
            sheets.append(path)
    for sheet in sheets:
        for url in css_urls(sheet.read_text(errors="replace")):
            if url.startswith(IN_PAGE):
                continue
            if leaves_book(url):
                problems.append(f"{sheet.relative_to(html_root)}: url({url})")
            elif not local_file(sheet, url).is_file():
                problems.append(f"{sheet.relative_to(html_root)}: url({url}) is not in the book")
    return problems


def image_problems(page: Path, html_root: Path, soup) -> tuple[list[str], set[str]]:
    """Images that do not resolve to a file in the book; and the sha256 of every image shown."""
    problems, shown = [], set()
    for img in soup.find_all("img"):
        src = (img.get("src") or "").strip()
        if not src:
            problems.append(f"<img> without src: {str(img)[:120]}")
        elif src.startswith("data:"):
            head, _, body = src.partition(",")
            data = base64.b64decode(body) if head.endswith(";base64") else unquote(body).encode()
            shown.add(hashlib.sha256(data).hexdigest())
        elif src.startswith("blob:"):
            continue  # made by a script on the page (a widget's image)
        else:
            path = local_file(page, src)
            if leaves_book(src) or not path.is_file():
                problems.append(f"<img src={src}> is not a file in the book")
            elif not inside(html_root, path):
                problems.append(f"<img src={src}> lies outside the book")
            else:
                shown.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return problems, shown


SKIPPED_TEXT = {"script", "style", "code", "pre", "textarea", "kbd", "samp", "noscript", "template"}
RAW_MATH = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\begin\{"  # $$, \(, \), \[, \begin{
    r"|(?<![\w$])\$[^\s$][^$\n]*?[^\s$\\]\$(?![\w$])"  # $x$ (but not "$5 and $6")
)


def visible_text(soup) -> list[str]:
    """Text nodes outside code, scripts and MathJax's own markup."""
    out = []
    for node in soup.find_all(string=True):
        names = {p.name for p in node.parents}
        if names & SKIPPED_TEXT or any(n and n.startswith("mjx-") for n in names):
            continue
        if isinstance(node, bs4.Comment | bs4.Doctype | bs4.Declaration):
            continue
        if node.strip():
            out.append(str(node))
    return out


def math_problems(static, soup) -> list[str]:
    """Math that MathJax did not typeset, or TeX left raw in the text."""
    problems = []
    marked = len(static.select(".math"))
    typeset = soup.select(".math")
    if marked and not soup.find("mjx-container"):
        problems.append(f"{marked} math elements but no MathJax output (mjx-container)")
    for el in typeset:
        if not el.find("mjx-container"):
            problems.append(f"math not typeset: {el.get_text()[:80]!r}")
    problems += [f"MathJax error: {el.get_text()[:80]!r}" for el in soup.find_all("mjx-merror")]
    for text in visible_text(soup):
        for m in RAW_MATH.finditer(text):
            ctx = text[max(0, m.start() - 40) : m.end() + 40]
            problems.append(f"raw TeX {m.group()!r} in the text: {ctx!r}")
    return problems


# A cell that shows a traceback on purpose (Appendix C's --debug demonstration) carries this tag.
SHOWS_TRACEBACK = "tag_shows-traceback"


def traceback_problems(soup) -> list[str]:
    problems = []
    text = " ".join(
        piece for piece in soup.find_all(string=True)
        if not any(SHOWS_TRACEBACK in (parent.get("class") or []) for parent in piece.parents)
    )  # fmt: skip
    if "Traceback (most recent call last)" in text:
        i = text.index("Traceback (most recent call last)")
        problems.append(f"a Python traceback: {text[i : i + 200]!r}")
    if "\x1b[" in text:
        problems.append("raw ANSI escape codes in the page")
    for el in soup.select(".cell_output .traceback, .cell_output .error, .output.traceback"):
        problems.append(f"an error output: {el.get_text()[:200]!r}")
    for el in soup.select(".cell_output .stderr, .output.stderr"):
        if re.search(r"(Error|Exception)\b", el.get_text()):
            problems.append(f"stderr reports an error: {el.get_text()[:200]!r}")
    return problems


def shown_models(state: dict, roots: list[str]) -> list[dict]:
    """The saved models a page displays: the views' models and every model they refer to."""
    models = state.get("state", {})
    seen, todo = set(), list(roots)
    while todo:
        model_id = todo.pop()
        if model_id in seen or model_id not in models:
            continue
        seen.add(model_id)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(models[model_id]["state"]))
    return [models[m] for m in sorted(seen)]


def saved_widget_texts(models: list[dict]) -> list[str]:
    """Visible strings the saved widget models say the page must show (whitespace removed)."""
    texts = []
    for model in models:
        name, s = model.get("model_name", ""), model.get("state", {})
        if name == "LabelModel":
            texts.append(s.get("value", ""))
        elif name in ("HTMLModel", "HTMLMathModel"):
            texts.append(parse(s.get("value", "")).get_text())
        elif name == "ButtonModel":
            texts.append(s.get("description", ""))
        if name != "ButtonModel" and not s.get("description_allow_html"):
            texts.append(s.get("description", "") or "")
    return [squash(t) for t in texts if t and t.strip()]


def squash(text: str) -> str:
    return "".join(text.split())


def widget_problems(notebook: dict, soup) -> list[str]:
    """Widgets the page's saved state holds that the widget manager did not render."""
    state = notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE)
    if not state:
        return []
    problems = []
    if not soup.find("script", type=WIDGET_STATE):
        problems.append("the saved widget state is not in the page")
    views = soup.find_all("script", type=WIDGET_VIEW)
    if not views:
        problems.append("the notebook saved widget state but the page has no widget view")
    roots = []
    for script in views:
        roots.append(json.loads(script.get_text())["model_id"])
        area = script.find_previous_sibling()
        if area is None or "widget-subarea" not in area.get("class", []):
            problems.append(f"widget {roots[-1]} was not rendered (no .widget-subarea)")
        elif not area.select(".jupyter-widgets"):
            problems.append(f"widget {roots[-1]} rendered empty: {str(area)[:120]}")
    models = shown_models(state, roots)
    areas = soup.select(".widget-subarea")
    shown = squash("".join(area.get_text() for area in areas))
    for text in saved_widget_texts(models):
        if text not in shown:
            problems.append(f"saved widget text not shown: {text[:80]!r}")
    images = sum(m.get("model_name") == "ImageModel" for m in models)
    drawn = [i for a in areas for i in a.select("img.widget-image") if i.get("src")]
    if len(drawn) < images:
        problems.append(f"{images} saved widget images, {len(drawn)} drawn")
    return problems


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def notebook_pngs(notebook: dict) -> list[tuple[int, str]]:
    """(cell number, sha256) of every PNG figure a notebook's outputs show."""
    out = []
    for n, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code" or {"remove-output", "remove-cell"} & set(tags(cell)):
            continue
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            # myst-nb shows HTML, widgets and SVG in preference to a PNG of the same output
            if "image/png" in data and not {"text/html", WIDGET_VIEW, "image/svg+xml"} & set(data):
                png = base64.b64decode("".join(data["image/png"]))
                out.append((n, hashlib.sha256(png).hexdigest()))
    return out


def png_dpi(data: bytes) -> float | None:
    """The resolution a PNG records (its pHYs chunk, as matplotlib writes it), in dots per inch;
    None if it records none."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    at = 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"pHYs":
            x, _, unit = struct.unpack(">IIB", data[at + 8 : at + 17])
            return x * 0.0254 if unit == 1 else None  # unit 1: pixels per metre
        if kind in (b"IDAT", b"IEND"):
            return None  # pHYs comes before the image data
        at += 12 + length
    return None


def image_bytes(page: Path, src: str) -> bytes | None:
    if src.startswith("data:"):
        head, _, body = src.partition(",")
        return base64.b64decode(body) if head.endswith(";base64") else unquote(body).encode()
    path = local_file(page, src)
    return path.read_bytes() if path.is_file() else None


def figure_dpis(page: Path, soup, notebook: dict | None) -> tuple[list, float | None]:
    """The dpi of each figure the page shows, in the order the layout probe lists them (widgets'
    images aside), and the lowest dpi among the images the notebook's widgets saved."""
    article = soup.select_one("article.bd-article") or soup
    dpis = []
    for img in article.find_all("img"):
        data = image_bytes(page, (img.get("src") or "").strip())
        dpis.append(png_dpi(data) if data else None)
    state = ((notebook or {}).get("metadata", {}).get("widgets", {}).get(WIDGET_STATE)) or {}
    widget = [
        png_dpi(base64.b64decode(buffer["data"]))
        for model in state.get("state", {}).values()
        if model.get("model_name") == "ImageModel"
        for buffer in model.get("buffers", [])
        if buffer.get("encoding", "base64") == "base64"
    ]
    widget = [d for d in widget if d]
    return dpis, min(widget) if widget else None


# The smallest text a figure holds (book.mplstyle, tests/test_layout.py), and how tall it must be
# on a phone: at the default view or at the full size one tap opens.
LABEL_PT = 9
MIN_LABEL_PX = 9


def label_problems(figures: list[dict], dpis: list, widget_dpi: float | None) -> list[str]:
    """Figures whose smallest labels are under MIN_LABEL_PX CSS px both as shown and enlarged,
    and figures shown too small to read with no hint that a tap enlarges them."""
    problems = []
    plain = [f for f in figures if not f.get("widget")]
    if len(plain) != len(dpis):
        return [f"the probe measured {len(plain)} figures, the page holds {len(dpis)}"]
    for figure, dpi in zip(plain, dpis):
        figure["dpi"] = dpi
    for figure in figures:
        dpi = widget_dpi if figure.get("widget") else figure["dpi"]
        if not figure["shown"]:
            continue  # not shown (in a folded cell): nothing to measure
        if not dpi:
            problems.append(f"{figure['where']!r}: the image records no dpi (pHYs)")
            continue
        per_px = LABEL_PT * dpi / 72 / figure["natural"]  # label height per CSS px of width
        shown = per_px * figure["shown"]
        best = per_px * max(figure["shown"], figure.get("enlarged") or 0)
        if best < MIN_LABEL_PX:
            how = "enlarged " if figure.get("enlarged") else "and cannot be enlarged, "
            problems.append(
                f"{figure['where']!r}: {LABEL_PT}-pt labels at {shown:.1f} px as shown, "
                f"{how}{best:.1f} px ({figure['natural']} px at {dpi:.0f} dpi)"
            )
        elif shown < MIN_LABEL_PX and not figure.get("hint"):
            problems.append(f"{figure['where']!r}: labels at {shown:.1f} px and no hint to tap")
        if figure.get("enlarged") and figure.get("closes") is False:
            problems.append(f"{figure['where']!r}: Escape does not close the enlarged figure")
    return problems


def solution_problems(notebook: dict | None, soup) -> list[str]:
    """A Solution dropdown followed by its code in a separately folded cell (two toggles), or a
    solution's code cell that is not inside its dropdown."""
    problems = []
    solutions = [
        d
        for d in soup.select(".admonition.dropdown")
        if (title := d.select_one(".admonition-title"))
        and title.get_text().strip().startswith("Solution")
    ]
    for n, dropdown in enumerate(solutions, 1):
        after = dropdown.find_next_sibling()
        if after is not None and (
            "tag_hide-cell" in after.get("class", []) or after.select_one("details.hide")
        ):
            problems.append(f"Solution {n} is followed by a separately folded cell")
        if dropdown.select_one("details.hide"):
            problems.append(f"Solution {n} holds a second toggle")
    if notebook:
        cells = notebook["cells"]
        expected = sum(
            1
            for md, code in zip(cells, cells[1:])
            if md["cell_type"] == "markdown"
            and code["cell_type"] == "code"
            and "hide-cell" in tags(code)
            and "remove-cell" not in tags(code)
            and SOLUTION_LAST.search("".join(md["source"]))
        )
        holding = sum(1 for d in solutions if d.select_one(".cell .cell_input"))
        if holding < expected:
            problems.append(
                f"{expected} solutions have a code cell after them, {holding} hold their code"
            )
    return problems


# A markdown cell that ends with a Solution dropdown (the code cell after it belongs inside).
SOLUTION_LAST = re.compile(r":::+\{admonition\} Solution[^\n]*\n(?:(?!:::)[^\n]*\n|\n)*:::+\s*$")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        pytest.skip(f"no Chromium to open the book in (looked for {', '.join(BROWSERS)} on PATH)")
    return path


@pytest.fixture(scope="module")
def html_root(browser, tmp_path_factory) -> Path:
    """The book, built once into a temporary folder with warnings as errors."""
    assets = subprocess.run(["make", "assets"], cwd=REPO, capture_output=True, text=True)
    assert assets.returncode == 0, f"make assets failed:\n{assets.stdout}\n{assets.stderr}"
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(REPO)]
    cmd += ["--path-output", str(out), "--warningiserror", "--keep-going", "--all"]
    build = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if build.returncode != 0:
        log = re.sub(r"\x1b\[[0-9;]*m", "", build.stdout + build.stderr)
        warnings = [line for line in log.splitlines() if re.search(r"WARNING|ERROR|Error", line)]
        pytest.fail("the book build failed:\n" + "\n".join(warnings or log.splitlines()[-40:]))
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def dumps(browser, html_root) -> dict[str, Dump]:
    """Every page opened in Chromium, two at a time."""
    pages = toc_pages()

    def one(docname):
        page = html_root / f"{docname}.html"
        return dump_page(browser, probed_copy(page).as_uri(), DESKTOP) if page.exists() else None

    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        return dict(zip(pages, pool.map(one, pages)))


# ---------------------------------------------------------------- tests


def test_every_built_page_is_in_the_toc(html_root):
    pages = set(toc_pages())
    built = {
        p.relative_to(html_root).with_suffix("").as_posix()
        for p in html_root.rglob("*.html")
        if not p.relative_to(html_root).parts[0].startswith("_")
        and len(p.suffixes) == 1  # not the copies the layout tests make (page.probed.html)
    }
    extra = built - pages - {"search", "genindex", "index"}
    assert not extra, f"pages built but not in _toc.yml (so not opened by this test): {extra}"
    assert pages <= built, f"pages in _toc.yml that were not built: {pages - built}"
    root = toc_pages()[0]
    assert f"{root}.html" in (html_root / "index.html").read_text(), "index.html must lead home"


@pytest.mark.parametrize("docname", toc_pages())
def test_page_renders(docname, html_root, dumps):
    page = html_root / f"{docname}.html"
    assert page.exists(), f"{docname} is in _toc.yml but was not built"
    dump = dumps[docname]
    assert dump.returncode == 0 and "</html>" in dump.dom, (
        f"Chromium could not open {docname}: rc={dump.returncode}\n{dump.stderr}"
    )
    static = parse(page.read_text())
    soup = parse(dump.dom)
    source = source_of(docname)
    notebook = json.loads(source.read_text()) if source.suffix == ".ipynb" else None

    problems = {}
    problems["math"] = math_problems(static, soup)
    img, shown = image_problems(page, html_root, soup)
    if notebook:
        img += [
            f"the PNG output of cell {n} is not an image on the page"
            for n, sha in notebook_pngs(notebook)
            if sha not in shown
        ]
        problems["widgets"] = widget_problems(notebook, soup)
    problems["images"] = img
    requests = outside_requests(page, html_root, static) + outside_requests(page, html_root, soup)
    problems["requests"] = sorted(set(requests))
    if dump.requests is None:
        problems["requests"].append("Chromium wrote no net log, so requests were not checked")
    else:
        problems["requests"] += [f"the page requested {u}" for u in dump.requests]
    problems["tracebacks"] = traceback_problems(soup)
    problems["console"] = dump.uncaught
    problems["solutions"] = solution_problems(notebook, soup)
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, f"{docname}:\n" + "\n".join(
        f"  {kind}: {p}" for kind, ps in problems.items() for p in ps[:10]
    )


def test_net_log_catches_a_request_to_the_web(browser, tmp_path):
    """The control for the request check: a page that fetches from the web is caught; and for
    the console check, a script that fails (a constant declared twice)."""
    page = tmp_path / "fetches.html"
    page.write_text(
        '<html><head><link rel="stylesheet" href="https://cdn.example.org/a.css"></head><body>'
        '<img src="https://example.org/a.png"><script>fetch("http://example.net/b")</script>'
        "<script>const twice = 1;</script><script>const twice = 2;</script></body></html>"
    )
    dump = dump_page(browser, page.as_uri())
    assert dump.uncaught and "'twice' has already been declared" in dump.uncaught[0], dump.uncaught
    assert "</html>" in dump.dom and dump.requests is not None, dump.stderr
    for url in (
        "https://cdn.example.org/a.css",
        "https://example.org/a.png",
        "http://example.net/b",
    ):
        assert url in dump.requests, dump.requests
    assert sorted(outside_requests(page, tmp_path, parse(dump.dom))) == [
        "<img src> https://example.org/a.png",
        "<link rel=stylesheet> https://cdn.example.org/a.css",
    ]


def test_checks_catch_raw_math_tracebacks_missing_images_and_widgets(tmp_path):
    """The DOM checks themselves fail on a page with the faults they look for."""
    html = (
        "<p>Attention is $\\mathrm{softmax}(QK^T)$ and \\(x\\)</p><pre>$$ in code is fine $$</pre>"
        '<span class="math">\\(y\\)</span><img src="missing.png">'
        '<div class="cell_output"><div class="output traceback">'
        "Traceback (most recent call last)</div></div>"
    )
    soup = parse(html)
    math = math_problems(soup, soup)
    assert any("not typeset" in p for p in math) and any("softmax" in p for p in math)
    assert not any("in code" in p for p in math)
    assert len(traceback_problems(soup)) == 2
    shown = "<pre>Traceback (most recent call last)</pre>"
    on_purpose = f'<div class="cell {SHOWS_TRACEBACK}">{shown}</div>'
    assert traceback_problems(parse(on_purpose)) == []
    assert len(traceback_problems(parse(on_purpose.replace(SHOWS_TRACEBACK, "tag_other")))) == 1
    page = tmp_path / "p.html"
    missing = ["<img src=missing.png> is not a file in the book"]
    assert image_problems(page, tmp_path, soup)[0] == missing
    (tmp_path / "book").mkdir()
    (tmp_path / "a.js").write_text("")
    away = parse('<script src="../a.js"></script><link rel="icon" href="//x.org/i">')
    assert outside_requests(tmp_path / "book" / "p.html", tmp_path / "book", away) == [
        "<script src> ../a.js lies outside the book",
        "<link rel=icon> //x.org/i",
    ]
    css = "a{src:url(f.woff)} /* @import url('https://a.org/x.css'); */ @import url('https://b.org/y');"
    assert css_urls(css) == ["f.woff", "https://b.org/y"]
    assert not math_problems(parse("<p>It costs $5 and $6 (no math).</p>"), parse("<p>x</p>"))
    state = {
        "state": {
            "a1": {"model_name": "LabelModel", "state": {"value": "3 tokens", "x": "IPY_MODEL_b2"}},
            "b2": {"model_name": "ImageModel", "state": {}},
            "c3": {"model_name": "LabelModel", "state": {"value": "never displayed"}},
        }
    }
    notebook = {"metadata": {"widgets": {WIDGET_STATE: state}}, "cells": []}
    unrendered = parse(
        f'<script type="{WIDGET_STATE}">{{}}</script>'
        f'<div><script type="{WIDGET_VIEW}">{{"model_id": "a1"}}</script></div>'
    )
    assert widget_problems(notebook, unrendered) == [
        "widget a1 was not rendered (no .widget-subarea)",
        "saved widget text not shown: '3tokens'",
        "1 saved widget images, 0 drawn",
    ]


# ---------------------------------------------------------------- layout tests

# Elements that may scroll sideways at 1440 px, on purpose: (page, where it is, why).
# "where" is the start of the measured element's description: "#section-id text...".
SCROLLS_ON_PURPOSE: list[tuple[str, str, str]] = []


def widget_pages() -> list[str]:
    pages = []
    for docname in toc_pages():
        source = source_of(docname)
        if source.suffix == ".ipynb":
            meta = json.loads(source.read_text()).get("metadata", {})
            if meta.get("widgets", {}).get(WIDGET_STATE):
                pages.append(docname)
    return pages


def reports_at(browser, html_root, pages, width) -> dict[str, dict | None]:
    """Layout reports of pages at a width: in two browsers, each showing half the pages."""
    paths = {docname: html_root / f"{docname}.html" for docname in pages}
    halves = [pages[0::2], pages[1::2]]

    def one(half):
        return open_at_width(browser, [paths[d] for d in half], width) if half else {}

    with ThreadPoolExecutor(max_workers=2) as pool:
        found = {k: v for part in pool.map(one, halves) for k, v in part.items()}
    return {docname: found.get(paths[docname]) for docname in pages}


@pytest.fixture(scope="module")
def on_phone(browser, html_root) -> dict[str, dict | None]:
    """Every page's layout report in a 390 px wide viewport."""
    return reports_at(browser, html_root, toc_pages(), PHONE)


@pytest.fixture(scope="module")
def on_laptop(browser, html_root) -> dict[str, dict | None]:
    """The layout report of every page with widgets in a 1280 px wide window."""
    return reports_at(browser, html_root, widget_pages(), LAPTOP)


def report_of(reports: dict, docname: str) -> dict:
    report = reports.get(docname)
    if isinstance(report, Dump):
        report = layout_report(report.dom)
    assert report, f"{docname}: the page did not report its layout (did it load?)"
    return report


def on_purpose(docname: str, where: str) -> bool:
    return any(d == docname and where.startswith(w) for d, w, _ in SCROLLS_ON_PURPOSE)


@pytest.mark.parametrize("docname", toc_pages())
def test_code_and_output_fit_the_column_at_1440px(docname, dumps):
    report = report_of(dumps, docname)
    assert report["viewport"] == DESKTOP
    cut = [
        f"{s['tag']} {s['where']!r} needs {s['scroll']} px, has {s['client']}"
        for s in report["scrollers"]
        if not on_purpose(docname, s["where"])
    ]
    assert not cut, f"{docname}: sideways scrolling at {DESKTOP} px:\n" + "\n".join(cut)
    assert report["page"] <= DESKTOP, f"{docname} is {report['page']} px wide"


@pytest.mark.parametrize("docname", toc_pages())
def test_figures_are_shown_at_80_percent_of_their_size_or_more(docname, dumps):
    report = report_of(dumps, docname)
    small = [
        f"{f['where']!r}: {f['natural']} px drawn, {f['shown']:.0f} px shown"
        for f in report["figures"]
        if f["shown"] < 0.8 * f["natural"] and not f["widget"]
    ]
    assert not small, f"{docname}: figures shrunk below 80 % at {DESKTOP} px:\n" + "\n".join(small)


@pytest.mark.parametrize("docname", toc_pages())
def test_no_punctuation_is_orphaned_after_inline_math(docname, dumps, on_phone):
    for reports in (dumps, on_phone):
        orphans = report_of(reports, docname)["orphans"]
        assert not orphans, f"{docname}: punctuation not kept with its math: {orphans[:5]}"


@pytest.mark.parametrize("docname", toc_pages())
def test_a_phone_page_is_no_wider_than_the_screen(docname, on_phone):
    report = report_of(on_phone, docname)
    assert report["viewport"] == PHONE, report["viewport"]
    wide = [f"<{o['tag']}> {o['where']!r} ends at {o['right']} px" for o in report["overflowing"]]
    assert report["page"] <= PHONE, (
        f"{docname} lays out {report['page']} px wide on a {PHONE} px phone:\n" + "\n".join(wide)
    )
    cut = [f"{m['where']!r}: {m['width']} px in {m['room']} px" for m in report["cut_math"]]
    assert not cut, f"{docname}: inline math cut off on a {PHONE} px phone:\n" + "\n".join(cut)


@pytest.mark.parametrize("docname", toc_pages())
def test_figure_labels_can_be_read_on_a_phone(docname, html_root, on_phone):
    """On a 390 px phone a figure shrinks to the column; its 9-pt labels must be 9 CSS px or
    more as shown, or one tap away: the enlarged figure (book/_theme/tinygpt.js) shows them at
    the size they were drawn at."""
    report = report_of(on_phone, docname)
    page = html_root / f"{docname}.html"
    source = source_of(docname)
    notebook = json.loads(source.read_text()) if source.suffix == ".ipynb" else None
    dpis, widget_dpi = figure_dpis(page, parse(page.read_text()), notebook)
    problems = label_problems(report["figures"], dpis, widget_dpi)
    assert not problems, f"{docname} at {PHONE} px:\n" + "\n".join(problems)


MIN_WIDTH = {"slider": 120, "dropdown": 120, "text": 120, "number": 60, "button": 60}


@pytest.mark.parametrize("width", [LAPTOP, PHONE])
@pytest.mark.parametrize("docname", widget_pages())
def test_every_widget_control_is_usable(docname, width, on_laptop, on_phone):
    report = report_of(on_laptop if width == LAPTOP else on_phone, docname)
    controls = report["controls"]
    assert controls, f"{docname}: no widget controls were found at {width} px"
    bad = [
        f"{c['kind']} {c['label']!r}: {c['width']} px wide, from {c['left']} to {c['right']} px"
        for c in controls
        if c["width"] < MIN_WIDTH[c["kind"]] or c["left"] < 0 or c["right"] > report["viewport"]
    ]
    assert not bad, f"{docname} at {width} px:\n" + "\n".join(bad)


# ---------------------------------------------------------------- search


def test_every_page_has_one_search_box(html_root):
    for docname in toc_pages():
        soup = parse((html_root / f"{docname}.html").read_text())
        boxes = soup.select(".search-button-field")
        assert len(boxes) == 1, f"{docname} has {len(boxes)} search boxes"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request on stderr
        pass


@pytest.fixture(scope="module")
def served(html_root):
    """The built book served over HTTP on 127.0.0.1, as a reader's web server would (Sphinx's
    search fetches each result's page for its snippet, which a browser refuses over file://)."""
    handler = partial(QuietHandler, directory=str(html_root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("query", ["tokenizer", "softmax"])
def test_search_lists_each_page_once_with_a_snippet(query, browser, served):
    local = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
    dom = dump_page(browser, f"{served}/search.html?q={query}", flags=local).dom
    results = parse(dom).select("ul.search li")
    assert len(results) >= 5, f"searching {query!r} found {len(results)} results"
    pages = [li.find("a")["href"].split("#")[0] for li in results]
    assert len(pages) == len(set(pages)), f"a page is listed twice: {pages}"
    assert sum(p.endswith("glossary.html") for p in pages) == 1
    glossary = next(li for li in results if "glossary.html" in li.find("a")["href"])
    assert glossary.find("a").get_text() == f"Glossary: {query}"  # the term, with its anchor
    for li in results:
        snippet = li.select_one("p.context")
        text = snippet.get_text() if snippet else ""
        # the word as typed, or its stem where a page holds only another form ("tokenization")
        assert query[:5] in text.lower(), f"{li.find('a').get_text()!r}: snippet {text[:120]!r}"
        if "01_tokenization" in li.find("a")["href"]:
            assert query in text.lower(), f"a snippet without the word itself: {text[:120]!r}"
        assert ".md" not in text[:10] and "\\(" not in text


def test_layout_probe_catches_cut_code_shrunk_figures_narrow_sliders_and_wide_pages(
    browser, tmp_path
):
    """The control for the layout tests: a page with each fault is reported with it."""
    svg = "data:image/svg+xml," + (
        "%3Csvg xmlns='http://www.w3.org/2000/svg' width='1000' height='100'%3E%3C/svg%3E"
    )
    page = tmp_path / "faults.html"
    page.write_text(
        "<html><body><article class='bd-article' style='width:600px'><section id='s'>"
        f"<pre style='overflow:auto'>{'x' * 300}</pre><img src=\"{svg}\" style='max-width:100%'>"
        "<div class='widget-slider widget-inline-hbox'><label class='widget-label'>T</label>"
        "<div class='slider-container' style='width:30px;height:9px'></div></div>"
        "<p>a <mjx-container style='display:inline-block'>m</mjx-container>, b (<span "
        "class='math'><mjx-container style='display:inline-block'>n</mjx-container></span></p>"
        "<div style='width:800px'>wide</div></section></article></body></html>"
    )
    desktop = open_at_width(browser, [page], DESKTOP)[page]
    phone = open_at_width(browser, [page], PHONE)[page]
    assert desktop and phone, "the probe reported nothing"
    assert [s["tag"] for s in desktop["scrollers"]] == ["pre"]
    assert desktop["scrollers"][0]["where"].startswith("#s xxx")
    assert [(f["natural"], round(f["shown"])) for f in desktop["figures"]] == [(1000, 600)]
    assert [(c["kind"], c["label"], c["width"]) for c in desktop["controls"]] == [
        ("slider", "T", 30)
    ]
    assert len(desktop["orphans"]) == 2 and desktop["page"] == DESKTOP
    assert phone["viewport"] == PHONE and phone["page"] >= 800
    assert any(o["tag"] == "div" and o["right"] >= 800 for o in phone["overflowing"])


def png(width: int, height: int, dpi: float) -> bytes:
    """A white greyscale PNG of that size that records that resolution (as matplotlib does)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff" * width for _ in range(height))
    ppm = round(dpi / 0.0254)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_label_check_catches_figures_too_small_to_read_on_a_phone(browser, tmp_path):
    """The control for the figure test: a 1000 px figure shrunk to a phone's column is caught
    when nothing enlarges it, and so is one drawn at 40 dpi (9-pt labels of 5 px even at full
    size); with the book's script and style, a 100-dpi figure passes, enlarged to full size."""
    theme = REPO / "book" / "_theme"
    head = (
        f'<link rel="stylesheet" href="{(theme / "tinygpt.css").as_uri()}">'
        f'<script src="{(theme / "tinygpt.js").as_uri()}"></script>'
    )

    def page(name, with_theme, dpis):
        figures = "".join(
            f'<div class="cell" id="f{dpi}"><div class="cell_output"><img src="data:image/png;'
            f'base64,{base64.b64encode(png(1000, 60, dpi)).decode()}" style="max-width:100%">'
            "</div></div>"
            for dpi in dpis
        )
        path = tmp_path / name
        path.write_text(
            f"<html><head>{head if with_theme else ''}</head><body>"
            f"<article class='bd-article'><section id='s'>{figures}</section></article>"
            "</body></html>"
        )
        return path

    bare = page("bare.html", False, [100])
    themed = page("themed.html", True, [100, 40])
    reports = open_at_width(browser, [bare, themed], PHONE)
    assert reports[bare] and reports[themed], "the probe reported nothing"
    found = {}
    for path in (bare, themed):
        dpis, _ = figure_dpis(path, parse(path.read_text()), None)
        assert [round(d) for d in dpis] == ([100] if path == bare else [100, 40])
        found[path] = label_problems(reports[path]["figures"], dpis, None)
    assert len(found[bare]) == 1 and "cannot be enlarged, 4." in found[bare][0], reports
    good, low = reports[themed]["figures"]
    assert good["enlarged"] == 1000 and good["hint"] and good["closes"], good
    assert len(found[themed]) == 1 and "at 40 dpi" in found[themed][0], found[themed]


def test_solution_check_catches_a_second_toggle():
    """The control for the solutions check: a Solution dropdown followed by a folded cell."""
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {},
             "source": [":::{admonition} Solution\n", ":class: dropdown\n", "It is 4.\n", ":::"]},
            {"cell_type": "code", "metadata": {"tags": ["hide-cell"]}, "source": ["print(4)"]},
        ]
    }  # fmt: skip
    two = parse(
        '<div class="dropdown admonition"><p class="admonition-title">Solution</p><p>It is 4.</p>'
        '</div><div class="cell tag_hide-cell"><details class="hide"><summary>Show</summary>'
        '<div class="cell_input">print(4)</div></details></div>'
    )
    assert solution_problems(notebook, two) == [
        "Solution 1 is followed by a separately folded cell",
        "1 solutions have a code cell after them, 0 hold their code",
    ]
    one = parse(
        '<div class="dropdown admonition"><p class="admonition-title">Solution</p><p>It is 4.</p>'
        '<div class="cell"><div class="cell_input">print(4)</div></div></div>'
    )
    assert solution_problems(notebook, one) == []


# ---------------------------------------------------------------- the live model in the page
# The static book runs the exported model (book/live/model.onnx) in the reader's browser
# (book/_theme/live/). These tests drive it over the DevTools protocol (tests/cdp.py) and check it
# against PyTorch on the same weights: tinygpt.export.model_from_onnx rebuilds them from the file.


def live_state(root: str) -> str:
    """A JavaScript expression: the data-state of the live widget matching the selector root."""
    return f"(document.querySelector({json.dumps(root)}) || {{dataset: {{}}}}).dataset.state"


def wait_until_done(page, root: str) -> None:
    page.wait_for(f"['done', 'error'].includes({live_state(root)})", 180)
    assert page.eval(live_state(root)) == "done", page.eval(
        f"document.querySelector({json.dumps(root)}).textContent"
    )


def type_into(page, selector: str, value) -> None:
    """Set a control's value the way typing does: an input event, then a change event."""
    page.eval(
        f"(() => {{ const c = document.querySelector({json.dumps(selector)});"
        f" c.value = {json.dumps(value)};"
        " c.dispatchEvent(new Event('input', {bubbles: true}));"
        " c.dispatchEvent(new Event('change', {bubbles: true})); })()"
    )


LIVE_PROMPTS = ["Mary had a little", "ROMEO:\nBut soft, what light", "To be, or not to be"]


@pytest.fixture(scope="module")
def live_reference():
    """The PyTorch model the page must agree with, its vocabulary and the page's manifest."""
    import torch

    from tinygpt.export import model_from_onnx
    from tinygpt.vocab import RestrictedVocab

    model = model_from_onnx(REPO / "book" / "live" / "model.onnx")
    manifest = json.loads((REPO / "book" / "live" / "model.json").read_text())
    kept = manifest["vocab"]["kept"]
    vocab = RestrictedVocab(torch.tensor(kept)) if kept is not None else None
    return model, vocab, manifest


@pytest.fixture(scope="module")
def live_page(browser, html_root):
    """One tab on Chapter 7, its live model loaded (once: the tests below share it)."""
    page = Page(browser)
    page.goto((html_root / "book" / "07_sampling.html").as_uri())
    page.eval("tinygptLive.load()")
    yield page
    page.close()


def book_requests_only(page, html_root: Path) -> list[str]:
    """The URLs a page requested that are not files of the book (or made by the page itself)."""
    root = html_root.resolve().as_uri()
    return [u for u in page.requests if not u.startswith((root, "data:", "blob:"))]


def local_ids(vocab, encoding, text: str) -> list[int]:
    import torch

    ids = encoding.encode_ordinary(text)
    return vocab.to_local(torch.tensor(ids)).tolist() if vocab is not None else ids


def test_live_tokenizer_gives_tiktokens_ids(live_page):
    from test_tokenizer import TRICKY

    from tinygpt.tokenizer import gpt2_encoding

    # U+0085 is White_Space (tiktoken's \s) but not in JavaScript's \s; U+FEFF the other way
    texts = [*TRICKY, "<|endoftext|> is text", "a\x85b \x85 c", "\ufeff\ufeff  \ufeff", "x\u180ey"]
    got = live_page.eval(f"{json.dumps(texts)}.map(t => Array.from(tinygptLive.encode(t)))")
    encoding = gpt2_encoding()
    for text, ids in zip(texts, got):
        assert ids == encoding.encode_ordinary(text), repr(text)


def test_live_logits_equal_pytorchs(live_page, live_reference):
    """The prompt's last logits, computed in the page (WebAssembly), equal PyTorch's on the
    file's weights: max |difference| < 1e-4."""
    import torch

    from tinygpt.tokenizer import gpt2_encoding

    model, vocab, _ = live_reference
    encoding = gpt2_encoding()
    for prompt in LIVE_PROMPTS:
        ids = local_ids(vocab, encoding, prompt)
        page = live_page.eval(f"tinygptLive.logits({json.dumps(ids)}).then(a => Array.from(a))")
        with torch.no_grad():
            want = model(torch.tensor([ids]))[0][0, -1]
        assert (torch.tensor(page) - want).abs().max() < 1e-4, prompt


def test_live_greedy_continuation_is_tinygpt_samples(live_page, live_reference, tmp_path):
    """64 greedy tokens from the page's playground equal `tinygpt sample --temperature 0` on a
    checkpoint of the same weights."""
    import contextlib
    import io

    from tinygpt import checkpoint as ckpt
    from tinygpt.cli import main as tinygpt_cli

    model, vocab, _ = live_reference
    meta = {"vocab": vocab.state()} if vocab is not None else {}
    ckpt.save(
        tmp_path / "best.safetensors",
        ckpt.Checkpoint(model.config.to_dict(), model.weights(), meta),
    )
    for prompt in LIVE_PROMPTS[:2]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = tinygpt_cli(
                ["sample", "--checkpoint", str(tmp_path), "--prompt", prompt, "--temperature", "0",
                 "--max-new-tokens", "64", "--no-stream", "--device", "cpu"]
            )  # fmt: skip
        assert status == 0
        settings = {"prompt": prompt, "temperature": 0, "new-tokens": 64}
        text = run_playground(live_page, settings)
        assert text.strip() and text in out.getvalue(), (text, out.getvalue())


def run_playground(page, settings: dict) -> str:
    """Set the Chapter 7 playground's controls, press Generate, wait, and return its text."""
    root = ".tinygpt-live[data-widget='playground']"
    for name, value in settings.items():
        type_into(page, f"{root} [name='{name}']", value)
    button = json.dumps(f"{root} [name='generate']")
    page.eval(f"document.querySelector({button}).click()")
    wait_until_done(page, root)
    return page.eval("tinygptLive.lastRun.text")


def sampler_cases() -> list[dict]:
    """Logits, context, settings and a uniform for each case: random rows, and the edge cases
    where a rule decides (ties at the k-th value and at the top-p cut, p = 1, k = 1, greedy ties,
    a repeated context token, banned tokens at -inf, uniforms at 0 and just below 1)."""
    import torch

    g = torch.Generator().manual_seed(0)
    cases = []
    settings = [
        dict(temperature=1.0, topK=None, topP=None, repetitionPenalty=1.0),
        dict(temperature=0.7, topK=5, topP=None, repetitionPenalty=1.0),
        dict(temperature=1.3, topK=None, topP=0.9, repetitionPenalty=1.0),
        dict(temperature=0.8, topK=40, topP=0.95, repetitionPenalty=1.3),
        dict(temperature=1.0, topK=1, topP=None, repetitionPenalty=1.0),
        dict(temperature=1.0, topK=None, topP=1.0, repetitionPenalty=1.0),
        dict(temperature=1.0, topK=None, topP=1e-6, repetitionPenalty=1.0),
        dict(temperature=0.0, topK=None, topP=None, repetitionPenalty=1.2),
    ]
    for i in range(160):
        logits = torch.randn(60, generator=g) * 3
        if i % 4 == 1:
            logits = logits.round()  # many exact ties
        if i % 4 == 2:
            logits[:12] = logits.max()  # twelve tokens tied for first place
        if i % 8 == 3:
            logits[::3] = float("-inf")  # banned tokens
        context = torch.randint(0, 60, (10,), generator=g).tolist() + [7, 7, 7]
        u = (
            [0.0, 1 - 2**-32][i % 2]
            if i % 10 == 9
            else torch.rand(1, generator=g, dtype=torch.float64).item()
        )
        cases.append(
            dict(
                logits=[float(x) for x in logits],
                context=context,
                config=settings[i % len(settings)],
                u=u,
            )
        )
    return cases


def test_live_sampler_picks_pythons_token_for_the_same_uniform(live_page):
    """book/_theme/live/sampler.js against tinygpt.generate.sample_next given the same logits,
    context, settings and uniform number: the same token in every case."""
    import torch

    from tinygpt.generate import SamplingConfig, sample_next

    cases = sampler_cases()
    js = live_page.eval(
        f"{json.dumps(cases).replace('-Infinity', '-1e999').replace('NaN', '0')}.map(c => "
        "tinygptSampler.sampleNext(c.logits, c.context, c.config, c.u))"
    )
    for case, picked in zip(cases, js):
        c = case["config"]
        config = SamplingConfig(c["temperature"], c["topK"], c["topP"], c["repetitionPenalty"])
        want = sample_next(
            torch.tensor([case["logits"]]), torch.tensor([case["context"]]), config,
            uniform=torch.tensor([case["u"]], dtype=torch.float64),
        )  # fmt: skip
        assert picked == int(want), case


def test_live_seeded_sample_is_pythons_with_the_same_uniforms(live_page, live_reference):
    """The playground's sample for a seed equals TextGenerator's on the same weights when Python
    draws with the page's numbers (uniforms(seed), mulberry32)."""
    from tinygpt.generate import SamplingConfig, TextGenerator, uniforms

    model, vocab, _ = live_reference
    prompt = "KING HENRY:\n"
    settings = {"prompt": prompt, "temperature": 0.8, "top-k": 50, "top-p": 0.95,
                "repetition-penalty": 1.1, "new-tokens": 40, "seed": 3}  # fmt: skip
    config = SamplingConfig(temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.1)
    want = TextGenerator(model, vocab)(prompt, 40, config, uniform_stream=uniforms(3))[0]
    assert run_playground(live_page, settings) == want


@pytest.mark.parametrize("docname", ["book/04_multi_head_attention", "book/06_training"])
def test_live_explorer_draws_the_models_attention(docname, browser, html_root, live_reference):
    """The explorer computes every layer's and head's map in the page (equal to PyTorch's
    attention_maps on the same weights) and draws it, only once the reader asks."""
    import torch

    from tinygpt.book.probes import attention_maps
    from tinygpt.tokenizer import gpt2_encoding

    model, vocab, _ = live_reference
    root = ".tinygpt-live[data-widget='explorer']"
    with Page(browser) as page:
        page.goto((html_root / f"{docname}.html").as_uri())
        assert page.eval(live_state(root)) == "idle"
        assert page.eval("document.querySelectorAll(\"script[src*='live/model.']\").length") == 0
        text = "First Citizen:\nBefore we proceed any further, hear me speak."
        type_into(page, f"{root} textarea", text)
        wait_until_done(page, root)
        ids = local_ids(vocab, gpt2_encoding(), text)
        got = page.eval(
            f"tinygptLive.attention({json.dumps(ids)}).then(a => [a.layers, a.heads, a.T, "
            "Array.from({length: a.layers}, (_, l) => Array.from({length: a.heads}, "
            "(_, h) => Array.from(a.weights(l, h)))) ])"
        )
        maps = attention_maps(model, torch.tensor([ids]))
        assert got[:3] == [len(maps), maps[0].size(1), len(ids)]
        for layer, want in enumerate(maps):
            page_maps = torch.tensor(got[3][layer]).view(maps[0].size(1), len(ids), len(ids))
            assert (page_maps - want[0]).abs().max() < 1e-4
        painted = page.eval(
            f'(() => {{ const c = document.querySelector("{root} canvas");'
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " const colours = new Set(); for (let i = 0; i < d.length; i += 4 * 97)"
            " colours.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]); return colours.size; })()"
        )
        assert painted > 20  # a heatmap, not a blank canvas
        assert not page.errors and not book_requests_only(page, html_root)


@pytest.mark.parametrize("width", [LAPTOP, PHONE])
def test_live_box_on_the_landing_page_continues_a_line(width, browser, html_root):
    """The first thing a visitor can touch: type a line, press Continue, the model continues it
    in the page; nothing is fetched from outside the book, no error, no page wider than a phone."""
    root = ".tinygpt-live[data-widget='continue']"
    with Page(browser, width=width, height=844 if width == PHONE else 900) as page:
        page.goto((html_root / "book" / "intro.html").as_uri())
        line = "Friends, Romans, countrymen,"
        type_into(page, f"{root} input", line)
        page.eval(f"document.querySelector({json.dumps(root + ' button')}).click()")
        wait_until_done(page, root)
        shown = page.eval(f'document.querySelector("{root} .tinygpt-live-output").textContent')
        assert shown.startswith(line) and len(shown) > len(line) + 10
        assert page.eval("document.documentElement.scrollWidth") <= width
        assert not page.errors and not book_requests_only(page, html_root)


@pytest.mark.parametrize(
    "docname",
    ["book/intro", "book/04_multi_head_attention", "book/06_training", "book/07_sampling"],
)
def test_live_widgets_say_which_version_the_reader_sees(docname, dumps, html_root):
    """Each live placeholder holds, for a reader without JavaScript (or in Jupyter), a line saying
    that the widget there runs in a Python kernel; the page's script replaces it with the live
    widget, whose first line says it runs in the page."""
    soup = parse((html_root / f"{docname}.html").read_text())
    static = soup.select(".tinygpt-live")
    assert static and all("kernel" in squash(p.get_text()) for p in static)
    live = parse(dumps[docname].dom).select(".tinygpt-live")
    assert len(live) == len(static)
    assert all("liveinthispage:" in squash(p.get_text()).lower() for p in live)
