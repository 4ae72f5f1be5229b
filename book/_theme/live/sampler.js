/* The sampler of the live model (issue 30): the JavaScript twin of tinygpt.generate.
 *
 * Each function mirrors one in src/tinygpt/generate.py, on one row of logits, in float64
 * (plain JS numbers), so that the same logits and the same uniforms choose the same tokens:
 *
 *   applyRepetitionPenalty  <- apply_repetition_penalty
 *   topKFilter              <- top_k_filter
 *   topPFilter              <- top_p_filter
 *   softmax                 <- Tensor.softmax (float64, the maximum subtracted)
 *   drawWithUniform         <- sample_next's draw with uniform= (inverse CDF in token-id order)
 *   sampleNext              <- sample_next (uniform= path)
 *   mulberry32              <- uniforms(seed)
 *
 * A classic script: defines window.tinygptSampler, and module.exports under node.
 */
(function (root) {
  "use strict";

  /** A float64 copy of any array-like of numbers. */
  function toFloat64(logits) {
    var out = new Float64Array(logits.length);
    for (var i = 0; i < logits.length; i++) out[i] = logits[i];
    return out;
  }

  /** CTRL's penalty: each distinct token of the context once; > 0 divided, else multiplied. */
  function applyRepetitionPenalty(logits, context, penalty) {
    var out = toFloat64(logits);
    if (penalty === 1) return out;
    var seen = new Set();
    for (var i = 0; i < context.length; i++) {
      var t = context[i];
      if (seen.has(t)) continue;
      seen.add(t);
      var v = out[t];
      out[t] = v > 0 ? v / penalty : v * penalty;
    }
    return out;
  }

  /** Keep the k largest logits (every one tied with the k-th stays); the rest become -Infinity. */
  function topKFilter(logits, k) {
    var out = toFloat64(logits);
    var V = out.length;
    k = Math.min(k, V);
    var sorted = Float64Array.from(out).sort(); // ascending; -Infinity first
    var kth = sorted[V - k];
    for (var i = 0; i < V; i++) if (out[i] < kth) out[i] = -Infinity;
    return out;
  }

  /** Nucleus filtering, summed from the least likely token up (see top_p_filter). */
  function topPFilter(logits, p) {
    var out = toFloat64(logits);
    var V = out.length;
    var order = new Array(V);
    for (var i = 0; i < V; i++) order[i] = i;
    // Ascending by logit, then by token id: a stable ascending sort.
    order.sort(function (a, b) {
      var x = out[a], y = out[b];
      if (x < y) return -1;
      if (x > y) return 1;
      return a - b;
    });
    var max = out[order[V - 1]];
    var e = new Float64Array(V);
    var sum = 0;
    for (var j = 0; j < V; j++) {
      var v = out[order[j]];
      e[j] = v === -Infinity ? 0 : Math.exp(v - max);
      sum += e[j];
    }
    var massUpTo = 0;
    var dropped = [];
    for (var m = 0; m < V - 1; m++) {
      massUpTo += e[m] / sum;
      if (massUpTo <= 1 - p) dropped.push(order[m]);
    }
    for (var d = 0; d < dropped.length; d++) out[dropped[d]] = -Infinity;
    return out;
  }

  /** Probabilities in float64: exp(x - max) / sum; -Infinity gives 0. */
  function softmax(logits) {
    var V = logits.length;
    var max = -Infinity;
    for (var i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
    var out = new Float64Array(V);
    var sum = 0;
    for (var j = 0; j < V; j++) {
      var v = logits[j];
      out[j] = v === -Infinity ? 0 : Math.exp(v - max);
      sum += out[j];
    }
    for (var k = 0; k < V; k++) out[k] /= sum;
    return out;
  }

  /** The first token whose running sum (in token-id order) exceeds u times the total. */
  function drawWithUniform(probs, u) {
    var V = probs.length;
    var cdf = new Float64Array(V);
    var run = 0;
    for (var i = 0; i < V; i++) {
      run += probs[i];
      cdf[i] = run;
    }
    var target = u * cdf[V - 1];
    for (var j = 0; j < V; j++) if (cdf[j] > target) return j;
    // Only reachable when u * total rounds up to total: the last token with any probability.
    for (var k = V - 1; k >= 0; k--) if (probs[k] > 0) return k;
    return V - 1;
  }

  /** The first index of the maximum (ties go to the lowest id), like torch.argmax. */
  function argmax(logits) {
    var best = 0;
    for (var i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }

  /**
   * The next token for one row of logits. config = {temperature, topK (null = off),
   * topP (null = off), repetitionPenalty}; u is a uniform in [0, 1) (unused when greedy).
   */
  function sampleNext(logits, context, config, u) {
    var penalty = config.repetitionPenalty == null ? 1 : config.repetitionPenalty;
    var x = applyRepetitionPenalty(logits, context, penalty);
    if (config.temperature === 0) return argmax(x);
    for (var i = 0; i < x.length; i++) x[i] = x[i] / config.temperature;
    if (config.topK != null) x = topKFilter(x, config.topK);
    if (config.topP != null) x = topPFilter(x, config.topP);
    return drawWithUniform(softmax(x), u);
  }

  /** mulberry32: a function returning the next uniform in [0, 1) of the stream for seed. */
  function mulberry32(seed) {
    var state = seed >>> 0;
    return function () {
      state = (state + 0x6d2b79f5) >>> 0;
      var t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  var api = {
    applyRepetitionPenalty: applyRepetitionPenalty,
    topKFilter: topKFilter,
    topPFilter: topPFilter,
    softmax: softmax,
    drawWithUniform: drawWithUniform,
    argmax: argmax,
    sampleNext: sampleNext,
    mulberry32: mulberry32,
  };
  if (root) root.tinygptSampler = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof window !== "undefined" ? window : typeof globalThis !== "undefined" ? globalThis : null);
