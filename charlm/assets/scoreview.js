/* charlm score view: text shaded by the probability the model gave each character.
 *
 * Used by the service's inspector page and by the standalone HTML report written by
 * `charlm score --html`. It draws what it is given and fetches nothing:
 *
 *   CharLM.renderScore(root, {
 *     text: "...",               // the text that was scored
 *     steps: [...],              // /score steps: position, char, prob, rank, top_char,
 *                                //   top_prob, entropy_bits, top [{char, prob}]
 *     bits_per_char, min_prob, min_position,   // /score summary (optional)
 *     unknown: [{char, position}],             // characters outside the vocabulary
 *     continuation: [{char, prob, top}],       // generated characters (optional)
 *     continuationKind: "greedy" | "sampled",
 *     markers: false,                          // draw spaces and newlines as symbols
 *     colourBy: "probability" | "rank",        // shade by probability or by rank
 *     choose: function (item, char, how),      // offer alternatives: "replace" the
 *   })                                         //   item with char, or "continue" with it
 *
 * By default characters are drawn as themselves, so prose wraps between words; a
 * checkbox above the text redraws it with spaces, tabs and newlines as ␣ → ↵. A
 * user-perceived character of several code points (👍🏽, e + U+0301) is drawn as one unit
 * (Intl.Segmenter's grapheme clusters), shaded by the product of its code points'
 * probabilities; its tooltip lists each.
 *
 * Colour is the log-odds of the probability, log10(p / (1 - p)), from -3 (p = 0.001,
 * dark red) through 0 (p = 0.5, yellow) to 3 (p = 0.999, dark blue), so 85% and 99.9%
 * look clearly different.
 */
