// Keep punctuation that follows inline math on the math's line: the browser may break a line
// between MathJax's inline box and a comma, leaving ", batch 64" orphaned at a line's start.
// After MathJax typesets, the math and the punctuation that follows it are wrapped together in
// a <span class="tinygpt-nowrap">.
(function () {
  "use strict";
  const PUNCTUATION = /^[,.;:!?)\u2019\u201d]+/;

  function glue(root) {
    for (const math of root.querySelectorAll('mjx-container:not([display="true"])')) {
      const next = math.nextSibling;
      if (!next || next.nodeType !== Node.TEXT_NODE) continue;
      const match = PUNCTUATION.exec(next.data);
      if (!match || math.parentElement.classList.contains("tinygpt-nowrap")) continue;
      const span = document.createElement("span");
      span.className = "tinygpt-nowrap";
      math.replaceWith(span);
      span.append(math, document.createTextNode(match[0]));
      next.data = next.data.slice(match[0].length);
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
