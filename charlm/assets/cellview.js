/* charlm cell view: the text shaded by one unit's activation after each character, as
 * in Karpathy, Johnson and Fei-Fei, "Visualizing and Understanding Recurrent Networks".
 *
 * Loaded after scoreview.js, whose text widget it uses; draws what it is given:
 *
 *   CharLM.renderCells(root, {
 *     text: "...",              // the text read
 *     values: [...],            // the unit's activation after each character (code points)
 *     low, high,                // the range of this kind of activation (/activations)
 *     unit, layer, kind,        // which unit it is, for the legend and the tooltips
 *     markers: false,           // draw spaces and newlines as symbols
 *   })
 */
(function (global) {
  "use strict";

  var C = global.CharLM;
  var KIND_NAMES = {
    cell: "tanh of the cell state", hidden: "output (hidden state)", input_gate: "input gate",
    forget_gate: "forget gate", output_gate: "output gate",
  };

  function renderCells(root, data) {
    root.textContent = "";
    root.classList.add("cl-view");
    var low = data.low, high = data.high, mid = (low + high) / 2;
    var what = KIND_NAMES[data.kind] || data.kind;
    function t(v) { return 2 * (v - low) / (high - low) - 1; }
    root.appendChild(C.divergingLegend(
      what + " of unit " + data.unit + " in layer " + data.layer + ", after each character",
      [[-1, String(low)], [0, String(mid)], [1, String(high)]]));
    C.viewToggles(root, data, function (changes) {
      renderCells(root, Object.assign({}, data, changes));
    });
    var list = Array.from(data.text).map(function (c, i) {
      return { kind: "unit", char: c, position: i, value: data.values[i] };
    });
    var view = C.shadedText(root, list, {
      markers: data.markers,
      label: "text shaded by unit " + data.unit + "'s " + what,
      shade: function (it) {
        var rgb = C.diverging(t(it.value));
        return ["rgb(" + rgb.join(",") + ")", C.inkOn(rgb)];
      },
      describe: function (it) {
        return [
          C.charName(it.char) + " at position " + it.position,
          what + " of unit " + data.unit + ": " + it.value.toFixed(3),
        ];
      },
      attrs: function (it) { return { value: it.value }; },
    });
    return view;
  }

  global.CharLM = Object.assign(global.CharLM || {}, { renderCells: renderCells });
})(window);
