// The widgets' renderer (@jupyter-widgets/html-manager) typesets a label's math with MathJax 2's
// MathJax.Hub.Queue, which the book's MathJax 3 does not have: every page with widgets logged
// "Cannot read properties of undefined (reading 'Queue')". This gives it a Hub whose Queue
// typesets the element with MathJax 3, once MathJax has started. MathJax 3 replaces the global
// object its configuration was in when it loads, so the Hub is set again after that.
(function () {
  "use strict";
  function typeset(element) {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise && mj.typesetPromise) {
      mj.startup.promise.then(() => mj.typesetPromise([element])).catch(() => {});
    } else {
      setTimeout(() => typeset(element), 100);
    }
  }
  const hub = {
    Queue: (...jobs) => {
      for (const job of jobs) {
        if (Array.isArray(job) && job[0] === "Typeset" && job[2]) typeset(job[2]);
      }
    },
  };
  function install(tries) {
    const mj = window.MathJax;
    if (mj && !mj.Hub) mj.Hub = hub;
    if (mj && mj.startup) return;  // MathJax 3 has loaded: the Hub is on its global object
    if (!mj && document.readyState === "complete") return;  // a page without math
    if (tries < 600) setTimeout(() => install(tries + 1), 50);
  }
  install(0);
})();

// Keep punctuation next to inline math on the math's line: the browser may break a line between
// MathJax's inline box and a comma, leaving ", batch 64" orphaned at a line's start, or an
// opening bracket alone at a line's end. After MathJax typesets, the formula and the punctuation
// that touches it are wrapped together in a <span class="tinygpt-nowrap">.
(function () {
  "use strict";
  const AFTER = /^[,.;:!?)\]\u2019\u201d]+/;  // punctuation that must not start a line
  const BEFORE = /[(\[\u2018\u201c]+$/;  // brackets that must not end one

  // The element that stands for the formula in the text: MathJax's container, or the
  // <span class="math"> that Sphinx wraps it in when the container is all the span holds.
  function unitOf(math) {
    let unit = math;
    while (unit.parentElement && unit.parentElement.childNodes.length === 1 &&
           unit.parentElement.tagName === "SPAN" &&
           !unit.parentElement.classList.contains("tinygpt-nowrap")) {
      unit = unit.parentElement;
    }
    return unit;
  }

  function glue(root) {
    for (const math of root.querySelectorAll('mjx-container:not([display="true"])')) {
      const unit = unitOf(math);
      if (unit.parentElement && unit.parentElement.classList.contains("tinygpt-nowrap")) continue;
      const next = unit.nextSibling, prev = unit.previousSibling;
      const after = next && next.nodeType === Node.TEXT_NODE ? AFTER.exec(next.data) : null;
      const before = prev && prev.nodeType === Node.TEXT_NODE ? BEFORE.exec(prev.data) : null;
      if (!after && !before) continue;
      const span = document.createElement("span");
      span.className = "tinygpt-nowrap";
      unit.replaceWith(span);
      if (before) {
        span.append(document.createTextNode(before[0]));
        prev.data = prev.data.slice(0, prev.data.length - before[0].length);
      }
      span.append(unit);
      if (after) {
        span.append(document.createTextNode(after[0]));
        next.data = next.data.slice(after[0].length);
      }
    }
  }

  // Inline math wider than its paragraph (on a phone) scrolls in its own box (tinygpt.css):
  // MathJax 3 cannot break a line inside a formula. Tables scroll as a whole and are left out.
  function markWide(root) {
    const found = [];
    for (const math of root.querySelectorAll('mjx-container:not([display="true"])')) {
      if (math.closest("table")) continue;
      const box = math.parentElement && math.parentElement.closest("p, li, dd, dt, div, blockquote");
      if (!box) continue;
      const style = getComputedStyle(box);
      const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      const wide = math.classList.contains("tinygpt-wide") ? math.scrollWidth
        : math.getBoundingClientRect().width;
      found.push([math, room > 0 && wide > room]);
    }
    for (const [math, wide] of found) math.classList.toggle("tinygpt-wide", wide);
  }

  // again when the column changes, or a dropdown opens and shows formulas it hid
  let later = null;
  const remark = () => {
    clearTimeout(later);
    later = setTimeout(() => markWide(document.body), 100);
  };
  window.addEventListener("resize", remark);
  document.addEventListener("click", remark);

  function whenTypeset() {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(() => {
        glue(document.body);
        markWide(document.body);
      });
    } else {
      setTimeout(whenTypeset, 100);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", whenTypeset);
  } else {
    whenTypeset();
  }
})();

