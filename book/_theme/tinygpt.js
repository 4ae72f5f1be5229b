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

  function whenTypeset() {
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(() => glue(document.body));
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
