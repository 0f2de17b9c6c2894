/* The inspector's two other panels, drawn after each analysis of the text (app.js):
 * a second model compared with the first on the same text (CharLM.renderDiff), and the
 * inside of the model: one unit's activation over the text (CharLM.renderCells, from
 * POST /activations) with the units that follow simple features of the text. */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var I = window.CharLMInspector;
  var KINDS = [
    ["cell", "cell state (tanh c)"], ["hidden", "output h"], ["input_gate", "input gate"],
    ["forget_gate", "forget gate"], ["output_gate", "output gate"],
  ];
  var last = { text: "", result: null }, asked = { compare: 0, cells: 0 };

  // -- two models --------------------------------------------------------------------

  function compare() {
    var other = $("compare").value, mine = I.model(), n = ++asked.compare, text = last.text;
    if (!other || !last.result || !last.result.score) {
      $("comparison").hidden = true;
      return Promise.resolve();
    }
    return I.score(text, other).then(function (theirs) {
      if (n !== asked.compare) return;
      $("comparison").hidden = false;
      $("comparison-title").textContent = mine + " against " + other + ", character by character";
      var side = function (name, r) {
        return { model: name, steps: r.score ? r.score.steps : [], unknown: r.unknown };
      };
      CharLM.renderDiff($("diff"), { text: text, a: side(mine, last.result), b: side(other, theirs) });
    }).catch(function (e) { if (n === asked.compare) I.showError(String(e.message || e)); });
  }

  // -- inside the model --------------------------------------------------------------

  function cellControls() {
    /* The layers, kinds and units of the chosen model; null when there is none. */
    var m = I.models()[I.model()];
    if (!m) return null;
    var a = m.architecture, layers = [];
    for (var l = 0; l < a.num_layers; l++) layers.push([l, String(l) + (l === a.num_layers - 1 ? " (last)" : "")]);
    var layer = $("cell-layer").value;
    I.fill($("cell-layer"), layers, layer === "" ? a.num_layers - 1 : layer);
    if (Number($("cell-layer").value) >= a.num_layers) $("cell-layer").value = String(a.num_layers - 1);
    var lstm = (a.cell || "lstm") === "lstm";
    I.fill($("cell-kind"), KINDS.filter(function (k) { return lstm || k[0] === "hidden"; }), $("cell-kind").value);
    $("cell-unit").max = String(a.hidden_size - 1);
    return a;
  }

  function features(list) {
    /* Each feature with its most correlated units, as buttons that show that unit. */
    var box = $("cell-features");
    box.textContent = "";
    box.appendChild(CharLM.el("p", "cl-features-head",
      "the units that follow a feature of this text most closely (Pearson r); pick one to shade by it"));
    list.forEach(function (f) {
      var row = CharLM.el("div", "cl-feature");
      row.appendChild(CharLM.el("span", "cl-feature-name", f.description));
      if (!f.cells.length) row.appendChild(CharLM.el("span", "cl-feature-none", "constant in this text"));
      f.cells.forEach(function (c) {
        var b = CharLM.el("button", "cl-unit-pick", "unit " + c.cell + " (" + (c.r >= 0 ? "+" : "−") +
          Math.abs(c.r).toFixed(2) + ")");
        b.type = "button";
        b.dataset.unit = String(c.cell);
        b.addEventListener("click", function () { $("cell-unit").value = String(c.cell); inside(); });
        row.appendChild(b);
      });
      box.appendChild(row);
    });
  }

  function inside() {
    if (!$("cells").open || !I.model()) return Promise.resolve();
    var a = cellControls(), n = ++asked.cells, text = last.text;
    if (!a) return Promise.resolve();
    var unit = Number($("cell-unit").value);
    if (!Number.isInteger(unit) || unit < 0 || unit >= a.hidden_size) {
      I.showError("“unit” must be a whole number from 0 to " + (a.hidden_size - 1) + ".");
      return Promise.resolve();
    }
    var unknown = I.unknownIn(text), chars = Array.from(text);
    if (unknown.length) chars = chars.slice(0, unknown[0].position);
    if (!chars.length) { $("cell-view").textContent = ""; $("cell-features").textContent = ""; return Promise.resolve(); }
    var body = {
      model: I.model(), text: chars.join(""), layer: Number($("cell-layer").value),
      kind: $("cell-kind").value, cells: [unit], top: 5,
    };
    return I.api("/activations", body).then(function (r) {
      if (n !== asked.cells) return;
      if (!r.ok) { I.showError((r.data.error || {}).message || "the service answered " + r.status); return; }
      features(r.data.features);
      CharLM.renderCells($("cell-view"), {
        text: r.data.text, values: r.data.series[0].values, low: r.data.low, high: r.data.high,
        unit: unit, layer: r.data.layer, kind: r.data.kind,
      });
    }).catch(function (e) { if (n === asked.cells) I.showError(String(e.message || e)); });
  }

  I.onAnalyzed(function (text, result) {
    last = { text: text, result: result };
    var names = Object.keys(I.models()).map(function (name) { return [name, name]; });
    I.fill($("compare"), [["", "none"]].concat(names), $("compare").value);
    compare();
    inside();
  });
  $("compare").addEventListener("change", compare);
  $("cells").addEventListener("toggle", inside);
  ["cell-layer", "cell-kind", "cell-unit"].forEach(function (id) {
    $(id).addEventListener("change", inside);
  });
})();