// The search page (Sphinx's searchtools.js, which this script runs before). Two fixes:
// 1. A page is listed once. A glossary term is both an index entry (linking to the term) and a
//    word on the Glossary page, so Sphinx listed the Glossary twice; the best-scored hit of each
//    page is kept, and a term's hit is titled "Glossary: term".
// 2. Every result has a snippet of the text around the words searched for. Sphinx looked for
//    the *stemmed* words ("glossari"), often found none, and then showed the page's first
//    characters, which are the theme's download menu (".md .pdf").
(function () {
  "use strict";
  const CHROME = ".bd-header-article, .bd-sidebar-secondary, .prev-next-area, footer, nav, " +
    ".headerlink, script, style, .onlyprint";

  function pageText(htmlString, anchor) {
    const page = new DOMParser().parseFromString(htmlString, "text/html");
    page.querySelectorAll(CHROME).forEach((el) => el.remove());
    const main = page.querySelector('[role="main"]') || page.body;
    const part = (anchor && main.querySelector(anchor)) || main;
    let text = part.textContent;
    if (part.tagName === "DT" && part.nextElementSibling) {  // a glossary term: its definition
      text += " — " + part.nextElementSibling.textContent;
    }
    return text.replace(/\\[()]/g, "").replace(/\s+/g, " ").trim();  // no \( \) of TeX
  }

  function queryWords() {
    const query = new URLSearchParams(window.location.search).get("q") || "";
    return query.toLowerCase().split(/\s+/).filter((w) => w && !w.startsWith("-"));
  }

  function summary(htmlString, keywords, anchor) {
    const text = pageText(htmlString, anchor);
    if (!text) return null;
    const lower = text.toLowerCase();
    // the first place a word as typed occurs; failing that, a stemmed word ("token" for "tokens")
    const first = (words) => words.map((w) => lower.indexOf(String(w).toLowerCase()))
      .filter((i) => i > -1).reduce((a, b) => Math.min(a, b), Infinity);
    let at = first(queryWords());
    if (at === Infinity) at = first([...keywords]);
    if (at === Infinity) at = -1;
    const start = Math.max(at - 80, 0);
    const p = document.createElement("p");
    p.classList.add("context");
    p.textContent = (start > 0 ? "… " : "") + text.substr(start, 240).trim() +
      (start + 240 < text.length ? " …" : "");
    return p;
  }

  function termName(docIndex, anchor) {
    const id = anchor.slice(1);
    for (const [entry, found] of Object.entries(Search._index.indexentries || {})) {
      if (found.some(([file, entryId]) => file === docIndex && entryId === id)) return entry;
    }
    return id.replace(/^term-/, "");
  }

  function onePerPage(results) {
    // results are shown from the end of the array: the last of a page's hits is its best
    const docIndex = Object.fromEntries(Search._index.docnames.map((d, i) => [d, i]));
    const kept = new Map();
    for (const result of results) {
      const best = kept.get(result[0]);
      if (!best || result[4] >= best[4]) kept.set(result[0], result);
    }
    return results.filter((r) => kept.get(r[0]) === r).map((r) => {
      if (!r[2].startsWith("#term-")) return r;
      return [r[0], `${r[1]}: ${termName(docIndex[r[0]], r[2])}`, ...r.slice(2)];
    });
  }

  function patch() {
    // searchtools.js declares Search with const: a global name, not a property of window
    if (typeof Search === "undefined" || !Search._performSearch || Search.tinygptPatched) return;
    const perform = Search._performSearch;
    Search._performSearch = (...args) => onePerPage(perform(...args));
    Search.makeSearchSummary = summary;
    Search.tinygptPatched = true;
  }
  patch();
  document.addEventListener("DOMContentLoaded", patch);
})();

