/* charlm comparison view: two models on the same text, each character shaded by how much
 * more one model was surprised by it than the other.
 *
 * Loaded after scoreview.js, whose text widget it uses; draws what it is given:
 *
 *   CharLM.renderDiff(root, {
 *     text: "...",
 *     a: {model, steps, unknown},   // /score of each model on the text (steps and the
 *     b: {model, steps, unknown},   //   characters outside its vocabulary)
 *     markers: false,
 *   })
 *
 * The difference is B's surprise minus A's, -log2 pB + log2 pA bits: red where B was
 * more surprised (A did better), blue where B was less (B did better), over +-4 bits.
 */
(function (global) {
  "use strict";

  var C = global.CharLM, el = C.el, pct = C.percent;
  var SPAN = 4;  // bits at either end of the scale

  function bits(p) { return -Math.log2(Math.max(p, 1e-30)); }

  function renderDiff(root, data) {
    root.textContent = "";
    root.classList.add("cl-view");
    var A = data.a.model, B = data.b.model;
    var ia = C.items({ text: data.text, steps: data.a.steps, unknown: data.a.unknown });
    var ib = C.items({ text: data.text, steps: data.b.steps, unknown: data.b.unknown });
    var list = ia.map(function (a, i) {
      var b = ib[i];
      if (a.kind !== "scored" || b.kind !== "scored") {
        return { kind: "context", char: a.char, position: a.position, why: a.kind !== "scored" ? a : b };
      }
      return {
        kind: "compared", char: a.char, position: a.position, pa: a.prob, pb: b.prob,
        diff: bits(b.prob) - bits(a.prob),
      };
    });
    root.appendChild(C.divergingLegend(
      "how much more " + B + " was surprised than " + A + " (bits)",
      [[-1, "−" + SPAN + " (" + B + " surer)"], [0, "0"], [1, "+" + SPAN + " (" + A + " surer)"]]));
    C.viewToggles(root, data, function (changes) {
      renderDiff(root, Object.assign({}, data, changes));
    });

    var both = list.filter(function (it) { return it.kind === "compared"; });
    var summary = el("div", "cl-summary cl-diff-summary");
    var view;
    if (both.length) {
      var mean = function (key) {
        return both.reduce(function (s, it) { return s + bits(it[key]); }, 0) / both.length;
      };
      var surerB = both.filter(function (it) { return it.diff < 0; }).length;
      summary.appendChild(el("span", "cl-stat", A + ": " + mean("pa").toPrecision(4) + " bits/char"));
      summary.appendChild(el("span", "cl-stat", B + ": " + mean("pb").toPrecision(4) + " bits/char"));
      summary.appendChild(el("span", "cl-stat", B + " surer on " + surerB + " of " + both.length +
        " characters"));
      var widest = both.reduce(function (m, it) { return Math.abs(it.diff) > Math.abs(m.diff) ? it : m; });
      var link = el("button", "cl-stat cl-min", "largest difference: " +
        (widest.diff > 0 ? "+" : "") + widest.diff.toFixed(2) + " bits at position " +
        widest.position + " (" + C.charName(widest.char) + ")");
      link.type = "button";
      link.addEventListener("click", function () {
        view.box.focus({ preventScroll: true });
        view.select(list.indexOf(widest), "center");
      });
      summary.appendChild(link);
    }
    root.appendChild(summary);
    view = C.shadedText(root, list, {
      markers: data.markers,
      label: "text shaded by the difference in surprise between " + A + " and " + B,
      shade: function (it) {
        if (it.kind !== "compared") return null;
        var rgb = C.diverging(it.diff / SPAN);
        return ["rgb(" + rgb.join(",") + ")", C.inkOn(rgb)];
      },
      describe: function (it) {
        var c = C.charName(it.char) + " at position " + it.position;
        if (it.kind !== "compared") return [c, "not compared: " + it.why.kind + " for one model"];
        return [
          c + ": " + B + " " + (it.diff > 0 ? "+" : "") + it.diff.toFixed(2) +
            " bits of surprise against " + A,
          A + " gave it " + pct(it.pa) + ", " + B + " " + pct(it.pb),
        ];
      },
      attrs: function (it) { return { diff: it.diff }; },
    });
    return view;
  }

  global.CharLM = Object.assign(global.CharLM || {}, { renderDiff: renderDiff });
})(window);
