/* charlm score charts: the surprise plot and the histograms under the score view.
 *
 * Loaded after scoreview.js (the inspector page and the HTML report embed both); adds
 * CharLM.plot, CharLM.histogram and CharLM.histograms, which CharLM.renderScore calls.
 * Like the view, it draws what it is given and fetches nothing.
 */
(function (global) {
  "use strict";

  var C = global.CharLM;
  var el = C.el, colour = C.colour, RANKS = C.RANKS;
  var SVG = "http://www.w3.org/2000/svg";
  var PROB_BINS = [0, 0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999];

  function plot(list, onPick, onHover, width) {
    /* Surprise -log2(p) along the text, one point per shaded character, drawn at the
       width it is shown at (so its labels keep their size on a phone). Hovering anywhere
       over it points at the nearest character (`onHover(position, the marker's
       rectangle)`), clicking selects it. */
    var pts = list.filter(C.isShaded);
    var wrap = el("figure", "cl-plot");
    wrap.appendChild(el("figcaption", "",
      "surprise per character, −log₂ p (bits); lower is surer. Point at it to find a character."));
    if (pts.length < 2) return wrap;
    var W = Math.max(280, Math.round(width || 600)), H = 150, padL = 34, padB = 30;
    var bits = pts.map(function (it) { return -Math.log2(Math.max(it.prob, 1e-30)); });
    var top = Math.max(1, Math.ceil(Math.max.apply(null, bits)));
    var n = list.length ? list[list.length - 1].position + 1 : 0;  // positions, in code points
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("width", W);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "per-character surprise in bits, by position in the text");
    function x(pos) { return padL + (W - padL - 8) * (n > 1 ? pos / (n - 1) : 0); }
    function y(b) { return 6 + (H - padB - 10) * (1 - b / top); }
    function text(tx, ty, anchor, content, cls) {
      var t = document.createElementNS(SVG, "text");
      t.setAttribute("x", tx); t.setAttribute("y", ty);
      t.setAttribute("text-anchor", anchor);
      if (cls) t.setAttribute("class", cls);
      t.textContent = content;
      svg.appendChild(t);
    }
    [0, top / 2, top].forEach(function (b) {
      var line = document.createElementNS(SVG, "line");
      line.setAttribute("x1", padL); line.setAttribute("x2", W - 8);
      line.setAttribute("y1", y(b)); line.setAttribute("y2", y(b));
      line.setAttribute("class", "cl-grid");
      svg.appendChild(line);
      text(padL - 4, y(b) + 4, "end", (Math.round(b * 10) / 10).toString());
    });
    // The x axis: positions in the text, at round steps.
    var step = Math.pow(10, Math.floor(Math.log10(Math.max(1, (n - 1) / 4))));
    [1, 2, 5, 10].some(function (m) {
      if ((n - 1) / (step * m) <= Math.max(3, Math.floor((W - padL) / 70))) { step *= m; return true; }
      return false;
    });
    for (var pos = 0; pos <= n - 1; pos += step) {
      var tick = document.createElementNS(SVG, "line");
      tick.setAttribute("x1", x(pos)); tick.setAttribute("x2", x(pos));
      tick.setAttribute("y1", H - padB + 2); tick.setAttribute("y2", H - padB + 6);
      tick.setAttribute("class", "cl-axis");
      svg.appendChild(tick);
      text(x(pos), H - padB + 17, pos === 0 ? "start" : "middle", String(pos), "cl-xtick");
    }
    text(W - 8, H - 2, "end", "position in the text", "cl-xlabel");
    var path = document.createElementNS(SVG, "polyline");
    path.setAttribute("points", pts.map(function (it, k) {
      return x(it.position).toFixed(1) + "," + y(bits[k]).toFixed(1);
    }).join(" "));
    path.setAttribute("class", "cl-line");
    svg.appendChild(path);
    if (pts.length <= 400) {
      pts.forEach(function (it, k) {
        var dot = document.createElementNS(SVG, "circle");
        dot.setAttribute("cx", x(it.position)); dot.setAttribute("cy", y(bits[k]));
        dot.setAttribute("r", 3); dot.setAttribute("fill", colour(it.prob));
        dot.setAttribute("class", "cl-dot");
        svg.appendChild(dot);
      });
    }
    // One marker follows the pointer to the nearest plotted character, at any length.
    var marker = document.createElementNS(SVG, "circle");
    marker.setAttribute("r", 5);
    marker.setAttribute("class", "cl-marker");
    marker.style.display = "none";
    svg.appendChild(marker);
    var bitsAt = {};
    pts.forEach(function (it, k) { bitsAt[it.position] = bits[k]; });
    var positions = pts.map(function (it) { return it.position; });
    function nearest(ev) {
      var box = svg.getBoundingClientRect();
      var px = (ev.clientX - box.left) * W / box.width;
      var want = (px - padL) / (W - padL - 8) * (n - 1);
      var lo = 0, hi = positions.length - 1;
      while (lo < hi) {  // the first plotted position >= want
        var mid = (lo + hi) >> 1;
        if (positions[mid] < want) lo = mid + 1; else hi = mid;
      }
      var best = positions[lo];
      if (lo > 0 && Math.abs(positions[lo - 1] - want) < Math.abs(best - want)) best = positions[lo - 1];
      return best;
    }
    var hit = document.createElementNS(SVG, "rect");
    hit.setAttribute("x", 0); hit.setAttribute("y", 0);
    hit.setAttribute("width", W); hit.setAttribute("height", H);
    hit.setAttribute("class", "cl-hit");
    hit.addEventListener("mousemove", function (ev) {
      var at = nearest(ev);
      marker.setAttribute("cx", x(at)); marker.setAttribute("cy", y(bitsAt[at]));
      marker.style.display = "";
      onHover(at, marker.getBoundingClientRect());
    });
    hit.addEventListener("mouseleave", function () { marker.style.display = "none"; onHover(-1); });
    hit.addEventListener("click", function (ev) { onPick(nearest(ev)); });
    svg.appendChild(hit);
    wrap.appendChild(svg);
    return wrap;
  }


  function histogram(list, by) {
    /* Counts of the scored characters by rank bucket, or by probability bin. */
    var bins = by === "rank" ? RANKS.length : PROB_BINS.length;
    var counts = [];
    for (var k = 0; k < bins; k++) counts.push(0);
    list.forEach(function (it) {
      if (!C.isShaded(it)) return;
      if (by === "rank") { if (it.rank) counts[C.rankBucket(it.rank)] += 1; return; }
      var b = 0;
      while (b + 1 < PROB_BINS.length && it.prob >= PROB_BINS[b + 1]) b += 1;
      counts[b] += 1;
    });
    return counts;
  }

  // The probability bins' edges as the histograms label them.
  var EDGES = ["0", "0.1%", "1%", "10%", "50%", "90%", "99%", "99.9%"];

  function binLabel(k) {
    if (k === 0) return "< " + EDGES[1];
    if (k === PROB_BINS.length - 1) return "≥ " + EDGES[k];
    return EDGES[k].replace("%", "") + "–" + EDGES[k + 1];
  }

  function histograms(list, where) {
    /* Two small bar charts of `list`'s shaded characters: by rank and by probability;
       `where` ("in the continuation") goes into their titles. */
    var fig = el("figure", "cl-hists");
    if (where) fig.dataset.where = where;
    [["rank", "by rank", RANKS.map(function (r) { return r.label; })],
     ["prob", "by probability", PROB_BINS.map(function (p, k) { return binLabel(k); })]]
      .forEach(function (spec) {
        var counts = histogram(list, spec[0]);
        var total = counts.reduce(function (a, b) { return a + b; }, 0) || 1;
        var block = el("div", "cl-hist cl-hist-" + spec[0]);
        block.appendChild(el("div", "cl-hist-title",
          "characters " + (where ? where + ", " : "") + spec[1]));
        counts.forEach(function (n, k) {
          var row = el("div", "cl-hist-row");
          row.appendChild(el("span", "cl-hist-label", spec[2][k]));
          var track = el("span", "cl-hist-track");
          var bar = el("span", "cl-hist-bar");
          bar.style.width = (100 * n / total).toFixed(1) + "%";
          bar.style.background = spec[0] === "rank" ? RANKS[k].colour
            : colour(k + 1 < PROB_BINS.length ? Math.sqrt(Math.max(PROB_BINS[k], 1e-4) * PROB_BINS[k + 1])
              : 0.9995);
          track.appendChild(bar);
          row.appendChild(track);
          var count = el("span", "cl-hist-count", String(n));
          row.dataset.count = String(n);
          row.appendChild(count);
          block.appendChild(row);
        });
        fig.appendChild(block);
      });
    return fig;
  }

  C.plot = plot;
  C.histogram = histogram;
  C.histograms = histograms;
})(window);