// Figures a phone can read. A figure is drawn at the size it is meant to be seen (the book's
// matplotlib style: 100 dpi, labels of 9 pt or more, so 12.5 px), and a narrower column shrinks
// it: on a 390 px phone a 900 px figure's labels come out at 5 px. A figure shown smaller than
// drawn opens, on a tap (or click, or Enter), full size in an overlay that scrolls both ways;
// a tap anywhere, the close button or Escape closes it. On a phone a line under each such
// figure says so. Widgets' images (the attention explorer) open the same way.
(function () {
  "use strict";
  const FIGURES = "article.bd-article .cell_output img";
  let overlay = null, opener = null;

  function isFigure(img) {
    return img instanceof HTMLImageElement && img.matches(FIGURES);
  }

  function shrunk(img) {
    const width = img.getBoundingClientRect().width;
    return img.naturalWidth > 0 && width > 0 && width < img.naturalWidth - 1;
  }

  function mark(img) {
    const small = shrunk(img);
    img.classList.toggle("tinygpt-shrunk", small);
    if (img.tinygptHint) img.tinygptHint.classList.toggle("tinygpt-for-shrunk", small);
    if (small) {
      img.setAttribute("tabindex", "0");
      img.setAttribute("role", "button");
      img.setAttribute("aria-label", "Enlarge figure" + (img.alt ? ": " + img.alt : ""));
    } else if (img.classList.contains("tinygpt-zoomable")) {
      img.removeAttribute("tabindex");
      img.removeAttribute("role");
      img.removeAttribute("aria-label");
    }
    img.classList.add("tinygpt-zoomable");
  }

  // The hint goes under the figure; for a widget's image, under the whole widget (a widget lays
  // out its own children).
  function addHint(img) {
    const hint = document.createElement("span");
    hint.className = "tinygpt-enlarge-hint";
    hint.setAttribute("aria-hidden", "true");  // the figure itself is the button
    hint.textContent = "Tap the figure to enlarge it";
    hint.addEventListener("click", () => open(img));
    const area = img.closest(".widget-subarea");
    if (area) area.append(hint);
    else img.after(hint);
    img.tinygptHint = hint;
  }

  function close() {
    if (!overlay) return;
    overlay.remove();
    overlay = null;
    document.documentElement.classList.remove("tinygpt-lightbox-open");
    document.removeEventListener("keydown", onKey, true);
    if (opener && document.contains(opener)) opener.focus({preventScroll: true});
    opener = null;
  }

  function onKey(event) {
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    } else if (event.key === "Tab") {  // the close button is the dialog's only control
      event.preventDefault();
      overlay.querySelector("button").focus();
    }
  }

  function open(img) {
    if (overlay || !img.naturalWidth) return;
    opener = img;
    overlay = document.createElement("div");
    overlay.className = "tinygpt-lightbox";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", "Figure at full size");
    const big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.alt || "";
    big.style.width = img.naturalWidth + "px";  // as drawn: one pixel of the figure per CSS px
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tinygpt-lightbox-close";
    button.setAttribute("aria-label", "Close the full-size figure");
    button.textContent = "\u00d7";
    overlay.append(big, button);
    // A tap closes it; panning the figure is a scroll, not a click, so it does not.
    overlay.addEventListener("click", close);
    document.documentElement.classList.add("tinygpt-lightbox-open");
    document.body.append(overlay);
    document.addEventListener("keydown", onKey, true);
    button.focus({preventScroll: true});
  }

  document.addEventListener("click", (event) => {
    const img = event.target;
    if (isFigure(img) && !overlay) {
      mark(img);
      if (img.classList.contains("tinygpt-shrunk")) {
        event.preventDefault();
        open(img);
      }
    }
  });
  document.addEventListener("keydown", (event) => {
    const img = event.target;
    if ((event.key === "Enter" || event.key === " ") && isFigure(img) &&
        img.classList.contains("tinygpt-shrunk")) {
      event.preventDefault();
      open(img);
    }
  });

  const resized = typeof ResizeObserver === "undefined" ? null :
    new ResizeObserver((entries) => entries.forEach((e) => mark(e.target)));

  function watch(img) {
    if (img.dataset.tinygptWatched) return;
    img.dataset.tinygptWatched = "1";
    addHint(img);
    if (img.complete) mark(img);
    img.addEventListener("load", () => mark(img));
    if (resized) resized.observe(img);
  }

  function start() {
    document.querySelectorAll(FIGURES).forEach(watch);
    // images a widget draws later (and redraws when a control moves)
    new MutationObserver(() => document.querySelectorAll(FIGURES).forEach(watch))
      .observe(document.querySelector("article.bd-article") || document.body,
               {childList: true, subtree: true});
    if (!resized) window.addEventListener("resize", () => document.querySelectorAll(FIGURES).forEach(mark));
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