(function (global) {
  "use strict";

  // The pointer's last position on the page, from every view's point of view.
  var pointer = { x: -1, y: -1 };
  document.addEventListener("mousemove", function (ev) {
    pointer = { x: ev.clientX, y: ev.clientY };
  }, true);

  var STOPS = ["#a50026", "#d73027", "#f46d43", "#fee090", "#abd9e9", "#4575b4", "#313695"];
  var TICKS = [0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999];

  function scalePos(p) {
    var q = Math.min(Math.max(p, 1e-12), 1 - 1e-12);
    var x = Math.log10(q / (1 - q));
    return (Math.min(Math.max(x, -3), 3) + 3) / 6;
  }

  function hex(c) {
    return [1, 3, 5].map(function (i) { return parseInt(c.slice(i, i + 2), 16); });
  }

  function colourRgb(p) {
    var t = scalePos(p) * (STOPS.length - 1);
    var i = Math.min(Math.floor(t), STOPS.length - 2);
    var a = hex(STOPS[i]), b = hex(STOPS[i + 1]), f = t - i;
    return a.map(function (v, k) { return Math.round(v + (b[k] - v) * f); });
  }

  function colour(p) {
    return "rgb(" + colourRgb(p).join(",") + ")";
  }

  function luminance(rgb) {
    /* WCAG 2 relative luminance of an sRGB colour [r, g, b], 0-255. */
    var lin = rgb.map(function (v) {
      var c = v / 255;
      return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  }

  function inkOn(rgb) {
    /* Black or white, whichever contrasts more with the background `rgb`. */
    var l = luminance(rgb);
    return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000" : "#fff";
  }

  function inkFor(p) {
    /* The ink on the shade of `p`: at least 4.5:1 (WCAG AA) everywhere on this scale
       (4.58:1 at worst, near p = 0.99). */
    return inkOn(colourRgb(p));
  }

  function pct(p) {
    /* As a percentage with enough digits that nothing short of 1 reads as 100%, and
       small ones with two significant digits (0.064%), never in another notation. */
    if (p >= 1) return "100%";
    if (p >= 0.99) {
      var digits = Math.min(8, Math.max(2, Math.ceil(-Math.log10(1 - p)) - 1));
      return (Math.floor(p * 100 * Math.pow(10, digits)) / Math.pow(10, digits)).toFixed(digits) + "%";
    }
    if (p >= 0.001) return (p * 100).toFixed(2) + "%";
    if (p <= 0) return "0%";
    var places = Math.min(20, 1 - Math.floor(Math.log10(p * 100)));
    return (p * 100).toFixed(places) + "%";
  }

  var NAMES = { " ": "␣ space", "\n": "↵ newline", "\t": "→ tab", "\u00a0": "⍽ no-break space" };

  function charName(c) {
    /* A character as every tooltip names it: whitespace by a symbol and a word,
       anything else in quotes. */
    return NAMES[c] || JSON.stringify(c);
  }

  function charLabel(c) {
    /* The same without the quotes, for lists of characters (the next character's bars). */
    return NAMES[c] || c;
  }

  function shown(c, markers) {
    /* How a character is drawn: itself, so that prose reads and wraps as prose, or with
       `markers` spaces, tabs and newlines as visible symbols. */
    if (!markers) return c === "\n" ? "" : c;
    if (c === "\n") return "↵";
    if (c === "\t") return "→";
    if (c === " ") return "␣";
    return c;
  }

  var ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;" };

  function escape(text) {
    /* `text` as markup shows it. */
    return text.replace(/[&<>"]/g, function (c) { return ENTITIES[c]; });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function describe(item) {
    /* Lines of text about one character, for the tooltip and the live region. */
    var c = charName(item.char);
    switch (item.kind) {
      case "context":
        return [c + " at position " + item.position, "first character: context only, not predicted"];
      case "unknown":
        return [c + " at position " + item.position,
          "not in the model's vocabulary: skipped, the model reads on as if it were not there"];
      case "unscored":
        return [c + " at position " + item.position, "not scored: it follows an unknown character"];
      case "generated":
        return [
          c + " " + item.how + " after the text, with probability " + pct(item.prob),
          "alternatives: " + alternatives(item.top),
        ];
      default:
        if (item.parts) {
          return [
            c + " at position " + item.position + ": probability " + pct(item.prob) +
              " for the whole character",
            item.parts.length + " code points, each scored by the model: " +
              item.parts.map(function (p) {
                return "U+" + p.char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") +
                  " " + pct(p.prob);
              }).join(", "),
            "alternatives to the first: " + alternatives(item.top),
          ];
        }
        return [
          c + " at position " + item.position + ": probability " + pct(item.prob) +
            ", rank " + item.rank + (item.rank === 1 ? " (top choice)" : "") +
            (item.generated ? " (generated)" : ""),
          "model's top choice " + charName(item.top_char) + " " + pct(item.top_prob) +
            "; entropy " + item.entropy_bits.toFixed(3) + " bits",
          "alternatives: " + alternatives(item.top),
        ];
    }
  }

  function alternatives(top) {
    if (!top || !top.length) return "none listed";
    return top.map(function (a) { return charName(a.char) + " " + pct(a.prob); }).join(", ");
  }

  function rankIn(top, c) {
    /* A character's rank from a likeliest-first list; undefined if it is not listed. */
    for (var k = 0; k < top.length; k++) if (top[k].char === c) return k + 1;
    return undefined;
  }

  function items(data) {
    /* One entry per drawn character, in order. */
    var out = [], text = data.text || "";
    var byPos = {};
    (data.steps || []).forEach(function (s) { byPos[s.position] = s; });
    var unknown = {};
    (data.unknown || []).forEach(function (u) { unknown[u.position] = true; });
    var known = 0;  // characters read so far: the first is context, later ones unscored
    // A text's characters from `generatedFrom` on were made by the model (the report
    // of a text with its continuation): scored like the rest, and marked.
    var from = data.generatedFrom === undefined || data.generatedFrom === null ? Infinity
      : data.generatedFrom;
    Array.from(text).forEach(function (c, i) {
      var s = byPos[i];
      if (unknown[i]) { out.push({ kind: "unknown", char: c, position: i }); return; }
      known += 1;
      if (s) out.push(Object.assign({ kind: "scored", generated: i >= from }, s));
      else out.push({ kind: known > 1 ? "unscored" : "context", char: c, position: i });
    });
    out = graphemes(text, out);
    (data.continuation || []).forEach(function (s, j) {
      out.push({
        kind: "generated", char: s.char, prob: s.prob, top: s.top || [],
        rank: s.rank || rankIn(s.top || [], s.char),
        position: Array.from(text).length + j, how: data.continuationKind === "sampled" ? "sampled" : "chosen greedily",
        index: j,
      });
    });
    return out;
  }

  function graphemes(text, chars) {
    /* `chars` (one item per code point of `text`) with each user-perceived character of
       several code points (an emoji with a skin tone, a letter and a combining accent)
       merged into one item, so that it is drawn as one glyph. The model reads code
       points, so a merged item's probability is the product of its parts' (the
       probability of the whole, given the text before it), and it keeps its parts. */
    if (typeof Intl === "undefined" || !Intl.Segmenter) return chars;
    var out = [], cp = 0;
    Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text))
      .forEach(function (seg) {
        var n = Array.from(seg.segment).length, parts = chars.slice(cp, cp + n);
        cp += n;
        if (n === 1) { out.push(parts[0]); return; }
        var kinds = parts.map(function (p) { return p.kind; });
        var kind = ["unknown", "unscored", "context"].filter(function (k) {
          return kinds.indexOf(k) >= 0;
        })[0] || "scored";
        var unit = Object.assign({}, parts[0], { kind: kind, char: seg.segment, parts: parts });
        if (kind === "scored") {
          unit.prob = parts.reduce(function (m, p) { return m * p.prob; }, 1);
        }
        out.push(unit);
      });
    return out;
  }

  // Shading by rank, as GLTR does for words: was the character the model's first choice,
  // in its top 5, its top 20, or further down?
  var RANKS = [
    { upTo: 1, label: "top choice", colour: "#4caf50" },
    { upTo: 5, label: "top 5", colour: "#ffd54f" },
    { upTo: 20, label: "top 20", colour: "#ef5350" },
    { upTo: Infinity, label: "beyond 20", colour: "#8e24aa" },
  ];

  function rankBucket(rank) {
    for (var k = 0; k < RANKS.length; k++) if (rank <= RANKS[k].upTo) return k;
    return RANKS.length - 1;
  }

  function shade(it, byRank) {
    /* [background, ink] of a shaded item. */
    if (byRank && it.rank) {
      var c = RANKS[rankBucket(it.rank)].colour;
      return [c, inkOn(hex(c))];
    }
    return [colour(it.prob), inkFor(it.prob)];
  }

  function rankLegend(list) {
    var box = el("div", "cl-legend cl-rank-legend");
    box.appendChild(el("span", "cl-legend-label",
      "rank of each character among the model's choices (counts in this text)"));
    var row = el("div", "cl-rank-row");
    var counts = global.CharLM.histogram(list, "rank");
    RANKS.forEach(function (r, k) {
      var item = el("span", "cl-rank-item");
      var sw = el("span", "cl-swatch");
      sw.style.background = r.colour;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(r.label + ": " + counts[k]));
      item.dataset.count = String(counts[k]);
      row.appendChild(item);
    });
    box.appendChild(row);
    return box;
  }

  function legend() {
    var box = el("div", "cl-legend");
    box.appendChild(el("span", "cl-legend-label", "probability the model gave each character"));
    var bar = el("div", "cl-legend-bar");
    bar.style.background = "linear-gradient(to right, " + STOPS.join(", ") + ")";
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", "colour scale from dark red (0.1%) through yellow (50%) to dark blue (99.9%)");
    TICKS.forEach(function (p) {
      var tick = el("span", "cl-tick", p >= 0.5 ? (p * 100) + "%" : (p * 100) + "%");
      tick.style.left = (scalePos(p) * 100) + "%";
      bar.appendChild(tick);
    });
    box.appendChild(bar);
    return box;
  }

  function classOf(it, markers) {
    /* A span's classes: its kind; a newline drawn as itself; a character the model
       made. */
    return "cl-ch cl-" + it.kind + (it.char === "\n" && !markers ? " cl-nl" : "") +
      (it.generated ? " cl-generated" : "");
  }

  function spanMarkup(it, i, markers, attrs) {
    /* One item's span, as markup (the parser builds 5,000 spans in a fifth of the time
       separate DOM calls take). */
    var cls = classOf(it, markers);
    var extra = "";
    Object.keys(attrs).forEach(function (k) {
      if (attrs[k] !== undefined) extra += " data-" + k + "=\"" + escape(String(attrs[k])) + "\"";
    });
    return "<span class=\"" + cls + "\" data-index=\"" + i + "\"" + extra + ">" +
      escape(shown(it.char, markers)) + (it.char === "\n" ? "\n" : "") + "</span>";
  }

  function same(a, b) {
    /* Whether a span drawn for item `a` is right for item `b` of the same character. */
    return a.kind === b.kind && a.prob === b.prob && a.rank === b.rank &&
      a.pending === b.pending && a.generated === b.generated && a.value === b.value &&
      a.diff === b.diff;
  }

  function shadedText(root, list, opts) {
    /* The text as one span per item, shaded by `opts.shade(item)` ([background, ink], or
       null to leave it plain), with a tooltip of `opts.describe(item)` on hover, focus and
       keyboard selection: left and right step, up and down move a line, Home and End go
       to the ends; Shift with a click or an arrow marks a range (`opts.onRange(from, to)`,
       item indices, or (-1, -1) when it is cleared). With `opts.choose(item, char, how)`,
       the selected item's tooltip also offers its alternatives as buttons: replace it
       with one, or continue the text from there with one (how: "replace" or
       "continue"). Appends the text, its tooltip and a live region to `root`; returns
       {box, spans, select, show, hideTip, update}. `update(list)` redraws for a new list
       touching only the spans that changed: a keystroke in a long text inserts one span
       and repaints only the characters whose shade moved. `opts.attrs(item)` gives data
       attributes for its span ({name: value}; undefined values are left out). */
    var markers = !!opts.markers, spans = [], selected = -1, range = null;
    var attrsOf = opts.attrs || function () { return {}; };
    var textBox = el("div", "cl-text" + (markers ? " cl-marked" : ""));
    textBox.tabIndex = 0;
    textBox.setAttribute("role", "group");
    textBox.setAttribute("aria-label", opts.label + "; left and right arrows step through the " +
      "characters, up and down move a line, Home and End go to the ends, Shift with an " +
      "arrow or a click marks a range");
    textBox.innerHTML = list.map(function (it, i) {
      return spanMarkup(it, i, markers, attrsOf(it));
    }).join("");
    spans = Array.prototype.slice.call(textBox.children);
    // Each span's shade is set through CSSOM (the page's content security policy refuses
    // style attributes in markup), and remembered, so that a redraw sets only new ones.
    var paints = spans.map(function (span, i) { return paintSpan(span, list[i], ""); });
    var classes = list.map(function (it) { return classOf(it, markers); });
    var datas = list.map(attrsOf);  // what each span's data attributes say

    function paintSpan(span, it, before) {
      var paint = opts.shade(it);
      var css = paint ? "background:" + paint[0] + ";color:" + paint[1] : "";
      if (css !== before) span.style.cssText = css;
      return css;
    }

    function update(next) {
      /* Redraw for `next`: the spans of the characters that differ from the current
         ones (after the common beginning, before the common end) are replaced; every
         other span keeps its node, and changes only where its class, shade or data
         changed. */
      var n = list.length, m = next.length, head = 0, tail = 0;
      while (head < n && head < m && list[head].char === next[head].char) head++;
      while (tail < n - head && tail < m - head &&
             list[n - 1 - tail].char === next[m - 1 - tail].char) tail++;
      var scratch = document.createElement("div");
      scratch.innerHTML = next.slice(head, m - tail).map(function (it, k) {
        return spanMarkup(it, head + k, markers, attrsOf(it));
      }).join("");
      var fresh = Array.prototype.slice.call(scratch.children);
      var anchor = spans[n - tail] || null;
      for (var k = head; k < n - tail; k++) textBox.removeChild(spans[k]);
      fresh.forEach(function (span) { textBox.insertBefore(span, anchor); });
      spans = spans.slice(0, head).concat(fresh, spans.slice(n - tail));
      paints = paints.slice(0, head).concat(fresh.map(function () { return null; }),
        paints.slice(n - tail));
      var before = list;
      list = next;
      classes = classes.slice(0, head).concat(fresh.map(function () { return null; }),
        classes.slice(n - tail));
      datas = datas.slice(0, head).concat(fresh.map(function () { return null; }),
        datas.slice(n - tail));
      for (var i = 0; i < m; i++) {
        var span = spans[i], it = list[i];
        var isNew = paints[i] === null;
        if (!isNew) {
          var old = before[i < head ? i : i - m + n];
          if (i >= head && m !== n) span.dataset.index = String(i);
          if (same(old, it)) continue;  // nothing drawn from it changed
        }
        paints[i] = paintSpan(span, it, isNew ? "" : paints[i]);
        var cls = classOf(it, markers), attrs = attrsOf(it);
        if (isNew) { classes[i] = cls; datas[i] = attrs; continue; }
        if (classes[i] !== cls) {  // keeping what marks the selection, the pointer, the range
          var keep = span.className.split(" ").filter(function (c) {
            return c === "cl-selected" || c === "cl-pointed" || c === "cl-in-range";
          });
          span.className = keep.length ? cls + " " + keep.join(" ") : cls;
          classes[i] = cls;
        }
        var was = datas[i];
        for (var key in attrs) {
          if (attrs[key] === was[key]) continue;
          if (attrs[key] === undefined) span.removeAttribute("data-" + key);
          else span.setAttribute("data-" + key, String(attrs[key]));
        }
        datas[i] = attrs;
      }
      api.spans = spans;
      if (selected >= m) selected = m - 1;
      if (range) markRange(Math.min(range[0], m - 1), Math.min(range[1], m - 1));
      if (!tip.hidden && selected >= 0) show(selected, false);
    }

    // One listener each for the whole text, not three per character.
    function spanOf(ev) {
      var t = ev.target.closest ? ev.target.closest(".cl-ch") : null;
      return t && t.parentNode === textBox ? Number(t.dataset.index) : -1;
    }
    textBox.addEventListener("mouseover", function (ev) {
      var i = spanOf(ev);
      // After the keyboard or a link scrolled the text, the character that lands under
      // a pointer that has not moved is not the one being looked at.
      if (i < 0 || (held && ev.clientX === held.x && ev.clientY === held.y)) return;
      held = null;
      show(i, false);
    });
    textBox.addEventListener("mouseout", function (ev) {
      var i = spanOf(ev);
      var to = ev.relatedTarget;
      if (i >= 0 && selected !== i && !textBox.contains(to) && !tip.contains(to)) hideTip();
    });
    textBox.addEventListener("mousedown", function (ev) {
      if (ev.shiftKey) ev.preventDefault();  // Shift marks a range, not a text selection
    });
    textBox.addEventListener("click", function (ev) {
      var i = spanOf(ev);
      if (i < 0) return;
      if (ev.shiftKey && selected >= 0) { extend(i); return; }
      clearRange();
      select(i);
    });
    root.appendChild(textBox);

    var tip = el("div", "cl-tip");
    tip.setAttribute("role", "tooltip");
    tip.hidden = true;
    root.appendChild(tip);
    var live = el("div", "cl-live");
    live.setAttribute("aria-live", "polite");
    root.appendChild(live);

    function choices(it) {
      /* Buttons for the selected item's alternatives, when the page can act on them. */
      var alts = (it.top || []).filter(function (a) { return a.char !== it.char; });
      if (!opts.choose || it.parts || !alts.length ||
          !isShaded(it)) return null;
      var box = el("div", "cl-choices");
      box.appendChild(el("div", "cl-choices-head", "instead of " + charName(it.char) + ":"));
      alts.forEach(function (a) {
        var row = el("div", "cl-choice");
        row.appendChild(el("span", "cl-choice-char", charName(a.char) + " " + pct(a.prob)));
        [["replace", "replace"], ["continue", "continue from here"]].forEach(function (b) {
          var btn = el("button", "cl-choice-" + b[0], b[1]);
          btn.type = "button";
          btn.dataset.char = a.char;
          btn.addEventListener("click", function () { opts.choose(list[selected] || it, a.char, b[0]); });
          row.appendChild(btn);
        });
        box.appendChild(row);
      });
      return box;
    }

    function show(i, announce, at) {
      /* The tooltip of item `i`, beside its character, or beside the rectangle `at` (the
         point of a plot that pointed at it) when given. */
      var lines = opts.describe(list[i]);
      if (range && opts.rangeLine) lines = lines.concat([opts.rangeLine(range[0], range[1])]);
      tip.textContent = "";
      lines.forEach(function (line, k) { tip.appendChild(el("div", k ? "" : "cl-tip-head", line)); });
      var acts = i === selected && !at ? choices(list[i]) : null;
      tip.classList.toggle("cl-tip-pinned", !!acts);
      if (acts) tip.appendChild(acts);
      tip.hidden = false;
      var r = at || spans[i].getBoundingClientRect(), box = root.getBoundingClientRect();
      var left = Math.min(Math.max(0, r.left - box.left), Math.max(0, box.width - tip.offsetWidth));
      tip.style.left = left + "px";
      // Below the character, or above it when the window has no room below.
      var below = r.bottom + 6 + tip.offsetHeight <= window.innerHeight;
      var above = r.top - 6 - tip.offsetHeight >= 0;
      tip.style.top = (below || !above ? r.bottom - box.top + 6
        : r.top - box.top - 6 - tip.offsetHeight) + "px";
      if (announce) live.textContent = lines.join(". ");
    }
    function hideTip() { tip.hidden = true; }

    // Where the pointer was when a keyboard or link selection scrolled the text: until it
    // moves from there, that selection owns the tooltip.
    var held = null;

    function select(i, scroll) {
      if (selected >= 0 && spans[selected]) spans[selected].classList.remove("cl-selected");
      selected = Math.max(0, Math.min(spans.length - 1, i));
      if (!spans.length) return;
      spans[selected].classList.add("cl-selected");
      if (scroll) {
        held = { x: pointer.x, y: pointer.y };  // (the page's last pointer position)
        spans[selected].scrollIntoView({ block: scroll, inline: "nearest" });
      }
      show(selected, true);
    }

    function markRange(from, to) {
      /* Items from..to (in either order) marked as the range. */
      var lo = Math.min(from, to), hi = Math.max(from, to);
      spans.forEach(function (span, k) { span.classList.toggle("cl-in-range", k >= lo && k <= hi); });
      range = [lo, hi];
    }
    var anchor = -1;
    function extend(i) {
      /* Shift: the range from where it was started to `i`; the selection moves there. */
      if (anchor < 0) anchor = selected;
      markRange(anchor, i);
      if (opts.onRange) opts.onRange(range[0], range[1]);
      select(i);
    }
    function clearRange() {
      anchor = -1;
      if (!range) return;
      spans.forEach(function (span) { span.classList.remove("cl-in-range"); });
      range = null;
      if (opts.onRange) opts.onRange(-1, -1);
    }

    function lineMove(dir) {
      /* The character on the next (dir 1) or previous (-1) drawn line nearest below or
         above the selected one; the last or first character when there is no such line. */
      var here = spans[selected].getBoundingClientRect();
      var x = here.left + here.width / 2, half = Math.max(1, here.height / 2);
      var lineTop = null, best = dir > 0 ? spans.length - 1 : 0, bestDist = Infinity;
      for (var k = selected + dir; k >= 0 && k < spans.length; k += dir) {
        var r = spans[k].getBoundingClientRect();
        if (Math.abs(r.top - here.top) < half) continue;  // still on this line
        if (lineTop === null) lineTop = r.top;
        else if (Math.abs(r.top - lineTop) >= half) break;  // past the next line
        var d = Math.abs(r.left + r.width / 2 - x);
        if (d < bestDist) { bestDist = d; best = k; }
      }
      return best;
    }

    textBox.addEventListener("keydown", function (ev) {
      var steps = { ArrowRight: 1, ArrowLeft: -1 }, lines = { ArrowDown: 1, ArrowUp: -1 };
      var from = selected < 0 ? 0 : selected, to;
      if (ev.key in steps) to = from + steps[ev.key];
      else if (ev.key in lines) to = selected < 0 ? 0 : lineMove(lines[ev.key]);
      else if (ev.key === "Home") to = 0;
      else if (ev.key === "End") to = spans.length - 1;
      else if (ev.key === "Escape") { hideTip(); clearRange(); return; }
      else return;
      to = Math.max(0, Math.min(spans.length - 1, to));
      if (ev.shiftKey && selected >= 0) {
        extend(to);
        spans[to].scrollIntoView({ block: "nearest", inline: "nearest" });
      } else {
        clearRange();
        select(to, "nearest");
      }
      ev.preventDefault();
    });
    textBox.addEventListener("focus", function () { if (selected < 0 && spans.length) select(0); });
    textBox.addEventListener("blur", function (ev) {
      if (!tip.contains(ev.relatedTarget)) hideTip();  // not when moving to its buttons
    });
    tip.addEventListener("focusout", function (ev) {
      if (!tip.contains(ev.relatedTarget) && ev.relatedTarget !== textBox) hideTip();
    });
    var api = {
      box: textBox, spans: spans, select: select, show: show, hideTip: hideTip, update: update,
      selected: function () { return selected; },
      range: function () { return range; },
      // True while the pointer rests where it was when a selection scrolled the text.
      holding: function () { return !!held && pointer.x === held.x && pointer.y === held.y; },
    };
    return api;
  }

  function viewToggles(root, data, redraw) {
    /* "shade by" (when the view has choices) and "show spaces and newlines", above the
       text; each redraws the view through `redraw(changes)`, and tells `data.onView`
       (so that a page keeps the choice for its next drawing). */
    var changed = function (changes) {
      if (data.onView) data.onView(changes);
      redraw(changes);
    };
    if (data.shadeChoices) {
      var shadeBy = el("label", "cl-toggle");
      var pick = el("select");
      pick.className = "cl-colour-by";
      data.shadeChoices.forEach(function (o) {
        var opt = el("option", "", o[1]);
        opt.value = o[0];
        pick.appendChild(opt);
      });
      pick.value = data.colourBy || data.shadeChoices[0][0];
      pick.addEventListener("change", function () {
        changed({ colourBy: pick.value });
        var again = root.querySelector(".cl-colour-by");
        if (again) again.focus();
      });
      shadeBy.appendChild(document.createTextNode("shade by "));
      shadeBy.appendChild(pick);
      root.appendChild(shadeBy);
    }
    var toggle = el("label", "cl-toggle");
    var box = el("input");
    box.type = "checkbox";
    box.checked = !!data.markers;
    box.className = "cl-markers-toggle";
    box.addEventListener("change", function () {
      changed({ markers: box.checked });
      var again = root.querySelector(".cl-markers-toggle");
      if (again) again.focus();
    });
    toggle.appendChild(box);
    toggle.appendChild(document.createTextNode(" show spaces and newlines"));
    root.appendChild(toggle);
  }

  var SHADE_CHOICES = [["probability", "probability"], ["rank", "rank (top 1, 5, 20, beyond)"]];

  // A diverging scale for signed quantities (a unit's activation, a difference in
  // surprise): blue below the middle, near-white at it, red above (ColorBrewer RdBu).
  var COLD = [33, 102, 172], MIDDLE = [247, 247, 247], HOT = [178, 24, 43];

  function diverging(t) {
    /* [r, g, b] for t in [-1, 1]. */
    var u = Math.max(-1, Math.min(1, t)), end = u < 0 ? COLD : HOT, f = Math.abs(u);
    return MIDDLE.map(function (m, k) { return Math.round(m + (end[k] - m) * f); });
  }

  function divergingLegend(caption, ticks) {
    /* A bar of the diverging scale with `ticks` [[t in -1..1, label], ...] under it. */
    var box = el("div", "cl-legend");
    box.appendChild(el("span", "cl-legend-label", caption));
    var bar = el("div", "cl-legend-bar");
    bar.style.background = "linear-gradient(to right, rgb(" + COLD.join(",") + "), rgb(" +
      MIDDLE.join(",") + "), rgb(" + HOT.join(",") + "))";
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", caption + ": " + ticks.map(function (t) { return t[1]; }).join(", "));
    ticks.forEach(function (t) {
      var tick = el("span", "cl-tick", t[1]);
      tick.style.left = ((t[0] + 1) * 50) + "%";
      bar.appendChild(tick);
    });
    box.appendChild(bar);
    return box;
  }

  function isShaded(it) {
    return it.kind === "scored" || it.kind === "generated";
  }

  function isMade(it) {
    /* A character the model made: a continuation's, or a report's generated part. */
    return it.kind === "generated" || !!it.generated;
  }

  function stats(list) {
    /* How many of `list`'s items were shaded, and their mean surprise in bits. */
    var shaded = list.filter(isShaded);
    var bits = shaded.reduce(function (s, it) { return s - Math.log2(Math.max(it.prob, 1e-30)); }, 0);
    return { n: shaded.length, bpc: shaded.length ? bits / shaded.length : NaN };
  }

  function statLine(label, st) {
    return label + ": " + st.n + " character" + (st.n === 1 ? "" : "s") +
      (st.n ? ", " + st.bpc.toPrecision(4) + " bits/char" : "");
  }

  function summarize(box, drawn) {
    /* The summary above the text: counts, bits per character, the least likely
       character (a link to it), unknown characters, and the written text against the
       model's continuation when there is one. */
    var list = drawn.list, data = drawn.data;
    box.textContent = "";
    var scored = list.filter(function (it) { return it.kind === "scored"; });
    if (scored.length) {
      var worst = scored.reduce(function (a, b) { return b.prob < a.prob ? b : a; });
      var bpc = data.bits_per_char !== undefined && data.bits_per_char !== null ? data.bits_per_char
        : stats(scored).bpc;
      box.appendChild(el("span", "cl-stat", scored.length + " characters scored"));
      box.appendChild(el("span", "cl-stat", bpc.toPrecision(4) + " bits/char"));
      var link = el("button", "cl-stat cl-min",
        "min probability " + pct(worst.prob) + " at position " + worst.position +
        " (" + charName(worst.char) + ")");
      link.type = "button";
      link.addEventListener("click", function () {
        drawn.view.box.focus({ preventScroll: true });
        drawn.view.select(drawn.unitAt[worst.position], "center");
      });
      box.appendChild(link);
    }
    var unknown = data.unknown || [];
    if (unknown.length) {
      box.appendChild(el("span", "cl-stat cl-bad", unknown.length + " unknown character" +
        (unknown.length === 1 ? "" : "s") + ", skipped: " + unknown.slice(0, 5).map(function (x) {
          return charName(x.char) + " at " + x.position;
        }).join(", ") + (unknown.length > 5 ? ", …" : "")));
    }
    var made = list.filter(isMade);
    if (made.length) {
      var split = el("div", "cl-split");
      split.appendChild(el("span", "cl-stat cl-split-text",
        statLine("written", stats(list.filter(function (it) { return !isMade(it); })))));
      split.appendChild(el("span", "cl-stat cl-split-made", statLine("continuation", stats(made))));
      box.appendChild(split);
    }
  }

  function rangeStats(box, drawn) {
    /* Statistics of the marked range (Shift with a click or an arrow), below the text. */
    var r = drawn.view.range();
    box.textContent = "";
    box.hidden = !r;
    if (!r) return;
    var part = drawn.list.slice(r[0], r[1] + 1);
    var first = part[0].position, last = part[part.length - 1].position;
    var head = el("div", "cl-range-head");
    head.appendChild(el("span", "cl-stat", statLine("positions " + first + "–" + last, stats(part))));
    var clear = el("button", "cl-min cl-range-clear", "clear the range");
    clear.type = "button";
    clear.addEventListener("click", function () {
      drawn.view.box.focus({ preventScroll: true });
      drawn.view.box.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
    });
    head.appendChild(clear);
    box.appendChild(head);
    box.appendChild(global.CharLM.histograms(part, "in the range"));
  }

  function charts(box, drawn) {
    /* The surprise plot and the histograms: for the whole text, or the written text and
       the continuation apart. */
    var list = drawn.list, view = drawn.view;
    box.textContent = "";
    var hovered = -1;
    box.appendChild(global.CharLM.plot(list, function (pos) {
      view.box.focus({ preventScroll: true });
      view.select(drawn.unitAt[pos], "center");
    }, function (pos, at) {
      if (view.holding()) return;  // the plot moved under a resting pointer
      var spans = drawn.view.spans;
      if (hovered >= 0 && spans[hovered]) spans[hovered].classList.remove("cl-pointed");
      hovered = pos < 0 ? -1 : drawn.unitAt[pos];
      if (hovered < 0) {
        if (view.selected() >= 0) view.show(view.selected(), false); else view.hideTip();
        return;
      }
      spans[hovered].classList.add("cl-pointed");
      view.show(hovered, false, at);  // the tooltip at the plot, where the pointer is
    }, drawn.width));
    var made = list.filter(isMade);
    if (made.length) {
      box.appendChild(global.CharLM.histograms(list.filter(function (it) { return !isMade(it); }),
        "in the written text"));
      box.appendChild(global.CharLM.histograms(made, "in the continuation"));
    } else {
      box.appendChild(global.CharLM.histograms(list, ""));
    }
  }

  function renderScore(root, data) {
    /* Draw `data` into `root`; drawn again with the same view choices, only what changed
       is redrawn (the text's spans through `update`, the summary and charts anew). */
    var list = items(data), byRank = data.colourBy === "rank";
    var key = (data.markers ? "m" : "-") + (byRank ? "r" : "p");
    var drawn = root.__clScore;
    var unitAt = {};  // a position in the text (code points) -> the drawn unit holding it
    list.forEach(function (it, i) {
      (it.parts || [it]).forEach(function (p) { unitAt[p.position] = i; });
    });
    if (drawn && drawn.key === key && root.contains(drawn.view.box)) {
      Object.assign(drawn, { data: data, list: list, unitAt: unitAt });
      drawn.view.update(list);
      drawParts(drawn);
      return drawn.result;
    }
    root.textContent = "";
    root.classList.add("cl-view");
    drawn = { key: key, data: data, list: list, unitAt: unitAt, byRank: byRank };
    drawn.legend = el("div", "cl-legend-box");
    root.appendChild(drawn.legend);
    viewToggles(root, Object.assign({ shadeChoices: SHADE_CHOICES }, data), function (changes) {
      root.__clScore = null;  // drawn anew, from what was drawn last
      renderScore(root, Object.assign({}, drawn.data, changes));
    });
    drawn.summary = el("div", "cl-summary");
    root.appendChild(drawn.summary);  // above the text, where a long text starts
    drawn.view = shadedText(root, list, {
      markers: data.markers,
      label: "text shaded by " + (byRank ? "rank" : "probability"),
      shade: function (it) { return it.prob === undefined ? null : shade(it, byRank); },
      describe: describe,
      choose: data.choose,
      attrs: function (it) { return { prob: it.prob, rank: it.rank || undefined }; },
      onRange: function () { rangeStats(drawn.range, drawn); },
      rangeLine: function (a, b) {
        var part = drawn.list.slice(a, b + 1);
        return statLine("range " + part[0].position + "–" + part[part.length - 1].position,
          stats(part));
      },
    });
    drawn.range = el("div", "cl-range");
    drawn.range.setAttribute("aria-live", "polite");
    drawn.range.hidden = true;
    root.appendChild(drawn.range);
    drawn.charts = el("div", "cl-charts");
    root.appendChild(drawn.charts);
    drawn.result = {
      select: drawn.view.select,
      selectPosition: function (pos, scroll) {
        if (drawn.unitAt[pos] === undefined) return;
        drawn.view.box.focus({ preventScroll: true });
        drawn.view.select(drawn.unitAt[pos], scroll);
      },
      items: function () { return drawn.list; },
    };
    root.__clScore = drawn;
    drawn.width = drawn.view.box.clientWidth;  // measured once: reading it forces a layout
    drawParts(drawn);
    return drawn.result;
  }

  function pending(drawn) {
    /* Steps marked `pending` (an early answer for a long text changed part-way: the
       last text's, moved) say so: on the text (data-pending-from) and in a line above. */
    var first = null;
    for (var k = 0; k < drawn.list.length && first === null; k++) {
      if (drawn.list[k].pending) first = drawn.list[k].position;
    }
    var box = drawn.view.box;
    if (first === null) { box.removeAttribute("data-pending-from"); return; }
    box.dataset.pendingFrom = String(first);
    drawn.summary.appendChild(el("div", "cl-stat cl-pending-note",
      "from position " + first + " on, the shading is the last text's until the model has read to the end…"));
  }

  function drawParts(drawn) {
    drawn.legend.textContent = "";
    drawn.legend.appendChild(drawn.byRank ? rankLegend(drawn.list) : legend());
    summarize(drawn.summary, drawn);
    pending(drawn);
    rangeStats(drawn.range, drawn);
    charts(drawn.charts, drawn);
  }

  global.CharLM = Object.assign(global.CharLM || {}, {
    renderScore: renderScore, colour: colour, ink: inkFor, inkOn: inkOn, hex: hex,
    luminance: luminance, colourRgb: colourRgb, percent: pct, el: el, RANKS: RANKS,
    rankBucket: rankBucket, items: items, shadedText: shadedText, viewToggles: viewToggles,
    diverging: diverging, divergingLegend: divergingLegend, charName: charName,
    charLabel: charLabel,
    isShaded: isShaded,
  });
})(window);
