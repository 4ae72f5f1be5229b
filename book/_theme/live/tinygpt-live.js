/* The live model (issue 30): the book's trained GPT, run in the reader's browser.
 *
 * A classic script loaded on every page. It does nothing heavy until the reader interacts:
 * tinygptLive.load() inserts <script> tags (not fetch: the book must work from file://) for
 * manifest.js, vendor.js (ONNX Runtime Web + js-tiktoken) and the model's and the runtime's
 * base64 chunks, all found next to this script (_static/live/), then starts an ONNX Runtime
 * session. Generation mirrors tinygpt.generate (TextGenerator.stream, generate_stream and
 * next_token_logits); the sampling itself is sampler.js (window.tinygptSampler).
 *
 * Widgets replace placeholders <div class="tinygpt-live" data-widget="playground|explorer|
 * continue"> and hide the ipywidgets output that follows them (the Jupyter version).
 */
(function () {
  "use strict";

  var here = document.currentScript && document.currentScript.src;
  var BASE = here ? here.replace(/[^/]*([?#].*)?$/, "") : "_static/live/";
  var GPT2_EOT = 50256;

  // ------------------------------------------------------------------ loading

  /** Insert <script src=BASE+name>; attempt tags it, so that a chunk can say which load made it. */
  function insertScript(name, attempt) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = BASE + name;
      s.async = true;
      if (attempt != null) s.setAttribute("data-tinygpt-attempt", String(attempt));
      s.onload = function () {
        resolve();
      };
      s.onerror = function () {
        if (s.parentNode) s.parentNode.removeChild(s);
        reject(new Error("could not load " + BASE + name));
      };
      document.head.appendChild(s);
    });
  }

  /** Insert the scripts a few at a time (limit in flight), so that progress shows on a slow link. */
  function insertAll(names, attempt, limit, onEach) {
    return new Promise(function (resolve, reject) {
      var next = 0;
      var active = 0;
      var done = 0;
      var failed = false;
      if (!names.length) {
        resolve();
        return;
      }
      function pump() {
        while (!failed && active < limit && next < names.length) {
          var name = names[next++];
          active += 1;
          insertScript(name, attempt).then(
            (function (n) {
              return function () {
                active -= 1;
                done += 1;
                if (onEach) onEach(n);
                if (done === names.length) resolve();
                else pump();
              };
            })(name),
            function (err) {
              if (!failed) {
                failed = true;
                reject(err);
              }
            }
          );
        }
      }
      pump();
    });
  }

  function base64Bytes(b64) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(b64);
    var s = atob(b64);
    var a = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i);
    return a;
  }

  function join(parts) {
    var n = 0;
    for (var i = 0; i < parts.length; i++) n += parts[i].length;
    var out = new Uint8Array(n);
    var o = 0;
    for (var j = 0; j < parts.length; j++) {
      out.set(parts[j], o);
      o += parts[j].length;
    }
    return out;
  }

  var state = {
    loading: null, // the memoised promise of load()
    manifestPromise: null,
    manifest: null,
    session: null,
    ort: null,
    encoder: null,
    localOf: null, // Map GPT-2 id -> local id (null: the model uses all of GPT-2)
    queue: Promise.resolve(), // session.run calls one at a time
  };

  /** manifest.js alone (small): the widgets' first lines quote its numbers. */
  // GPT-2's pre-tokenizer pattern says \s, which tiktoken (Rust) reads as Unicode's White_Space
  // but JavaScript reads as its own set: it adds U+FEFF and lacks U+0085. Spelled out as
  // White_Space, the page cuts text where tiktoken does (tests/test_browser.py checks both).
  var WHITE_SPACE = "\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";

  function withUnicodeSpaces(ranks) {
    var out = "";
    var inClass = false;
    var pat = ranks.pat_str;
    for (var i = 0; i < pat.length; i++) {
      var c = pat[i];
      if (c === "\\" && (pat[i + 1] === "s" || pat[i + 1] === "S")) {
        var negated = pat[i + 1] === "S";
        if (inClass && negated) throw new Error("\\S inside a character class");
        out += inClass ? WHITE_SPACE : (negated ? "[^" : "[") + WHITE_SPACE + "]";
        i += 1;
      } else if (c === "\\") {
        out += c + pat[i + 1];
        i += 1;
      } else {
        if (c === "[") inClass = true;
        else if (c === "]") inClass = false;
        out += c;
      }
    }
    return Object.assign({}, ranks, { pat_str: out });
  }

  function loadManifest() {
    if (window.tinygptLiveManifest) {
      state.manifest = window.tinygptLiveManifest;
      return Promise.resolve(state.manifest);
    }
    if (!state.manifestPromise) {
      state.manifestPromise = insertScript("manifest.js").then(
        function () {
          if (!window.tinygptLiveManifest) throw new Error("manifest.js did not define the model");
          state.manifest = window.tinygptLiveManifest;
          return state.manifest;
        },
        function (err) {
          state.manifestPromise = null;
          throw err;
        }
      );
    }
    return state.manifestPromise;
  }

  /**
   * Load everything and start the session, once per page. onProgress({loaded, total,
   * bytesLoaded, bytesTotal, phase}) is called as chunks arrive. Resolves to the manifest.
   */
  function load(onProgress) {
    var listeners = load.listeners || (load.listeners = []);
    if (onProgress) listeners.push(onProgress);
    if (state.loading) {
      if (onProgress && load.last) onProgress(load.last);
      return state.loading;
    }
    var failed = false;
    function report(p) {
      if (failed) return; // chunks still arriving after a failure say nothing
      load.last = p;
      for (var i = 0; i < listeners.length; i++) {
        try {
          listeners[i](p);
        } catch (e) {
          /* a widget's display must not stop the loading */
        }
      }
    }
    state.loading = startLoading(report).catch(function (err) {
      failed = true;
      state.loading = null; // a later attempt may succeed (e.g. after going back online)
      load.last = null;
      load.listeners = [];
      throw err;
    });
    return state.loading;
  }

  var attempts = 0;

  function startLoading(report) {
    if (typeof WebAssembly !== "object") {
      return Promise.reject(new Error("this browser cannot run WebAssembly, which the model needs"));
    }
    attempts += 1;
    var attempt = attempts; // this load's token: chunks of an earlier, failed load do not count
    var t0 = performance.now();
    var parts = { model: [], wasm: [] };
    var progress = { loaded: 0, total: 1, bytesLoaded: 0, bytesTotal: 0, phase: "download" };
    function bump(bytes) {
      progress.loaded = Math.min(progress.total, progress.loaded + 1);
      progress.bytesLoaded = Math.min(progress.bytesTotal || Infinity, progress.bytesLoaded + bytes);
      report(Object.assign({}, progress));
    }
    window.tinygptChunk = function (name, k, n, b64) {
      var from = document.currentScript && document.currentScript.getAttribute("data-tinygpt-attempt");
      if (from && from !== String(attempt)) return; // a script of an earlier load, arriving late
      var list = parts[name];
      var m = state.manifest;
      if (!list || !m || !m[name] || !(k >= 0 && k < m[name].chunks)) return;
      if (list[k]) return; // this slot is filled already: count each chunk once
      var bytes = base64Bytes(b64);
      list[k] = bytes;
      bump(bytes.length);
    };
    return loadManifest()
      .then(function (m) {
        progress.total = m.model.chunks + m.wasm.chunks + 1; // + vendor.js
        progress.bytesTotal = m.model.bytes + m.wasm.bytes;
        report(Object.assign({}, progress));
        var jobs = [];
        if (!window.tinygptSampler) jobs.push(insertScript("sampler.js", attempt));
        var names = [];
        if (window.tinygptVendor && window.tinygptVendor.ort) bump(0); // from an earlier attempt
        else names.push("vendor.js");
        for (var i = 0; i < m.wasm.chunks; i++) names.push("wasm." + i + ".js");
        for (var j = 0; j < m.model.chunks; j++) names.push("model." + j + ".js");
        jobs.push(
          insertAll(names, attempt, 3, function (name) {
            if (name === "vendor.js") bump(0);
          })
        );
        return Promise.all(jobs).then(function () {
          return m;
        });
      })
      .then(function (m) {
        var vendor = window.tinygptVendor;
        if (!vendor || !vendor.ort) throw new Error("vendor.js did not define ONNX Runtime");
        for (var name in { model: 1, wasm: 1 }) {
          var p = parts[name];
          if (p.length !== m[name].chunks) throw new Error("a " + name + " chunk is missing");
          for (var i = 0; i < p.length; i++)
            if (!p[i]) throw new Error(name + " chunk " + i + " is missing");
        }
        var ort = vendor.ort;
        ort.env.wasm.numThreads = 1;
        ort.env.wasm.wasmBinary = join(parts.wasm);
        var model = join(parts.model);
        parts.model = parts.wasm = null;
        state.ort = ort;
        state.encoder = new vendor.Tiktoken(withUnicodeSpaces(vendor.gpt2));
        var kept = m.vocab && m.vocab.kept;
        if (kept) {
          state.localOf = new Map();
          for (var k = 0; k < kept.length; k++) state.localOf.set(kept[k], k);
        }
        report(Object.assign({}, progress, { phase: "start" }));
        return ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
      })
      .then(function (session) {
        state.session = session;
        // Warm up: one prefill and one cached step. The runtime's first calls compile and
        // size its buffers; done here, while the reader sees "Starting the model", the first
        // generation runs near full speed (measured: 0.36 s instead of 0.7 s for 60 tokens).
        return forward([0]).then(function (out) {
          return forward([0], out.keys, out.values);
        });
      })
      .then(function () {
        api.loadSeconds = (performance.now() - t0) / 1000;
        report(Object.assign({}, progress, { phase: "ready" }));
        return state.manifest;
      });
  }

  // ------------------------------------------------------------------ tokens

  function needLoaded() {
    if (!state.session) throw new Error("call tinygptLive.load() first");
  }

  /** GPT-2 ids of text; special tokens are plain text (tiktoken's encode_ordinary). */
  function encode(text) {
    needLoaded();
    return state.encoder.encode(text, [], []);
  }

  /** GPT-2 ids to the model's ids; a token outside its vocabulary becomes the unknown bucket. */
  function toLocal(ids) {
    if (!state.localOf) return ids.slice();
    var unk = state.manifest.vocab.unk;
    return ids.map(function (t) {
      var l = state.localOf.get(t);
      return l === undefined ? unk : l;
    });
  }

  /** The model's ids back to GPT-2 ids; the unknown bucket has no single GPT-2 id. */
  function toGlobal(ids) {
    var v = state.manifest.vocab;
    if (!v || !v.kept) return ids.slice();
    return ids.map(function (l) {
      if (l === v.unk) throw new Error("the unknown bucket does not map to a single GPT-2 token");
      return v.kept[l];
    });
  }

  function decode(localIds) {
    needLoaded();
    return state.encoder.decode(toGlobal(localIds));
  }

  var strictUtf8 = null;
  try {
    strictUtf8 = new TextDecoder("utf-8", { fatal: true });
  } catch (e) {
    strictUtf8 = null;
  }

  /** A token's text; a token that is not valid UTF-8 alone (a piece of a character) by its bytes,
   * printable ASCII as itself and the rest in hex, e.g. ⟨F0 9F⟩. */
  function tokenText(t) {
    var bytes = state.encoder.textMap && state.encoder.textMap.get(t);
    if (!bytes || !strictUtf8) return state.encoder.decode([t]);
    try {
      return strictUtf8.decode(bytes);
    } catch (e) {
      var out = "";
      var hex = [];
      for (var i = 0; i <= bytes.length; i++) {
        var b = bytes[i];
        if (i < bytes.length && (b < 0x20 || b > 0x7e) && b !== 0x0a) {
          hex.push((b < 16 ? "0" : "") + b.toString(16).toUpperCase());
          continue;
        }
        if (hex.length) out += "\u27e8" + hex.join("\u2009") + "\u27e9"; // a thin space: not ␣
        hex = [];
        if (i < bytes.length) out += String.fromCharCode(b);
      }
      return out;
    }
  }

  /** Readable labels like tinygpt.book.token_labels: space -> ␣, newline -> ↵. */
  function tokenLabels(gpt2Ids) {
    return gpt2Ids.map(function (t) {
      return tokenText(t).replace(/ /g, "\u2423").replace(/\n/g, "\u21b5");
    });
  }

  // ------------------------------------------------------------------ the model

  function emptyPast() {
    var c = state.manifest.config;
    var dims = [c.n_layer, 1, c.n_kv_head, 0, c.head_size];
    return new state.ort.Tensor("float32", new Float32Array(0), dims);
  }

  /** One forward pass (serialised: ONNX Runtime runs one call per session at a time). */
  function forward(localIds, pastKeys, pastValues) {
    var run = state.queue.then(function () {
      var ort = state.ort;
      var idx = new ort.Tensor(
        "int64",
        BigInt64Array.from(localIds, function (t) {
          return BigInt(t);
        }),
        [1, localIds.length]
      );
      return state.session.run({
        idx: idx,
        past_keys: pastKeys || emptyPast(),
        past_values: pastValues || emptyPast(),
      });
    });
    state.queue = run.catch(function () {});
    return run;
  }

  function lastRow(logitsTensor) {
    var V = logitsTensor.dims[2];
    var T = logitsTensor.dims[1];
    return logitsTensor.data.slice((T - 1) * V, T * V);
  }

  /** Logits (Float32Array of V) for the token after localIds (one prefill, cropped to the window). */
  function logits(localIds) {
    needLoaded();
    var W = state.manifest.config.block_size;
    return forward(localIds.slice(-W)).then(function (out) {
      return lastRow(out.logits);
    });
  }

  /** Every head's attention weights for localIds (at most block_size of them), from one prefill. */
  function attention(localIds) {
    needLoaded();
    var W = state.manifest.config.block_size;
    var ids = localIds.slice(0, W);
    return forward(ids).then(function (out) {
      var a = out.attention;
      var L = a.dims[0];
      var H = a.dims[2];
      var T = a.dims[3];
      var S = a.dims[4];
      var data = a.data;
      return {
        layers: L,
        heads: H,
        T: T,
        weights: function (layer, head) {
          var start = (layer * H + head) * T * S;
          return data.slice(start, start + T * S);
        },
      };
    });
  }

  /** A pause that lets the page draw (a message, not setTimeout, which waits at least 4 ms). */
  var channel = typeof MessageChannel === "function" ? new MessageChannel() : null;
  var waiting = [];
  if (channel) {
    channel.port1.onmessage = function () {
      var w = waiting.shift();
      if (w) w();
    };
  }
  function breathe() {
    return new Promise(function (resolve) {
      if (channel) {
        waiting.push(resolve);
        channel.port2.postMessage(0);
      } else setTimeout(resolve, 0);
    });
  }

  function normaliseConfig(config) {
    config = config || {};
    function pick(a, b, dflt) {
      if (config[a] !== undefined) return config[a];
      if (config[b] !== undefined) return config[b];
      return dflt;
    }
    var c = {
      temperature: Number(pick("temperature", "temperature", 1)),
      topK: pick("topK", "top_k", null),
      topP: pick("topP", "top_p", null),
      repetitionPenalty: Number(pick("repetitionPenalty", "repetition_penalty", 1)),
    };
    if (!(c.temperature === 0 || (c.temperature >= 1e-4 && c.temperature <= 1e4)))
      throw new Error("temperature must be >= 0 (0 = greedy; else between 1e-4 and 1e4)");
    if (c.topK !== null && !(c.topK >= 1)) throw new Error("top_k must be >= 1");
    if (c.topP !== null && !(c.topP > 0 && c.topP <= 1)) throw new Error("top_p must be in (0, 1]");
    if (!(c.repetitionPenalty > 0 && isFinite(c.repetitionPenalty)))
      throw new Error("repetition_penalty must be a positive finite number");
    if (c.topK !== null) c.topK = Math.floor(Number(c.topK));
    if (c.topP !== null) c.topP = Number(c.topP);
    return c;
  }

  /**
   * Continue prompt by up to maxNewTokens tokens, like TextGenerator.stream: onText(piece) gets
   * the new text as it is sampled. config = {temperature, topK, topP, repetitionPenalty} (or
   * the Python names); seed: an integer 0..2**32-1 (null: a random one). options.signal: an
   * AbortSignal (or {aborted}) that stops after the current token.
   * Resolves to {ids, text, continuation, tokens, seconds, seed}.
   */
  async function generate(prompt, maxNewTokens, config, seed, onText, options) {
    needLoaded();
    var S = window.tinygptSampler;
    var cfg = normaliseConfig(config);
    var signal = options && options.signal;
    prompt = prompt == null ? "" : String(prompt);
    maxNewTokens = Math.max(0, Math.floor(Number(maxNewTokens)));
    if (seed == null || seed === "") seed = Math.floor(Math.random() * 4294967296);
    seed = Number(seed) >>> 0;
    var m = state.manifest;
    var W = m.config.block_size;
    var unk = m.vocab && m.vocab.kept ? m.vocab.unk : null;
    var stop = m.vocab && m.vocab.kept ? m.vocab.eot : GPT2_EOT;
    if (stop === undefined) stop = null;
    var ids = prompt ? toLocal(encode(prompt)) : toLocal([GPT2_EOT]);
    var promptTokens = ids.length;
    var rng = S.mulberry32(seed);
    var keys = null;
    var values = null;
    var cacheLen = 0;
    var pending = [];
    var continuation = "";
    var tokens = 0;
    var onToken = options && options.onToken;
    var t0 = performance.now();
    var promptSeconds = 0;
    for (var step = 0; step < maxNewTokens; step++) {
      if (signal && signal.aborted) break;
      var out;
      if (cacheLen === 0 || cacheLen >= W || ids.length !== cacheLen + 1) {
        var win = ids.slice(-W);
        var tf = performance.now();
        out = await forward(win, null, null); // (re)fill: the prompt, or a window that moved
        if (step === 0) promptSeconds = (performance.now() - tf) / 1000;
        cacheLen = win.length;
      } else {
        out = await forward(ids.slice(-1), keys, values); // one new token against the past
        cacheLen += 1;
      }
      keys = out.keys;
      values = out.values;
      var row = lastRow(out.logits);
      if (unk !== null) row[unk] = -Infinity; // the unknown bucket is never chosen
      var context = ids.slice(-W);
      var u = cfg.temperature > 0 ? rng() : 0;
      var token = S.sampleNext(row, context, cfg, u);
      ids.push(token);
      tokens += 1;
      pending.push(token);
      var text = decode(pending);
      if (text.charAt(text.length - 1) !== "\ufffd") {
        pending = [];
        continuation += text;
        if (onText) onText(text);
      }
      if (onToken) {
        try {
          onToken(tokens, maxNewTokens);
        } catch (e) {
          /* a widget's display must not stop the generation */
        }
      }
      if (stop !== null && token === stop) break;
      await breathe();
    }
    var result = {
      ids: ids,
      text: prompt + continuation,
      continuation: continuation,
      tokens: tokens,
      seconds: (performance.now() - t0) / 1000,
      promptSeconds: promptSeconds,
      promptTokens: Math.min(promptTokens, W),
      seed: seed,
    };
    api.lastRun = result;
    return result;
  }

  // ------------------------------------------------------------------ widgets

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs)
      for (var k in attrs) {
        if (attrs[k] === null || attrs[k] === undefined) continue;
        if (k === "text") e.textContent = attrs[k];
        else if (k === "className") e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      }
    if (children)
      for (var i = 0; i < children.length; i++)
        if (children[i] != null)
          e.appendChild(typeof children[i] === "string" ? document.createTextNode(children[i]) : children[i]);
    return e;
  }

  var uid = 0;
  function nextId(prefix) {
    uid += 1;
    return "tinygpt-live-" + prefix + "-" + uid;
  }

  function fmtMB(bytes) {
    return (bytes / 1e6).toFixed(1);
  }

  /** Python's repr of a float (enough for the controls' steps): 1 -> 1.0, 0.85 -> 0.85. */
  function pyFloat(x) {
    x = Number(x);
    if (Number.isInteger(x)) return x.toFixed(1);
    return String(Number(x.toFixed(6)));
  }

  /** A Python string literal for s (JSON's escapes are Python's too). */
  function pyString(s) {
    return JSON.stringify(s);
  }

  function errText(err) {
    return err && err.message ? err.message : String(err);
  }

  /** The ipywidgets output after the placeholder: hidden, since this widget replaces it. */
  function hideJupyterWidget(root) {
    var mine = root.closest(".cell") || root;
    var scope = root.closest("section") || document.body;
    var cells = scope.querySelectorAll(".cell");
    // The next placeholder after this one: a widget cell beyond it belongs to that one.
    var others = scope.querySelectorAll(".tinygpt-live[data-widget]");
    var fence = null;
    for (var j = 0; j < others.length; j++) {
      if (others[j] === root || mine.contains(others[j])) continue;
      if (mine.compareDocumentPosition(others[j]) & Node.DOCUMENT_POSITION_FOLLOWING) {
        fence = others[j];
        break;
      }
    }
    for (var i = 0; i < cells.length; i++) {
      var c = cells[i];
      if (c === mine || c.contains(root)) continue;
      if (!(mine.compareDocumentPosition(c) & Node.DOCUMENT_POSITION_FOLLOWING)) continue;
      if (fence && (c.contains(fence) || !(c.compareDocumentPosition(fence) & Node.DOCUMENT_POSITION_FOLLOWING))) break;
      var widget = c.querySelector(
        '.jupyter-widgets, script[type="application/vnd.jupyter.widget-view+json"]'
      );
      if (!widget) continue;
      var output = c.querySelector(".cell_output") || c;
      output.classList.add("tinygpt-live-replaced");
      output.hidden = true;
      return true;
    }
    return false;
  }

  /**
   * The frame every widget shares: intro line, body, progress, status, output. The status line
   * shows everything; a hidden live region announces only what a listener needs (loading in
   * steps of 25 %, the end of a run, errors).
   */
  function Frame(root, kind) {
    this.root = root;
    this.kind = kind;
    this.busy = false; // set at once in a click handler: a second click in the same turn waits
    this.running = null;
    root.textContent = "";
    root.classList.add("tinygpt-live-" + kind);
    this.intro = el("p", { className: "tinygpt-live-intro" });
    this.body = el("div", { className: "tinygpt-live-body" });
    this.progress = el("progress", {
      className: "tinygpt-live-progress",
      max: "1",
      "aria-label": "Loading the model",
    });
    this.progress.hidden = true;
    this.status = el("p", { className: "tinygpt-live-status" });
    this.announcer = el("span", { className: "tinygpt-live-sr", role: "status", "aria-live": "polite" });
    this.output = el("div", { className: "tinygpt-live-output", "aria-live": "polite" });
    root.appendChild(this.intro);
    root.appendChild(this.body);
    root.appendChild(this.progress);
    root.appendChild(this.status);
    root.appendChild(this.announcer);
    root.appendChild(this.output);
    this.setState("idle");
  }
  Frame.prototype.setState = function (s) {
    this.root.setAttribute("data-state", s);
  };
  /** Show text in the status line; announce it too unless quiet. */
  Frame.prototype.say = function (text, quiet) {
    this.status.textContent = text;
    if (!quiet) this.announcer.textContent = text;
  };
  Frame.prototype.setIntro = function (hasJupyter) {
    var self = this;
    function write(m) {
      var label = (m && m.label) || "the book\u2019s final model";
      var params = m && m.config && m.config.parameters;
      self.intro.textContent =
        "Live in this page: " +
        label +
        (params ? ", " + (params / 1e6).toFixed(1) + "\u00a0M parameters," : "") +
        " runs in your browser; nothing leaves the page." +
        (hasJupyter ? " In Jupyter, this cell runs the widget in your Python kernel instead." : "");
    }
    write(null);
    loadManifest().then(write, function () {});
  };
  /** The button while the model loads: "Loading…", aria-disabled. */
  Frame.prototype.buttonLoading = function (button, on) {
    if (on) {
      button.textContent = "Loading\u2026";
      button.setAttribute("aria-disabled", "true");
      button.classList.add("tinygpt-live-waiting");
    } else {
      button.textContent = button.getAttribute("data-label");
      button.removeAttribute("aria-disabled");
      button.classList.remove("tinygpt-live-waiting");
    }
  };
  /** Load the model, showing progress; resolves true when ready, false on an error (shown). */
  Frame.prototype.ensureLoaded = function (button) {
    var self = this;
    if (state.session) return Promise.resolve(true);
    this.clearError();
    this.setState("loading");
    this.progress.hidden = false;
    this.progress.setAttribute("aria-label", "Loading the model");
    this.progress.removeAttribute("value"); // indeterminate until the first part arrives
    if (button) this.buttonLoading(button, true);
    this.say("Loading the model\u2026");
    var quarter = 0;
    return load(function (p) {
      if (p.phase === "start") {
        self.progress.removeAttribute("value");
        self.say("Starting the model\u2026", true);
      } else if (p.phase === "download") {
        var share = p.total ? Math.min(1, p.loaded / p.total) : 0;
        if (p.loaded > 0) self.progress.value = share;
        var text =
          "Loading the model: part " + Math.min(p.loaded, p.total) + " of " + p.total +
          " (" + fmtMB(p.bytesLoaded) + " of " + fmtMB(p.bytesTotal) + " MB)";
        var q = Math.floor(share * 4);
        self.say(text, q <= quarter);
        if (q > quarter) {
          quarter = q;
          self.announcer.textContent = "Loading the model: " + q * 25 + " %";
        }
      }
    }).then(
      function () {
        self.progress.hidden = true;
        if (button) self.buttonLoading(button, false);
        self.say("Model ready (loaded in " + api.loadSeconds.toFixed(1) + " s).", true);
        return true;
      },
      function (err) {
        if (button) self.buttonLoading(button, false);
        if (window.console && console.warn) console.warn("tinygpt live model: " + errText(err));
        self.fail(
          "Could not load the model. Check your connection and press " +
            (button ? button.getAttribute("data-label") : "the button") +
            " to try again."
        );
        return false;
      }
    );
  };
  Frame.prototype.fail = function (message) {
    this.progress.hidden = true;
    this.setState("error");
    this.say(message);
    this.status.classList.add("tinygpt-live-error");
  };
  Frame.prototype.clearError = function () {
    this.status.classList.remove("tinygpt-live-error");
  };

  /** A labelled control in a wrapping row; range inputs show their value. */
  function field(label, input, wide) {
    var id = nextId("f");
    input.id = id;
    var lab = el("label", { for: id, text: label });
    var box = el("div", { className: "tinygpt-live-field" + (wide ? " tinygpt-live-wide" : "") }, [lab, input]);
    if (input.type === "range") {
      box.classList.add("tinygpt-live-range");
      var shown = el("output", { for: id, className: "tinygpt-live-value" });
      var update = function () {
        var step = input.getAttribute("step") || "1";
        var digits = step.indexOf(".") < 0 ? 0 : step.length - step.indexOf(".") - 1;
        var text =
          input.hasAttribute("data-off") && Number(input.getAttribute("data-off")) === Number(input.value)
            ? "off"
            : Number(input.value).toFixed(digits);
        shown.textContent = text;
        input.setAttribute("aria-valuetext", text);
      };
      input.addEventListener("input", update);
      input.addEventListener("change", update);
      input._tinygptUpdate = update;
      update();
      box.appendChild(shown);
    }
    return box;
  }

  function range(name, min, max, step, value, off) {
    var r = el("input", { type: "range", name: name, min: min, max: max, step: step });
    r.value = String(value);
    if (off !== undefined) r.setAttribute("data-off", String(off));
    return r;
  }

  function makeButton(name, label) {
    return el("button", {
      type: "button",
      name: name,
      className: "tinygpt-live-button",
      "data-label": label,
      text: label,
    });
  }

  function attr(root, name, dflt) {
    var v = root.getAttribute("data-" + name);
    return v === null || v === "" ? dflt : v;
  }

  function numAttr(root, name, dflt) {
    var v = Number(attr(root, name, dflt));
    return isFinite(v) ? v : dflt;
  }

  /** The seed as Python takes it: an integer 0..2**32-1 (clamped; not a number: 0). */
  function clampSeed(x) {
    var s = Math.floor(Number(x));
    if (!isFinite(s)) s = Number(x) === Infinity ? 4294967295 : 0;
    return Math.min(4294967295, Math.max(0, s));
  }

  function speedText(r) {
    var rate = r.seconds > 0 ? r.tokens / r.seconds : 0;
    return (
      r.tokens + " token" + (r.tokens === 1 ? "" : "s") + " in " + r.seconds.toFixed(2) + " s (" +
      r.promptSeconds.toFixed(2) + " s of it reading the " + r.promptTokens + "-token prompt): " +
      Math.round(rate) + " tokens/s in this browser."
    );
  }

  /** What an empty prompt starts from, in words. */
  function emptyPromptText() {
    var v = state.manifest && state.manifest.vocab;
    if (v && v.kept && v.eot == null)
      return "Empty prompt: the model starts from its unknown token, which stands for <|endoftext|> here (its vocabulary lacks it).";
    return "Empty prompt: the model starts from <|endoftext|>.";
  }

  /**
   * Runs a generation into a frame's output: bold prompt, streamed continuation; the button
   * turns into Stop (secondary look) and the progress bar counts the tokens.
   * done(result, stopped) returns the status line for the end.
   */
  function runGeneration(frame, prompt, n, config, seed, button, done) {
    var controller = { aborted: false };
    frame.running = controller;
    frame.clearError();
    frame.setState("running");
    button.textContent = "Stop";
    button.classList.add("tinygpt-live-stop");
    frame.output.textContent = "";
    frame.output.setAttribute("aria-busy", "true");
    var p = el("b", { text: prompt });
    var cont = el("span", { className: "tinygpt-live-continuation" });
    frame.output.appendChild(p);
    frame.output.appendChild(cont);
    frame.progress.hidden = false;
    frame.progress.setAttribute("aria-label", "Generating");
    frame.progress.value = 0;
    var lead = prompt ? "" : emptyPromptText() + " ";
    frame.say(lead + "Generating: 0 / " + n + " tokens");
    var job = generate(
      prompt,
      n,
      config,
      seed,
      function (piece) {
        cont.appendChild(document.createTextNode(piece));
      },
      {
        signal: controller,
        onToken: function (k, N) {
          frame.progress.value = N ? k / N : 1;
          frame.say(lead + "Generating: " + k + " / " + N + " tokens", true);
        },
      }
    ).then(
      function (r) {
        frame.progress.hidden = true;
        frame.setState("done");
        frame.say(lead + (controller.aborted ? "Stopped. " : "") + done(r, controller.aborted));
        return r;
      },
      function (err) {
        frame.fail("Could not generate: " + errText(err));
      }
    );
    return job.then(function (r) {
      frame.output.removeAttribute("aria-busy"); // the finished text is announced once
      button.textContent = button.getAttribute("data-label");
      button.classList.remove("tinygpt-live-stop");
      frame.running = null;
      frame.busy = false;
      return r;
    });
  }

  /** A click handler's common part: Stop while running; else start at once (busy set now). */
  function startOrStop(frame, button, start) {
    if (frame.running) {
      frame.running.aborted = true;
      return;
    }
    if (frame.busy) return;
    frame.busy = true;
    var go = start(); // read the controls now, at click time
    frame.ensureLoaded(button).then(function (ok) {
      if (!ok) {
        frame.busy = false;
        return;
      }
      go();
    });
  }

  // ---- the playground (Chapter 7)
  function playground(root) {
    var hasJupyter = hideJupyterWidget(root);
    var f = new Frame(root, "playground");
    f.setIntro(hasJupyter);
    var prompt = el("textarea", { name: "prompt", rows: "2", spellcheck: "false" });
    prompt.value = attr(root, "prompt", "Leaving this place is something");
    var temperature = range("temperature", 0, 2, 0.05, numAttr(root, "temperature", 0.8));
    var topK = range("top-k", 0, 200, 1, numAttr(root, "top-k", 50), 0);
    var topP = range("top-p", 0.05, 1, 0.05, numAttr(root, "top-p", 1), 1);
    var penalty = range("repetition-penalty", 1, 2, 0.05, numAttr(root, "repetition-penalty", 1), 1);
    var length = range("new-tokens", 1, 300, 1, numAttr(root, "new-tokens", 60));
    var seed = el("input", { type: "number", name: "seed", min: "0", max: "4294967295", step: "1", inputmode: "numeric" });
    seed.value = String(clampSeed(numAttr(root, "seed", 0)));
    var button = makeButton("generate", "Generate");
    var controls = el("div", { className: "tinygpt-live-controls" }, [
      field("Prompt", prompt, true),
      field("Temperature", temperature),
      field("Top-k", topK),
      field("Top-p", topP),
      field("Rep. penalty", penalty),
      field("New tokens", length),
      field("Seed", seed),
      el("div", { className: "tinygpt-live-field tinygpt-live-actions" }, [button]),
    ]);
    var legend = el("p", {
      className: "tinygpt-live-legend",
      text:
        "Temperature 0 is greedy decoding. Top-k 0, top-p 1 and a repetition penalty of 1 switch that " +
        "setting off. Under each text, the Python call that writes the same text: live is section " +
        "7.9\u2019s TextGenerator of this model, and uniforms(seed) the page\u2019s random numbers.",
    });
    f.body.appendChild(controls);
    f.body.appendChild(legend);
    var python = el("code", { className: "tinygpt-live-python" });
    var pythonBox = el("p", { className: "tinygpt-live-python-box" }, ["In Python: ", python]);
    pythonBox.hidden = true;
    root.appendChild(pythonBox); // after the output: the settings of the text shown

    seed.addEventListener("change", function () {
      var s = clampSeed(seed.value);
      if (String(s) !== seed.value) seed.value = String(s);
    });

    function values() {
      var k = Math.round(Number(topK.value));
      var p = Number(topP.value);
      var r = Number(penalty.value);
      var s = clampSeed(seed.value);
      seed.value = String(s); // the seed used, written back
      return {
        prompt: prompt.value,
        temperature: Number(temperature.value),
        topK: k > 0 ? k : null,
        topP: p < 1 ? p : null,
        repetitionPenalty: r > 0 ? r : 1,
        seed: s,
        n: Math.max(1, Math.round(Number(length.value))),
      };
    }
    function pythonLine(v) {
      var cfg =
        "SamplingConfig(temperature=" + pyFloat(v.temperature) +
        ", top_k=" + (v.topK === null ? "None" : v.topK) +
        ", top_p=" + (v.topP === null ? "None" : pyFloat(v.topP)) +
        ", repetition_penalty=" + pyFloat(v.repetitionPenalty) + ")";
      var p = v.prompt.length <= 60 ? pyString(v.prompt) : "prompt";
      return (
        "live(" + p + ", " + v.n + ", " + cfg +
        (v.temperature === 0 ? "" : ", uniform_stream=uniforms(" + v.seed + ")") + ")"
      );
    }
    f.say("Press Generate to run the model (it loads once).", true);
    loadManifest().then(function (m) {
      if (root.getAttribute("data-state") !== "idle") return; // the reader was quicker
      var mb = fmtMB(m.model.bytes + m.wasm.bytes);
      f.say("Press Generate to run the model (it loads once: " + mb + " MB, the model and " +
        "its WebAssembly runtime).", true);
    }, function () {});

    button.addEventListener("click", function () {
      startOrStop(f, button, function () {
        var v = values(); // frozen at the click: the text shown is this run's
        return function () {
          python.textContent = pythonLine(v);
          pythonBox.hidden = false;
          runGeneration(f, v.prompt, v.n, v, v.seed, button, function (r, stopped) {
            // Stopped early: the text shown is what Python writes with that many tokens.
            if (stopped) python.textContent = pythonLine(Object.assign({}, v, { n: r.tokens }));
            return speedText(r);
          });
        };
      });
    });
    prompt.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        button.click();
      }
    });
  }

  // ---- continue (the landing page)
  function continueWidget(root) {
    var hasJupyter = hideJupyterWidget(root);
    var f = new Frame(root, "continue");
    f.setIntro(hasJupyter);
    var input = el("input", { type: "text", name: "prompt", spellcheck: "false", autocomplete: "off" });
    input.value = attr(root, "prompt", "Once upon a time");
    var button = makeButton("continue", "Continue");
    var rowEl = el("div", { className: "tinygpt-live-controls tinygpt-live-inline" }, [
      field("Your text", input, true),
      el("div", { className: "tinygpt-live-field tinygpt-live-actions" }, [button]),
    ]);
    f.body.appendChild(rowEl);
    f.say("Type the start of a text and press Continue: the model writes the rest.", true);
    var n = numAttr(root, "new-tokens", 40);
    var config = {
      temperature: numAttr(root, "temperature", 0.8),
      topK: numAttr(root, "top-k", 50) || null,
      topP: null,
      repetitionPenalty: 1,
    };
    function settings(seed) {
      var parts = ["temperature " + config.temperature];
      if (config.topK) parts.push("top-k " + config.topK);
      if (config.temperature > 0) parts.push("seed " + seed);
      var t = parts.join(", ");
      return t.charAt(0).toUpperCase() + t.slice(1);
    }
    function go() {
      startOrStop(f, button, function () {
        var text = input.value;
        var seedAttr = attr(root, "seed", null);
        var seed = seedAttr === null ? Math.floor(Math.random() * 4294967296) : clampSeed(seedAttr);
        return function () {
          runGeneration(f, text, n, config, seed, button, function (r) {
            return settings(seed) + ": press Continue again for another sample. " + speedText(r);
          });
        };
      });
    }
    button.addEventListener("click", go);
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter") {
        e.preventDefault();
        go();
      }
    });
  }

  // ---- the attention explorer (Chapters 4 and 6)
  var VIRIDIS = [
    [68, 1, 84], [72, 35, 116], [64, 67, 135], [52, 94, 141], [41, 120, 142],
    [32, 144, 140], [34, 167, 132], [68, 190, 112], [121, 209, 81], [189, 222, 38],
    [253, 231, 37],
  ];
  function viridis(x) {
    x = Math.min(1, Math.max(0, x || 0)) * (VIRIDIS.length - 1);
    var i = Math.min(VIRIDIS.length - 2, Math.floor(x));
    var f = x - i;
    var a = VIRIDIS[i];
    var b = VIRIDIS[i + 1];
    return (
      "rgb(" +
      Math.round(a[0] + (b[0] - a[0]) * f) + "," +
      Math.round(a[1] + (b[1] - a[1]) * f) + "," +
      Math.round(a[2] + (b[2] - a[2]) * f) + ")"
    );
  }

  function cssVar(name, dflt) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || dflt;
  }

  function darkTheme() {
    return document.documentElement.getAttribute("data-theme") === "dark";
  }

  var LABEL_FONT = "12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
  var TITLE_FONT = "12px system-ui, -apple-system, 'Segoe UI', sans-serif";
  var MIN_CELL = 8;
  var MAX_CELL = 32;
  var LABEL_PITCH = 13; // a 12 px label needs this much room: closer cells label every k-th token

  /**
   * Draw one head's T x T weights onto canvas, fitted to avail CSS px: token labels (every k-th
   * when cells are small), axis titles, masked future cells in grey, and a colour bar for [0, 1]
   * beside the grid or, when that does not fit, under it. mark = [query, key] outlines a cell.
   * Returns the geometry for hit-testing.
   */
  function drawHeatmap(canvas, weights, labels, title, avail, mark) {
    var T = labels.length;
    var ctx = canvas.getContext("2d");
    ctx.font = LABEL_FONT;
    var labelW = 0;
    for (var i = 0; i < T; i++) labelW = Math.max(labelW, ctx.measureText(labels[i]).width);
    var cap = Math.max(48, Math.min(140, Math.floor(avail * 0.2)));
    labelW = Math.ceil(Math.min(labelW, cap)) + 6;
    var axisW = 18; // the rotated "query" title
    var x0 = axisW + labelW;
    var titleH = 22;
    var y0 = titleH;
    var barSide = 76; // gap, bar, ticks, rotated title
    var cellSide = Math.floor((avail - x0 - barSide - 2) / Math.max(T, 1));
    var cellUnder = Math.floor((avail - x0 - 2) / Math.max(T, 1));
    var cellS = Math.max(MIN_CELL, Math.min(MAX_CELL, cellSide));
    var cellU = Math.max(MIN_CELL, Math.min(MAX_CELL, cellUnder));
    // The bar beside the grid when both fit and the cells stay readable; else under the grid.
    var side = x0 + cellS * T + barSide + 4 <= avail && (cellS >= 14 || cellS >= cellU);
    var cell = side ? cellS : cellU;
    var every = cell >= LABEL_PITCH ? 1 : Math.ceil(LABEL_PITCH / cell);
    var grid = cell * T;
    var colLabelH = labelW;
    var xTitleY = y0 + grid + 4 + colLabelH + 10;
    var underH = side ? 0 : 52;
    var width = Math.max(x0 + grid + (side ? barSide : 0) + 4, side ? 0 : x0 + 160);
    var height = xTitleY + 12 + underH;
    ctx.font = TITLE_FONT;
    var yTitle = "query: token looking";
    var yTitleW = ctx.measureText(yTitle).width;
    height = Math.max(height, y0 + yTitleW + 8);
    var dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    var fg = cssVar("--pst-color-text-base", "#222");
    var muted = cssVar("--pst-color-text-muted", "#666");
    var masked = darkTheme() ? "#4b4b4b" : "#cfcfcf";
    ctx.clearRect(0, 0, width, height);
    // The title
    ctx.font = "600 13px system-ui, -apple-system, 'Segoe UI', sans-serif";
    ctx.fillStyle = fg;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    ctx.fillText(title, x0, titleH / 2);
    // The cells: row = query, column = key; a query never sees a later key (grey).
    for (var q = 0; q < T; q++)
      for (var k = 0; k < T; k++) {
        ctx.fillStyle = k > q ? masked : viridis(weights[q * T + k]);
        ctx.fillRect(x0 + k * cell, y0 + q * cell, cell, cell);
      }
    if (mark) {
      ctx.strokeStyle = darkTheme() ? "#fff" : "#000";
      ctx.lineWidth = 2;
      ctx.strokeRect(x0 + mark[1] * cell + 1, y0 + mark[0] * cell + 1, cell - 2, cell - 2);
    }
    // Token labels
    ctx.font = LABEL_FONT;
    ctx.fillStyle = fg;
    ctx.textAlign = "right";
    function cut(s) {
      if (ctx.measureText(s).width <= labelW - 6) return s;
      while (s.length > 1 && ctx.measureText(s + "\u2026").width > labelW - 6) s = s.slice(0, -1);
      return s + "\u2026";
    }
    for (var r = 0; r < T; r += every) ctx.fillText(cut(labels[r]), x0 - 4, y0 + r * cell + cell / 2);
    for (var c = 0; c < T; c += every) {
      ctx.save();
      ctx.translate(x0 + c * cell + cell / 2, y0 + grid + 4);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(cut(labels[c]), 0, 0);
      ctx.restore();
    }
    // Axis titles, as in the book's static figures
    ctx.font = TITLE_FONT;
    ctx.fillStyle = fg;
    ctx.textAlign = "center";
    var xTitle = "key: token attended to";
    var xw = ctx.measureText(xTitle).width;
    ctx.fillText(xTitle, Math.max(xw / 2 + 2, x0 + grid / 2), xTitleY);
    ctx.save();
    var yMid = Math.max(y0 + yTitleW / 2, y0 + grid / 2);
    ctx.translate(9, yMid);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText(yTitle, 0, 0);
    ctx.restore();
    // The colour bar, fixed to [0, 1] like the book's figures
    var steps = 50;
    var s;
    ctx.strokeStyle = muted;
    ctx.lineWidth = 1;
    if (side) {
      var bx = x0 + grid + 12;
      var bh = Math.max(80, Math.min(grid, 240));
      for (s = 0; s < steps; s++) {
        ctx.fillStyle = viridis(1 - s / (steps - 1));
        ctx.fillRect(bx, y0 + (s * bh) / steps, 12, bh / steps + 1);
      }
      ctx.strokeRect(bx + 0.5, y0 + 0.5, 12, bh);
      ctx.font = LABEL_FONT;
      ctx.fillStyle = fg;
      ctx.textAlign = "left";
      ctx.fillText("1", bx + 16, y0 + 6);
      ctx.fillText("0.5", bx + 16, y0 + bh / 2);
      ctx.fillText("0", bx + 16, y0 + bh - 6);
      ctx.font = TITLE_FONT;
      ctx.textAlign = "center";
      ctx.save();
      ctx.translate(bx + 54, y0 + bh / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText("attention weight", 0, 0);
      ctx.restore();
    } else {
      var by = xTitleY + 22;
      var bw = Math.max(120, Math.min(grid, 240));
      var bx2 = x0;
      for (s = 0; s < steps; s++) {
        ctx.fillStyle = viridis(s / (steps - 1));
        ctx.fillRect(bx2 + (s * bw) / steps, by, bw / steps + 1, 10);
      }
      ctx.strokeRect(bx2 + 0.5, by + 0.5, bw, 10);
      ctx.font = LABEL_FONT;
      ctx.fillStyle = fg;
      ctx.textAlign = "center";
      ctx.fillText("0", bx2 + 4, by + 20);
      ctx.fillText("0.5", bx2 + bw / 2, by + 20);
      ctx.fillText("1", bx2 + bw - 4, by + 20);
      ctx.font = TITLE_FONT;
      ctx.textAlign = "left";
      ctx.fillText("attention weight", bx2 + bw + 8, by + 5);
    }
    return { x0: x0, y0: y0, cell: cell, T: T, width: width, height: height, every: every };
  }

  function explorer(root) {
    var hasJupyter = hideJupyterWidget(root);
    var f = new Frame(root, "explorer");
    f.setIntro(hasJupyter);
    var prompts = [];
    try {
      prompts = JSON.parse(attr(root, "prompts", "[]"));
    } catch (e) {
      prompts = [];
    }
    if (!Array.isArray(prompts) || !prompts.length) prompts = ["The cat sat on the mat because it was tired."];
    var select = el("select", { name: "prompt-choice" });
    prompts.forEach(function (p, i) {
      select.appendChild(el("option", { value: String(i), text: p.replace(/\n/g, "\u21b5 ") }));
    });
    var own = el("option", { value: "own", text: "(your text)" });
    select.appendChild(own);
    var text = el("textarea", { name: "prompt", rows: "2", spellcheck: "false" });
    text.value = prompts[0];
    var layer = el("select", { name: "layer" });
    var head = el("select", { name: "head" });
    function fillSelect(s, n) {
      var keep = s.value;
      s.textContent = "";
      for (var i = 0; i < n; i++) s.appendChild(el("option", { value: String(i), text: String(i) }));
      s.value = keep && Number(keep) < n ? keep : "0";
    }
    fillSelect(layer, 4);
    fillSelect(head, 4);
    loadManifest().then(function (m) {
      fillSelect(layer, m.config.n_layer);
      fillSelect(head, m.config.n_head);
    }, function () {});
    var button = makeButton("show", "Show attention");
    f.body.appendChild(
      el("div", { className: "tinygpt-live-controls" }, [
        field("Prompt", select, true),
        field("Or type", text, true),
        field("Layer", layer),
        field("Head", head),
        el("div", { className: "tinygpt-live-field tinygpt-live-actions" }, [button]),
      ])
    );
    var canvas = el("canvas", { className: "tinygpt-live-heatmap", role: "img" });
    var scroller = el("div", {
      className: "tinygpt-live-scroll",
      tabindex: "0",
      role: "region",
      "aria-label": "Attention map (arrow keys move between cells)",
    }, [canvas]);
    var fade = el("div", { className: "tinygpt-live-fade", "aria-hidden": "true" });
    var wrap = el("div", { className: "tinygpt-live-scrollwrap" }, [scroller, fade]);
    var hint = el("p", { className: "tinygpt-live-legend tinygpt-live-hint", text: "Scroll sideways for the rest of the map." });
    var readout = el("p", { className: "tinygpt-live-readout", "aria-live": "polite" });
    f.output.appendChild(wrap);
    f.output.appendChild(hint);
    f.output.appendChild(readout);
    wrap.hidden = true;
    hint.hidden = true;
    f.say("Press Show attention (or change a setting) to run the model on the text.", true);

    var current = null; // {text, labels, att, cut}
    var geo = null;
    var mark = null;
    var started = false;
    var busy = null;
    var timer = null;

    function syncChoice() {
      var i = prompts.indexOf(text.value);
      select.value = i >= 0 ? String(i) : "own";
    }
    function edges() {
      var more = scroller.scrollWidth > scroller.clientWidth + 1;
      hint.hidden = !more;
      var atEnd = scroller.scrollLeft + scroller.clientWidth >= scroller.scrollWidth - 2;
      fade.hidden = !more || atEnd;
    }
    scroller.addEventListener("scroll", edges);

    function say(qk) {
      if (!current || !qk) return;
      var q = qk[0];
      var k = qk[1];
      var L = current.labels;
      var w = current.weights[q * current.labels.length + k];
      readout.textContent =
        k > q
          ? "'" + L[q] + "' \u2192 '" + L[k] + "': masked (a token cannot look at later ones)"
          : "'" + L[q] + "' \u2192 '" + L[k] + "': " + w.toFixed(2);
    }
    function strongest(w, T) {
      var parts = [];
      for (var q = 0; q < T; q++) {
        var best = 0;
        for (var k = 1; k <= q; k++) if (w[q * T + k] > w[q * T + best]) best = k;
        parts.push(current.labels[q] + " \u2192 " + current.labels[best]);
      }
      return parts.join("; ");
    }
    function redraw() {
      if (!current) return;
      var T = current.labels.length;
      var l = Number(layer.value);
      var h = Number(head.value);
      current.weights = current.att.weights(l, h);
      wrap.hidden = false;
      // The room the page gives, measured without the old map (which could widen its box).
      canvas.style.display = "none";
      var avail = f.output.clientWidth || 600;
      canvas.style.display = "";
      if (mark && (mark[0] >= T || mark[1] >= T)) mark = null;
      geo = drawHeatmap(canvas, current.weights, current.labels, "layer " + l + ", head " + h, avail, mark);
      canvas.setAttribute(
        "aria-label",
        "Attention of layer " + l + ", head " + h + " over " + T + " tokens. Each token attends most to: " +
          strongest(current.weights, T) + "."
      );
      edges();
      if (mark) say(mark);
      else if (!readout.textContent) readout.textContent = "Point at or tap a cell to read its weight.";
      f.setState("done");
      f.say(
        (current.cut ? "First " + T + " tokens shown (the model\u2019s window)" : T + " token" + (T > 1 ? "s" : "")) +
          "; row t shows how token t spreads its attention over tokens 0..t; grey cells are the future it cannot see.",
        true
      );
    }
    function cellAt(ev) {
      if (!geo) return null;
      var r = canvas.getBoundingClientRect();
      var k = Math.floor((ev.clientX - r.left - geo.x0) / geo.cell);
      var q = Math.floor((ev.clientY - r.top - geo.y0) / geo.cell);
      if (q < 0 || k < 0 || q >= geo.T || k >= geo.T) return null;
      return [q, k];
    }
    function point(ev) {
      var qk = cellAt(ev);
      if (qk) say(qk);
    }
    canvas.addEventListener("pointermove", point);
    canvas.addEventListener("pointerdown", point);
    scroller.addEventListener("keydown", function (e) {
      if (!current) return;
      var T = current.labels.length;
      var d = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[e.key];
      if (!d) return;
      e.preventDefault();
      mark = mark ? [Math.min(T - 1, Math.max(0, mark[0] + d[0])), Math.min(T - 1, Math.max(0, mark[1] + d[1]))] : [0, 0];
      redraw();
      var x = geo.x0 + mark[1] * geo.cell;
      if (x < scroller.scrollLeft || x + geo.cell > scroller.scrollLeft + scroller.clientWidth)
        scroller.scrollLeft = Math.max(0, x - scroller.clientWidth / 2);
    });

    function compute() {
      clearTimeout(timer);
      started = true;
      var wanted = text.value;
      if (current && current.text === wanted) {
        redraw();
        return Promise.resolve();
      }
      if (busy) {
        busy.again = true;
        return busy.promise;
      }
      busy = { again: false };
      f.busy = true;
      busy.promise = f.ensureLoaded(button).then(function (ok) {
        if (!ok) {
          busy = null;
          f.busy = false;
          return;
        }
        var W = state.manifest.config.block_size;
        var gids = encode(wanted);
        var cutText = gids.length > W;
        gids = gids.slice(0, W);
        if (!gids.length) {
          busy = null;
          f.busy = false;
          current = null;
          wrap.hidden = true;
          hint.hidden = true;
          readout.textContent = "";
          f.setState("done");
          f.say("Type some text.");
          return;
        }
        f.clearError();
        f.setState("running");
        f.say("Running the model\u2026", true);
        return attention(toLocal(gids)).then(
          function (att) {
            if (!current || current.text !== wanted) mark = null;
            current = { text: wanted, labels: tokenLabels(gids), att: att, cut: cutText };
            var again = busy.again;
            busy = null;
            f.busy = false;
            redraw();
            if (again && text.value !== wanted) return compute();
          },
          function (err) {
            busy = null;
            f.busy = false;
            f.fail("Could not run the model: " + errText(err));
          }
        );
      });
      return busy.promise;
    }
    /** Runs asked for by the prompt list or the text box wait 300 ms for the next keystroke. */
    function later() {
      clearTimeout(timer);
      timer = setTimeout(compute, 300);
    }
    button.addEventListener("click", function () {
      if (f.busy && !state.session) return; // loading already
      compute();
    });
    select.addEventListener("change", function () {
      if (select.value === "own") return;
      text.value = prompts[Number(select.value)];
      later();
    });
    text.addEventListener("input", function () {
      syncChoice();
      if (started) later();
    });
    text.addEventListener("change", function () {
      syncChoice();
      later();
    });
    [layer, head].forEach(function (s) {
      s.addEventListener("change", function () {
        if (current && current.text === text.value) redraw();
        else later();
      });
    });
    // The labels take the theme's text colour: draw again when the reader switches theme.
    if (typeof MutationObserver === "function")
      new MutationObserver(redraw).observe(document.documentElement, {
        attributes: true,
        attributeFilter: ["data-theme"],
      });
    // Fit the map again when the page's width changes (once the resizing settles).
    var lastWidth = 0;
    var resizing = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizing);
      resizing = setTimeout(function () {
        var w = f.output.clientWidth;
        if (current && w > 0 && Math.abs(w - lastWidth) > 20) {
          lastWidth = w;
          redraw();
        }
      }, 150);
    });
  }

  var WIDGETS = { playground: playground, explorer: explorer, continue: continueWidget };

  /** Build every placeholder on the page (or inside root) once. */
  function mountAll(rootNode) {
    var nodes = (rootNode || document).querySelectorAll(".tinygpt-live[data-widget]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      if (node.getAttribute("data-state")) continue; // built already
      var make = WIDGETS[node.getAttribute("data-widget")];
      if (!make) continue;
      try {
        make(node);
      } catch (err) {
        node.setAttribute("data-state", "error");
        node.appendChild(el("p", { className: "tinygpt-live-status tinygpt-live-error", text: "The live widget failed: " + err.message }));
      }
    }
  }

  var api = {
    load: load,
    encode: encode,
    toLocal: toLocal,
    toGlobal: toGlobal,
    decode: decode,
    tokenLabels: tokenLabels,
    logits: logits,
    attention: attention,
    generate: generate,
    mount: mountAll,
    lastRun: null,
    loadSeconds: null,
    base: BASE,
  };
  Object.defineProperty(api, "manifest", {
    get: function () {
      return state.manifest;
    },
  });
  window.tinygptLive = api;

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { mountAll(); });
  else mountAll();
})();
