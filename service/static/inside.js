/* The inspector's two other panels, drawn after each analysis of the text (app.js):
 * a second model compared with the first on the same text (CharLM.renderDiff), and the
 * inside of the model (POST /activations): every unit of a layer over the text as a heat
 * strip, with the units most active at a chosen character; one unit's activation over
 * the text (CharLM.renderCells); the units that follow simple features of the text, and
 * those that follow a feature of the user's own (a regular expression, or the range
 * marked in the text). Each panel says "out of date" when it lags behind the text. */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var I = window.CharLMInspector;
  var KINDS = [
    ["cell", "cell state (tanh c)"], ["hidden", "output h"], ["input_gate", "input gate"],
    ["forget_gate", "forget gate"], ["output_gate", "output gate"],
  ];
  var STRIP_VALUES = 100000;  // units x characters asked for the heat strip at most
  var WEAK = 0.3;  // a unit with |r| below this is not offered as following a feature
  var MOST_ACTIVE = 8;  // units listed at a chosen character
  var last = { text: "", result: null }, asked = { compare: 0, cells: 0, feature: 0 };
  var strip = null;  // the heat strip's answer, for the units most active at a character

  function viewChoices() {
    /* The page's view choices (show spaces and newlines), kept like the main view's. */
    var kept = I.saved().view || {};
    return {
      markers: kept.markers,
      onView: function (changes) { I.save({ view: Object.assign(I.saved().view || {}, changes) }); },
    };
  }

  // -- two models --------------------------------------------------------------------

  function compare(scroll) {
    /* The chosen second model against the first; `scroll`: bring it into view (it was
       just chosen, so that is where the eye goes). */
    var other = $("compare").value, mine = I.model(), n = ++asked.compare, text = last.text;
    I.save({ compare: other });
    if (!other || !last.result || !last.result.score) {
      $("comparison").hidden = true;
      I.current($("comparison"));
      return Promise.resolve();
    }
    I.changing($("comparison"));
    return I.score(text, other).then(function (theirs) {
      if (n !== asked.compare) return;
      $("comparison").hidden = false;
      $("comparison-title").textContent = mine + " against " + other + ", character by character";
      var side = function (name, r) {
        return { model: name, steps: r.score ? r.score.steps : [], unknown: r.unknown };
      };
      CharLM.renderDiff($("diff"), Object.assign(
        { text: text, a: side(mine, last.result), b: side(other, theirs) }, viewChoices()));
      I.current($("comparison"));
      if (scroll) $("comparison").scrollIntoView({ block: "start" });
    }).catch(function (e) { if (n === asked.compare) I.showError(String(e.message || e)); });
  }

  // -- inside the model --------------------------------------------------------------

  function cellControls() {
    /* The layers, kinds and units of the chosen model; null when there is none. */
    var m = I.models()[I.model()];
    if (!m) return null;
    var a = m.architecture, layers = [];
    for (var l = 0; l < a.num_layers; l++) layers.push([l, String(l) + (l === a.num_layers - 1 ? " (last)" : "")]);
    var kept = I.saved().cells || {}, layer = $("cell-layer").value || kept.layer;
    I.fill($("cell-layer"), layers, layer === undefined || layer === "" ? a.num_layers - 1 : layer);
    if (Number($("cell-layer").value) >= a.num_layers) $("cell-layer").value = String(a.num_layers - 1);
    var lstm = (a.cell || "lstm") === "lstm";
    I.fill($("cell-kind"), KINDS.filter(function (k) { return lstm || k[0] === "hidden"; }),
      $("cell-kind").value || kept.kind);
    $("cell-unit").max = String(a.hidden_size - 1);
    return a;
  }

  function cellError(message) { $("cell-error").textContent = message || ""; }

  function cellBusy(what) {
    $("cell-status").textContent = what || "";
    $("cells").setAttribute("aria-busy", what ? "true" : "false");
  }

  function unitButton(unit, label) {
    var b = CharLM.el("button", "cl-unit-pick", label);
    b.type = "button";
    b.dataset.unit = String(unit);
    b.addEventListener("click", function () { $("cell-unit").value = String(unit); inside(); });
    return b;
  }

  function signed(r) { return (r >= 0 ? "+" : "−") + Math.abs(r).toFixed(2); }

  function features(list) {
    /* Each feature with its most correlated units, as buttons that show that unit; a
       feature no unit follows closely (|r| < 0.3) says so instead of offering noise. */
    var box = $("cell-features");
    box.textContent = "";
    box.appendChild(CharLM.el("p", "cl-features-head",
      "the units that follow a feature of this text most closely (Pearson r); pick one to shade by it"));
    list.forEach(function (f) {
      var row = CharLM.el("div", "cl-feature");
      row.dataset.feature = f.feature;
      row.appendChild(CharLM.el("span", "cl-feature-name", f.description));
      var strong = f.cells.filter(function (c) { return Math.abs(c.r) >= WEAK; });
      if (!f.cells.length) row.appendChild(CharLM.el("span", "cl-feature-none", "constant in this text"));
      else if (!strong.length) {
        row.appendChild(CharLM.el("span", "cl-feature-none", "no unit follows it closely (best r " +
          signed(f.cells[0].r) + ")"));
      }
      strong.forEach(function (c) { row.appendChild(unitButton(c.cell, "unit " + c.cell + " (" + signed(c.r) + ")")); });
      box.appendChild(row);
    });
  }

  function drawStrip(r, chars) {
    /* Every unit of the layer (rows) after each character (columns), on the kind's
       diverging scale; a click on a column, or a character chosen in the unit's view,
       lists the units most active there. */
    var box = $("cell-strip");
    box.textContent = "";
    strip = { r: r, chars: chars };
    var H = r.series.length, T = chars.length;
    if (!H || !T) return;
    var cw = Math.max(1, Math.min(6, Math.floor(Math.max(box.clientWidth, 280) / T)));
    var rh = Math.max(1, Math.min(4, Math.floor(240 / H)));
    var canvas = document.createElement("canvas");
    canvas.width = T * cw;
    canvas.height = H * rh;
    canvas.className = "cl-strip-canvas";
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "heat strip: all " + H + " units (rows) after each of " + T +
      " characters (columns)");
    var ctx = canvas.getContext("2d"), img = ctx.createImageData(canvas.width, canvas.height);
    var span = r.high - r.low;
    for (var u = 0; u < H; u++) {
      var values = r.series[u].values;
      for (var x = 0; x < T; x++) {
        var rgb = CharLM.diverging(2 * (values[x] - r.low) / span - 1);
        for (var dy = 0; dy < rh; dy++) {
          for (var dx = 0; dx < cw; dx++) {
            var o = 4 * ((u * rh + dy) * canvas.width + x * cw + dx);
            img.data[o] = rgb[0]; img.data[o + 1] = rgb[1]; img.data[o + 2] = rgb[2]; img.data[o + 3] = 255;
          }
        }
      }
    }
    ctx.putImageData(img, 0, 0);
    var more = Array.from(last.text).length - T;
    box.appendChild(CharLM.el("p", "cl-features-head", "all " + H + " units of layer " + r.layer +
      " (one row each) after each character" + (more > 0 ? " of the first " + T + " (" + more +
      " more not drawn: the strip asks for at most " + STRIP_VALUES.toLocaleString() + " values)" : "") +
      "; click a column for the units most active there"));
    var scroller = CharLM.el("div", "cl-strip-scroll");
    scroller.appendChild(canvas);
    box.appendChild(scroller);
    box.appendChild(CharLM.el("div", "cl-strip-top"));
    canvas.addEventListener("click", function (ev) {
      var rect = canvas.getBoundingClientRect();
      var x = Math.floor((ev.clientX - rect.left) * canvas.width / rect.width / cw);
      mostActive(Math.max(0, Math.min(T - 1, x)));
    });
  }

  function mostActive(x) {
    /* The units furthest from the middle of their range after character `x` of the
       read text, as buttons that shade the text by that unit. */
    var top = $("cell-strip").querySelector(".cl-strip-top");
    if (!strip || !top || x >= strip.chars.length) return;
    var r = strip.r, mid = (r.low + r.high) / 2;
    var ranked = r.series.map(function (s) { return { cell: s.cell, v: s.values[x] }; })
      .sort(function (a, b) { return Math.abs(b.v - mid) - Math.abs(a.v - mid); })
      .slice(0, MOST_ACTIVE);
    top.textContent = "";
    top.dataset.index = String(x);
    top.appendChild(CharLM.el("span", "cl-feature-name", "most active after " +
      CharLM.charName(strip.chars[x]) + " (character " + x + " read):"));
    ranked.forEach(function (u) { top.appendChild(unitButton(u.cell, "unit " + u.cell + " (" + u.v.toFixed(2) + ")")); });
  }

  function activations(body) {
    return I.api("/activations", body).then(function (r) {
      if (!r.ok) throw new Error((r.data.error || {}).message || "the service answered " + r.status);
      return r.data;
    });
  }

  function inside() {
    /* The strip, the chosen unit's view and the features, for the text as it is. */
    if (!$("cells").open || !I.model()) return Promise.resolve();
    var a = cellControls(), n = ++asked.cells;
    if (!a) return Promise.resolve();
    var unit = Number($("cell-unit").value);
    I.save({ cells: { open: true, layer: $("cell-layer").value, kind: $("cell-kind").value, unit: $("cell-unit").value } });
    if (!Number.isInteger(unit) || unit < 0 || unit >= a.hidden_size) {
      // Said here, where the unit was asked for; the views below show no other unit.
      cellError("“unit” must be a whole number from 0 to " + (a.hidden_size - 1) + ".");
      $("cell-view").textContent = "";
      return Promise.resolve();
    }
    cellError("");
    var read = I.readable(last.text), chars = Array.from(read.text);
    if (!chars.length) {
      ["cell-view", "cell-features", "cell-strip"].forEach(function (id) { $(id).textContent = ""; });
      I.current($("cells"));
      return Promise.resolve();
    }
    var base = { model: I.model(), layer: Number($("cell-layer").value), kind: $("cell-kind").value };
    var all = [];
    for (var u = 0; u < a.hidden_size; u++) all.push(u);
    var width = Math.max(1, Math.floor(STRIP_VALUES / a.hidden_size));
    var stripChars = chars.slice(0, width);
    I.changing($("cells"));
    cellBusy("reading the model's units…");
    var one = activations(Object.assign({ text: read.text, cells: [unit], top: 5 }, base));
    // The strip on its own: a server with a lower cap on values refuses it, not the rest.
    var every = activations(Object.assign({ text: stripChars.join(""), cells: all, top: 0 }, base))
      .catch(function (e) { return { refused: String(e.message || e) }; });
    return Promise.all([one, every]).then(function (got) {
      if (n !== asked.cells) return;
      var r = got[0];
      features(r.features);
      var view = CharLM.renderCells($("cell-view"), Object.assign({
        text: r.text, values: r.series[0].values, low: r.low, high: r.high,
        unit: unit, layer: r.layer, kind: r.kind,
      }, viewChoices()));
      view.box.addEventListener("click", function () { mostActive(view.selected()); });
      view.box.addEventListener("keyup", function () { mostActive(view.selected()); });
      if (read.left) {
        $("cell-view").insertBefore(CharLM.el("p", "cl-features-head", read.left +
          " character" + (read.left === 1 ? "" : "s") + " the model does not know left out"),
        $("cell-view").firstChild);
      }
      if (got[1].refused) {
        $("cell-strip").textContent = "";
        $("cell-strip").appendChild(CharLM.el("p", "cl-features-head", "no heat strip: " + got[1].refused));
      } else {
        drawStrip(got[1], stripChars);
      }
      I.current($("cells"));
    }).catch(function (e) { if (n === asked.cells) cellError(String(e.message || e)); })
      .then(function () { if (n === asked.cells) cellBusy(""); });
  }

  // -- a feature of the user's own ---------------------------------------------------

  function matches(source, text) {
    /* Spans [start, end) of `text` (in characters, not UTF-16 units) that the regular
       expression `source` matches; throws for one that does not compile. */
    var re = new RegExp(source, "gmu"), spans = [], m;
    var cp = [], k = 0;  // UTF-16 offset -> character index
    for (var i = 0; i < text.length; i++) {
      cp[i] = k;
      var code = text.charCodeAt(i);
      if (!(code >= 0xd800 && code <= 0xdbff)) k++;
    }
    cp[text.length] = k;
    while ((m = re.exec(text)) !== null && spans.length < 10000) {
      if (m[0].length === 0) { re.lastIndex++; continue; }
      spans.push([cp[m.index], cp[m.index + m[0].length]]);
    }
    return spans;
  }

  function rankBy(spans, what) {
    /* The units most correlated with 1 inside `spans` of the read text, 0 elsewhere. */
    var box = $("feature-result"), n = ++asked.feature;
    box.textContent = "";
    if (!spans.length) { cellError(what + " marks no character of this text."); return Promise.resolve(); }
    cellError("");
    var body = {
      model: I.model(), text: I.readable(last.text).text, layer: Number($("cell-layer").value),
      kind: $("cell-kind").value, cells: [], top: MOST_ACTIVE, marked: spans,
    };
    cellBusy("ranking the units…");
    return activations(body).then(function (r) {
      if (n !== asked.feature) return;
      var f = r.features[0], row = CharLM.el("div", "cl-feature cl-feature-own");
      var marked = spans.reduce(function (s, sp) { return s + sp[1] - sp[0]; }, 0);
      row.appendChild(CharLM.el("span", "cl-feature-name", what + " (" + marked + " characters):"));
      if (!f.cells.length) row.appendChild(CharLM.el("span", "cl-feature-none", "it marks every character"));
      f.cells.forEach(function (c) {
        var b = unitButton(c.cell, "unit " + c.cell + " (" + signed(c.r) + ")");
        b.dataset.r = String(c.r);
        if (Math.abs(c.r) < WEAK) b.classList.add("cl-weak");
        row.appendChild(b);
      });
      box.appendChild(row);
      box.scrollIntoView({ block: "nearest" });
    }).catch(function (e) { if (n === asked.feature) cellError(String(e.message || e)); })
      .then(function () { if (n === asked.feature) cellBusy(""); });
  }

  $("feature-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var source = $("feature-regex").value;
    if (!source) { cellError("Type a regular expression first."); return; }
    var spans;
    try { spans = matches(source, I.readable(last.text).text); } catch (e) {
      cellError("That is not a regular expression JavaScript reads: " + e.message);
      return;
    }
    I.save({ feature: source });
    rankBy(spans, "matches of /" + source + "/");
  });
  $("feature-range").addEventListener("click", function () {
    var r = I.range();
    if (!r) {
      cellError("Mark a range in the shaded text first: click a character, then Shift+click another (or Shift with an arrow key).");
      return;
    }
    var at = I.readable(last.text).at, lo = r[0], hi = r[1];
    while (lo <= hi && at[lo] < 0) lo++;
    while (hi >= lo && at[hi] < 0) hi--;
    rankBy(lo <= hi ? [[at[lo], at[hi] + 1]] : [], "the marked range " + r[0] + "–" + r[1]);
  });

  I.onAnalyzed(function (text, result) {
    if (result === undefined) {  // the text changed; its analysis is on its way
      if (!$("comparison").hidden) I.changing($("comparison"));
      if ($("cells").open) I.changing($("cells"));
      return;
    }
    last = { text: text, result: result };
    var names = Object.keys(I.models()).map(function (name) { return [name, name]; });
    I.fill($("compare"), [["", "none"]].concat(names), $("compare").value || I.saved().compare);
    compare();
    inside();
  });
  $("compare").addEventListener("change", function () { compare(true); });
  $("cells").addEventListener("toggle", function () {
    if (!$("cells").open) I.save({ cells: Object.assign(I.saved().cells || {}, { open: false }) });
    inside();
  });
  ["cell-layer", "cell-kind", "cell-unit"].forEach(function (id) {
    $(id).addEventListener("change", inside);
  });
  (function restore() {
    var kept = I.saved().cells;
    if (kept) {
      if (kept.unit !== undefined) $("cell-unit").value = kept.unit;
      $("cells").open = !!kept.open;
    }
    if (I.saved().feature) $("feature-regex").value = I.saved().feature;
  })();
})();
