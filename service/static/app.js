/* The inspector page: asks the service's JSON endpoints and draws the answers with
 * CharLM.renderScore. All numbers come from the service; nothing is computed here. */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  // drawn: the model and text the view shows (without a continuation), so that asking
  // again for the same draws nothing new; refused: the model and text the server last
  // refused, which are not sent again until one of them changes.
  var state = {
    models: {}, continuation: null, kind: "greedy", seq: 0, cseq: 0, cache: {}, stream: null,
    drawn: null, refused: null,
    view: {}, history: [], reselect: null, shown: null,
  };

  var KEY = "charlm-api-key";
  var SAVED = "charlm-inspector";  // this tab's text, model and view choices
  var REFRESH_MS = 5000;
  var STALE_MS = 300;  // a panel not redrawn this long after a change says it is out of date

  function saved() {
    try { return JSON.parse(window.sessionStorage.getItem(SAVED) || "{}") || {}; } catch (e) { return {}; }
  }

  function save(changes) {
    /* Keep `changes` for this tab (sessionStorage): a reload brings them back. */
    try {
      window.sessionStorage.setItem(SAVED, JSON.stringify(Object.assign(saved(), changes)));
    } catch (e) { /* storage full or refused: the page still works, it forgets */ }
  }

  var timers = new Map();
  function changing(panel) {
    /* `panel`'s content no longer matches the text: unless it is redrawn soon, say so. */
    if (timers.has(panel)) return;
    timers.set(panel, setTimeout(function () {
      timers.delete(panel);
      panel.classList.add("cl-stale");
    }, STALE_MS));
  }

  function current(panel) {
    /* `panel` was redrawn for the text as it is. */
    clearTimeout(timers.get(panel));
    timers.delete(panel);
    panel.classList.remove("cl-stale");
  }

  function authHeaders() {
    /* The API key this tab was given, if any, as the request's header. */
    var key = window.sessionStorage.getItem(KEY);
    return key ? { Authorization: "Bearer " + key } : {};
  }

  function api(path, body, asked) {
    /* A server started with an API key answers 401 until the page sends it: ask for it
     * once, keep it for this tab only (sessionStorage), and retry. */
    var headers = authHeaders();
    var init = { headers: headers };
    if (body !== undefined) {
      init.method = "POST";
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      if (r.status === 401 && !asked) {
        var given = window.prompt("This charlm server needs its API key:");
        if (given) {
          window.sessionStorage.setItem(KEY, given.trim());
          return api(path, body, true);
        }
      }
      return r.json().then(function (data) { return { ok: r.ok, status: r.status, data: data }; });
    });
  }

  // The API's names for the form's fields, as the form labels them.
  var FIELDS = {
    continuation_length: "“continue by”", length: "“continue by”", temperature: "“temperature”",
    top_k: "“top-k”", top_p: "“top-p”", seed: "“seed”",
    text: "the text", prompt: "the text", model: "the model",
  };

  function inFormTerms(message) {
    return String(message).replace(/\b(continuation_length|length|temperature|top_k|top_p|seed|text|prompt|model)\b(?= (?:is|must|has|needs))/g,
      function (name) { return FIELDS[name]; });
  }

  function showError(message) { $("error").textContent = message ? inFormTerms(message) : ""; }

  function tell(message) {
    /* A line that is not an error (a stopped continuation), where the status goes. */
    $("status").textContent = message;
    $("status").classList.toggle("cl-done", !!message);
  }

  function failed(e) {
    /* A request that failed: say why, and mark the shading shown as out of date. */
    var message = e instanceof TypeError
      ? "The server could not be reached (has it stopped?); the shading below is out of date."
      : String(e.message || e) + " The shading below is out of date.";
    showError(message);
    $("view").classList.add("cl-stale");
  }

  function busy(on, what) {
    /* While a request runs: Continue is off, the view says it is busy, and a line says what
       is being done. */
    $("continue").disabled = on;
    $("view").setAttribute("aria-busy", on ? "true" : "false");
    $("status").classList.remove("cl-done");
    $("status").textContent = on ? what : "";
  }

  function setText(text, what) {
    /* Put `text` in place of the user's, keeping theirs to bring back with Undo. */
    var before = $("text").value;
    if (before === text) return;
    state.history.push({ text: before, what: what });
    if (state.history.length > 20) state.history.shift();
    $("text").value = text;
    showUndo();
    save({ text: text, history: state.history });
  }

  function showUndo() {
    var last = state.history[state.history.length - 1];
    $("undo").hidden = !last;
    if (last) $("undo").textContent = "Undo " + last.what;
  }

  function undo() {
    var last = state.history.pop();
    if (!last) return;
    $("text").value = last.text;
    showUndo();
    save({ text: last.text, history: state.history });
    state.continuation = null;
    tell("");
    schedule();
  }

  function model() { return $("model").value; }

  function describeModel(m) {
    if (!m) return "";
    var a = m.architecture, t = m.training || {};
    var parts = [
      m.vocab_size + " symbols",
      a.num_layers + " × " + a.hidden_size + " " + (a.cell || "lstm").toUpperCase(),
      m.parameters.toLocaleString() + " parameters",
    ];
    if (t.step) parts.push(t.step + " steps");
    if (t.best_val_loss !== null && t.best_val_loss !== undefined) {
      parts.push("best validation loss " + t.best_val_loss.toPrecision(4) + " nats/char");
    }
    return parts.join(" · ");
  }

  function showDiagnosis(m) {
    /* The training run's diagnosis, beside the model summary. Built with textContent
     * only: the findings come from a checkpoint file. */
    var box = $("model-diagnosis");
    box.textContent = "";
    var d = m && m.training && m.training.diagnosis;
    if (!d) return;
    var head = document.createElement("p");
    head.className = "cl-diagnosis-head";
    head.textContent = d.healthy
      ? "Training diagnosis: no detector fired; the run looked healthy."
      : "Training diagnosis: " + d.findings.length + " finding" + (d.findings.length > 1 ? "s" : "");
    box.appendChild(head);
    d.findings.forEach(function (f) {
      var item = document.createElement("details");
      var title = document.createElement("summary");
      title.textContent = f.name.replace(/_/g, " ") + " (step " + f.step + "): " + f.seen;
      item.appendChild(title);
      [["likely", f.causes], ["try", f.advice]].forEach(function (pair) {
        var line = document.createElement("p");
        line.textContent = pair[0] + ": " + pair[1];
        item.appendChild(line);
      });
      box.appendChild(item);
    });
  }

  function fill(select, options, keep) {
    /* Options [[value, label], ...] into `select` (rebuilt only when they changed),
       keeping `keep` chosen while it is listed. */
    var values = options.map(function (o) { return String(o[0]); });
    var listed = Array.from(select.options).map(function (o) { return o.value; });
    if (values.join("\n") !== listed.join("\n")) {
      select.textContent = "";
      options.forEach(function (o) {
        var opt = document.createElement("option");
        opt.value = String(o[0]);
        opt.textContent = o[1];
        select.appendChild(opt);
      });
    }
    if (keep !== undefined && values.indexOf(String(keep)) >= 0) select.value = String(keep);
  }

  function loadModels() {
    /* The server's models, into the list: the one chosen stays chosen while it exists.
       Resolves to true when the chosen model is new or has changed (retrained). */
    return api("/models").then(function (r) {
      var select = $("model"), chosen = select.value;
      var before = JSON.stringify(state.models[chosen] || null);
      var fresh = {};
      (r.data.models || []).forEach(function (m) { fresh[m.name] = m; });
      var names = Object.keys(fresh);
      // The first time: this tab's model, or the one that can read the most (the largest
      // vocabulary, then the most parameters), not the first by name.
      var listed = function (name) { return name && name in fresh ? name : null; };
      var want = listed(chosen) || listed(saved().model) || names.slice().sort(function (a, b) {
        return fresh[b].vocab_size - fresh[a].vocab_size || fresh[b].parameters - fresh[a].parameters;
      })[0];
      fill(select, names.map(function (name) { return [name, name]; }), want);
      names.forEach(function (name) {  // a retrained model's old scores are no use
        if (JSON.stringify(fresh[name]) !== JSON.stringify(state.models[name] || null)) {
          delete state.cache[name];
        }
      });
      state.models = fresh;
      if (!select.options.length) {
        showError("No models are loaded: train one into the server's checkpoints directory.");
      }
      var changed = JSON.stringify(state.models[model()] || null) !== before || model() !== chosen;
      if (changed) {
        $("model-info").textContent = describeModel(state.models[model()]);
        showDiagnosis(state.models[model()]);
      }
      return changed;
    });
  }

  function refreshModels() {
    /* Models trained or retrained while the page is open: pick them up, and score the
       text again with a model that changed. */
    return loadModels().then(function (changed) {
      if (changed) { state.continuation = null; state.drawn = state.refused = null; schedule(); }
    }).catch(function () { /* the next refresh, or a request, will say what is wrong */ });
  }

  function unknownIn(text, name) {
    /* Characters outside the model's vocabulary (listed by GET /models), with positions. */
    var m = state.models[name || model()];
    if (!m) return [];
    var known = new Set(m.vocab);
    var out = [];
    Array.from(text).forEach(function (c, i) { if (!known.has(c)) out.push({ char: c, position: i }); });
    return out;
  }

  var FIRST = 256;  // characters after an edit that are scored first in a long text

  function scoreWith(name, text, next, early) {
    /* /score of `text` by model `name`, characters it does not know skipped, asking only
       for the steps from the first character that differs from the text this model
       scored last: the steps before it cannot have changed (each depends only on the
       characters up to it). Resolves like api(); the answer's steps are the whole
       text's. With `next`, the answer also has the whole distribution of the character
       after the text.

       A long text changed part-way is scored in two requests: the `FIRST` characters
       after the change (the text cut there scores them exactly as the whole text does),
       handed to `early` at once with the old text's later steps, moved by the change's
       length and marked `pending`; then the rest, which the server reads on from where
       the first stopped. */
    var chars = Array.from(text), last = state.cache[name], start = 1;
    if (last) {
      var same = 0, n = Math.min(last.chars.length, chars.length);
      while (same < n && last.chars[same] === chars[same]) same++;
      start = Math.max(1, same);
    }
    var body = { model: name, text: text, alternatives: 5, start: start, on_unknown: "skip" };
    if (next) body.next_top = 0;
    var kept = start > 1 ? last.steps.filter(function (s) { return s.position < start; }) : [];
    var whole = function (head) {
      return api("/score", body).then(function (r) {
        if (!r.ok) return r;
        var steps = kept.concat(head, r.data.steps);
        state.cache[name] = { chars: chars, steps: steps };
        return { ok: true, status: r.status, data: Object.assign({}, r.data, { steps: steps }) };
      });
    };
    var cut = start + FIRST;
    if (!early || !last || chars.length < cut + FIRST) return whole([]);
    var first = { model: name, text: chars.slice(0, cut).join(""), alternatives: 5, start: start,
      on_unknown: "skip" };
    return api("/score", first).then(function (r) {
      if (!r.ok) return whole([]);
      early(Object.assign({}, r.data, {
        text: text, steps: kept.concat(r.data.steps, moved(last, chars, cut)),
        bits_per_char: undefined, unknown: unknownIn(text, name),
      }));
      body.start = cut;
      return whole(r.data.steps);
    });
  }

  function moved(last, chars, from) {
    /* The steps of the last text scored that lie in the end it shares with `chars`, at
       their positions in `chars` from `from` on, marked as pending. */
    var n = last.chars.length, m = chars.length, tail = 0;
    while (tail < n && tail < m && last.chars[n - 1 - tail] === chars[m - 1 - tail]) tail++;
    var shift = m - n;
    return last.steps.filter(function (s) {
      return s.position >= n - tail && s.position + shift >= from;
    }).map(function (s) { return Object.assign({}, s, { position: s.position + shift, pending: true }); });
  }

  function score(text, name, early) {
    /* Score `text` with model `name` (default: the chosen one). Characters the model
       does not know are skipped (and listed); with fewer than two it knows, there is
       nothing to score. `early(result)`: a first result for a long text changed
       part-way (scoreWith). */
    name = name || model();
    var unknown = unknownIn(text, name);
    var result = { text: text, score: null, unknown: unknown };
    if (Array.from(text).length - unknown.length < 2) return Promise.resolve(result);
    var first = early && function (data) {
      early({ text: text, score: data, unknown: data.unknown });
    };
    return scoreWith(name, text, true, first).then(function (r) {
      if (r.ok) { result.score = r.data; result.unknown = r.data.unknown; return result; }
      var err = r.data.error || {}, e = new Error(err.message || ("the service answered " + r.status));
      e.status = r.status;
      throw e;
    });
  }

  function readable(text) {
    /* `text` as the chosen model reads it: the characters it knows (unknown ones
       skipped), where each of the text's characters landed in it (-1 for one skipped),
       and how many were skipped. */
    var unknown = {}, at = [], kept = [];
    unknownIn(text).forEach(function (u) { unknown[u.position] = true; });
    Array.from(text).forEach(function (c, i) {
      at.push(unknown[i] ? -1 : kept.length);
      if (!unknown[i]) kept.push(c);
    });
    return { text: kept.join(""), at: at, left: at.length - kept.length };
  }

  // Characters that text copied from the web brings, and what a model that does not
  // know them most likely knows instead.
  var LOOKALIKES = {
    "\u2019": "'", "\u2018": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
    "\u201c": "\"", "\u201d": "\"", "\u201e": "\"", "\u2033": "\"", "\u00ab": "\"", "\u00bb": "\"",
    "\u2013": "-", "\u2014": "-", "\u2012": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2007": " ", "\u200a": " ", "\u3000": " ",
    "\u2026": "...", "\t": " ", "\r": "", "\u200b": "", "\ufeff": "",
  };

  function offers(text, unknown) {
    /* Under a text with unknown characters: one click to put in their place the ones
       the model knows (’ -> ', “ -> ", – -> -, no-break space -> space), each or all,
       and the other models that know every character. */
    var box = $("offers");
    box.textContent = "";
    if (!unknown.length) { box.hidden = true; return; }
    var m = state.models[model()], known = new Set(m ? m.vocab : []);
    var counts = {};
    unknown.forEach(function (u) { counts[u.char] = (counts[u.char] || 0) + 1; });
    var maps = Object.keys(counts).filter(function (c) {
      return c in LOOKALIKES && Array.from(LOOKALIKES[c]).every(function (t) { return known.has(t); });
    });
    var bare = CharLM.charLabel;
    var name = function (c) { return c === "" ? "nothing" : bare(c); };
    var head = CharLM.el("p", "cl-offers-head", unknown.length + " character" +
      (unknown.length === 1 ? "" : "s") + " this model does not know " +
      (unknown.length === 1 ? "is" : "are") + " skipped: " +
      Object.keys(counts).slice(0, 8).map(function (c) { return bare(c) + " ×" + counts[c]; }).join(", ") + ".");
    box.appendChild(head);
    function apply(chars) {
      var out = $("text").value;
      chars.forEach(function (c) { out = out.split(c).join(LOOKALIKES[c]); });
      setText(out, chars.map(function (c) { return bare(c) + " → " + name(LOOKALIKES[c]); }).join(", "));
      state.continuation = null;
      schedule();
    }
    if (maps.length > 1) {
      var all = CharLM.el("button", "cl-offer cl-offer-all", "Replace all " + maps.length + ": " +
        maps.map(function (c) { return bare(c) + " → " + name(LOOKALIKES[c]); }).join(", "));
      all.type = "button";
      all.addEventListener("click", function () { apply(maps); });
      box.appendChild(all);
    }
    maps.forEach(function (c) {
      var b = CharLM.el("button", "cl-offer", bare(c) + " → " + name(LOOKALIKES[c]) +
        " (" + counts[c] + ")");
      b.type = "button";
      b.dataset.char = c;
      b.addEventListener("click", function () { apply([c]); });
      box.appendChild(b);
    });
    Object.keys(state.models).filter(function (other) {
      return other !== model() && !unknownIn(text, other).length;
    }).forEach(function (other) {
      var b = CharLM.el("button", "cl-offer cl-offer-model", "Use " + other + ": it knows every character");
      b.type = "button";
      b.dataset.model = other;
      b.addEventListener("click", function () { $("model").value = other; modelChosen(); });
      box.appendChild(b);
    });
    box.hidden = false;
  }

  function draw(result) {
    var s = result.score || {};
    state.shown = CharLM.renderScore($("view"), {
      text: result.text,
      steps: s.steps || [],
      bits_per_char: s.bits_per_char,
      unknown: result.unknown,
      continuation: state.continuation,
      continuationKind: state.kind,
      choose: choose,
      colourBy: state.view.colourBy,
      markers: state.view.markers,
      onView: function (changes) {
        Object.assign(state.view, changes);
        save({ view: state.view });
      },
    });
    offers(result.text, result.unknown || []);
    showError("");
    current($("view"));
    $("accept").disabled = !state.continuation;
    if (state.reselect !== null) {  // the character just replaced keeps the selection
      state.shown.selectPosition(state.reselect);
      state.reselect = null;
    }
  }

  function drawNext(next) {
    /* The whole next-character distribution after the text, likeliest first, as bars. */
    var list = $("next-list");
    list.textContent = "";
    $("next").hidden = !next;
    current($("next"));
    (next || []).forEach(function (cp) {
      var row = document.createElement("li");
      var ch = document.createElement("span");
      ch.className = "cl-next-char";
      ch.textContent = CharLM.charLabel(cp.char);
      var bar = document.createElement("span");
      bar.className = "cl-next-bar";
      bar.style.width = Math.max(0.5, cp.prob * 100).toFixed(2) + "%";
      bar.style.background = CharLM.colour(cp.prob);
      var p = document.createElement("span");
      p.className = "cl-next-prob";
      p.textContent = CharLM.percent(cp.prob);
      row.appendChild(ch);
      var track = document.createElement("span");
      track.className = "cl-next-track";
      track.appendChild(bar);
      row.appendChild(track);
      row.appendChild(p);
      list.appendChild(row);
    });
  }

  var listeners = [];

  function analyze() {
    /* Score the text and ask for the next character; then tell the other panels. */
    var text = $("text").value, key = model() + "\n" + text;
    if (key === state.drawn) return Promise.resolve();  // what the view shows already
    if (key === state.refused) return Promise.resolve();  // would be refused again
    var seq = ++state.seq;
    state.drawn = null;
    state.refused = null;
    changing($("view"));
    changing($("next"));
    listeners.forEach(function (fn) { fn(text, undefined); });  // (undefined: on its way)
    if (!text || !model()) {
      $("view").textContent = ""; $("view").__clScore = null; showError(""); drawNext(null);
      offers(text, []); current($("view"));
      listeners.forEach(function (fn) { fn(text, null); });
      return Promise.resolve();
    }
    return score(text, null, function (early) { if (seq === state.seq) draw(early); }).then(function (result) {
      if (seq !== state.seq) return;
      draw(result);
      state.drawn = key;
      listeners.forEach(function (fn) { fn(text, result); });
      if (result.score) return drawNext(result.score.next);
      if (Array.from(text).length - result.unknown.length !== 1) return drawNext(null);
      // One character: nothing to score, but what follows it can be asked.
      var body = { model: model(), text: text, top_k: 0, on_unknown: "skip" };
      return api("/predict", body).then(function (r) {
        if (seq === state.seq) drawNext(r.ok ? r.data.next : null);
      });
    }).catch(function (e) {
      if (seq !== state.seq) return;
      // A refusal of this text (too long, say) stands until it or the model changes; a
      // server that could not be reached or was busy (408, 429, 5xx) is asked again.
      if (e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429) {
        state.refused = key;
      }
      failed(e);
    });
  }

  var running = false, queued = false;
  function schedule() {
    /* Analyze now, or, while an analysis is running, once more when it ends: at most one
       is in flight, and the last text typed is always the one shown. */
    if (running) { queued = true; return; }
    running = true;
    analyze().then(function () {
      running = false;
      if (queued) { queued = false; schedule(); }
    });
  }

  function readEvents(response, onChar) {
    /* The Server-Sent Events of a streaming /generate: onChar(c) for each character;
       resolves when the stream ends. */
    var reader = response.body.getReader(), decoder = new TextDecoder(), buffer = "";
    function pump() {
      return reader.read().then(function (part) {
        buffer += decoder.decode(part.value || new Uint8Array(), { stream: !part.done });
        var events = buffer.split("\n\n");
        buffer = events.pop();
        events.forEach(function (ev) {
          var lines = ev.split("\n");
          if (lines.some(function (l) { return l.indexOf("event:") === 0; })) return;  // "done"
          lines.forEach(function (l) {
            if (l.indexOf("data: ") === 0) onChar(JSON.parse(l.slice(6)).char);
          });
        });
        if (!part.done) return pump();
      });
    }
    return pump();
  }

  function settingsFor(text, n) {
    /* The /generate request for the form: greedy is temperature 0; the prompt is the text
       as the model reads it, the characters it does not know skipped, as in the shading.
       Null (with the error shown) when a field is not a number. */
    var prompt = readable(text).text;
    if (!prompt) { showError("The text has no character this model knows to continue from."); return null; }
    var settings = { model: model(), prompt: prompt, length: n, stream: true };
    if ($("mode").value === "greedy") { settings.temperature = 0; return settings; }
    var fields = [["temperature", "temperature", parseFloat], ["top-k", "top_k", Number],
                  ["top-p", "top_p", parseFloat], ["seed", "seed", Number]];
    for (var f = 0; f < fields.length; f++) {
      var raw = $(fields[f][0]).value.trim();
      if (raw === "") continue;  // the service's default
      var value = fields[f][2](raw);
      if (!isFinite(value)) { showError("“" + fields[f][0] + "” must be a number."); return null; }
      settings[fields[f][1]] = value;
    }
    return settings;
  }

  function continueText(from) {
    /* Stream a continuation from the service, showing it as it comes with a count and a
       Stop button, beside the controls (brought into view when `from` a tooltip); then
       score it to shade each character made. */
    var text = $("text").value, raw = $("length").value.trim(), n = Number(raw);
    if (!text) { showError("Type some text to continue first."); return Promise.resolve(); }
    if (!raw || !Number.isInteger(n) || n < 1) {
      showError("“continue by” must be a whole number of characters, 1 or more.");
      return Promise.resolve();
    }
    var settings = settingsFor(text, n);
    if (!settings) return Promise.resolve();
    // A continuation cancels the analyses before it (of a text it may have replaced), and
    // holds while it is the last one asked for and the text is still the one continued:
    // an analysis of the same text started after it does not cancel it.
    state.seq += 1;
    var cseq = ++state.cseq, kind = $("mode").value === "greedy" ? "greedy" : "sampled";
    var live = function () { return cseq === state.cseq && $("text").value === text; };
    var what = kind === "greedy" ? "continuing greedily: " : "sampling: ";
    var made = [], stop = new AbortController(), stopped = false;
    state.stream = stop;
    state.drawn = null;
    busy(true, what + "0 of " + n + " characters");
    $("stop").hidden = false;
    $("stop").disabled = false;
    $("streamed").hidden = false;
    $("streamed").textContent = "";
    showError("");
    if (from === "tooltip") $("continue-box").scrollIntoView({ block: "nearest" });
    changing($("view"));
    changing($("next"));
    listeners.forEach(function (fn) { fn(text, undefined); });
    var headers = Object.assign({ "Content-Type": "application/json" }, authHeaders());
    var asked = fetch("/generate", {
      method: "POST", headers: headers, body: JSON.stringify(settings), signal: stop.signal,
    }).then(function (r) {
      if (!r.ok) return r.json().then(function (d) { throw new Error(d.error.message); });
      return readEvents(r, function (c) {
        made.push(c);
        var box = $("streamed");
        box.textContent += c;
        box.scrollTop = box.scrollHeight;  // the newest characters stay in sight
        $("status").textContent = what + made.length + " of " + n + " characters";
      });
    }).catch(function (e) {
      if (e && e.name === "AbortError") { stopped = true; return; }  // keep what was made
      throw e;
    }).then(function () {
      if (!live() || !made.length) return null;
      // How sure was the model of each character it made? Score the whole text.
      return score(text + made.join("")).then(function (result) {
        if (!result.score) throw new Error("the continuation could not be scored");
        var start = Array.from(text).length;
        return result.score.steps.filter(function (s) { return s.position >= start; });
      });
    });
    return asked.then(function (steps) {
      if (!live() || !steps) return;
      state.continuation = steps;
      state.kind = kind;
      return score(text).then(function (result) {
        if (!live()) return;
        draw(result);
        state.drawn = model() + "\n" + text;
        listeners.forEach(function (fn) { fn(text, result); });
        drawNext(result.score ? result.score.next : null);
        if (stopped) stopped = "Stopped after " + steps.length + " of " + n + " characters.";
      });
    }).catch(function (e) { if (live()) failed(e); })
      .then(function () {
        if (state.stream === stop) state.stream = null;
        $("stop").hidden = true;
        $("streamed").hidden = true;
        busy(false);
        if (typeof stopped === "string") tell(stopped);  // a normal stop, not an error
      });
  }

  function choose(item, char, how) {
    /* An alternative picked in a tooltip: put `char` in place of the item and score
       again ("replace"), or cut the text there and continue from `char` ("continue").
       Either way the text before can be brought back with Undo. */
    var text = Array.from($("text").value);
    var cont = (state.continuation || []).map(function (s) { return s.char; });
    var all = text.concat(cont), at = item.position;
    state.continuation = null;
    if (how === "replace") {
      all[at] = char;
      setText(all.join(""), "“replace”");
      state.reselect = at;
      schedule();
      return;
    }
    setText(all.slice(0, at).join("") + char, "“continue from here”");
    continueText("tooltip");
  }

  $("text").addEventListener("input", function () {
    if (state.stream) state.stream.abort();  // a continuation of a text that is gone
    state.continuation = null;
    save({ text: $("text").value });
    tell("");
    schedule();
  });
  function modelChosen() {
    $("model-info").textContent = describeModel(state.models[model()]);
    showDiagnosis(state.models[model()]);
    state.continuation = null;
    save({ model: model() });
    schedule();
  }
  $("model").addEventListener("change", modelChosen);
  function modeChosen() {
    ["temperature", "top-k", "top-p", "seed"].forEach(function (id) {
      $(id).disabled = $("mode").value !== "sample";
    });
  }
  $("mode").addEventListener("change", modeChosen);
  // The continuation's settings, kept for the tab like the text.
  var SETTINGS = ["length", "mode", "temperature", "top-k", "top-p", "seed"];
  SETTINGS.forEach(function (id) {
    $(id).addEventListener("change", function () {
      var kept = saved().settings || {};
      kept[id] = $(id).value;
      save({ settings: kept });
    });
  });

  function downloadReport() {
    /* The text as shown (with a continuation, if there is one, marked as generated) as
       the self-contained HTML report of `charlm score --html`, saved as a file. */
    var text = $("text").value, made = (state.continuation || []).map(function (s) { return s.char; });
    var body = { model: model(), text: text + made.join(""), alternatives: 5, on_unknown: "skip" };
    if (made.length) body.generated_from = Array.from(text).length;
    if (Array.from(body.text).length < 2) { showError("Type at least two characters first."); return; }
    var headers = Object.assign({ "Content-Type": "application/json" }, authHeaders());
    busy(true, "writing the report…");
    fetch("/report", { method: "POST", headers: headers, body: JSON.stringify(body) }).then(function (r) {
      if (!r.ok) return r.json().then(function (d) { throw new Error(d.error.message); });
      return r.blob();
    }).then(function (blob) {
      var a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = "charlm-" + model() + "-report.html";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
    }).catch(function (e) { showError(String(e.message || e)); })
      .then(function () { busy(false); });
  }

  $("continue").addEventListener("click", function () { continueText(); });
  $("stop").addEventListener("click", function () {
    if (state.stream) { $("stop").disabled = true; state.stream.abort(); }
  });
  $("download").addEventListener("click", downloadReport);
  $("undo").addEventListener("click", undo);
  $("accept").addEventListener("click", function () {
    if (!state.continuation) return;
    setText($("text").value + state.continuation.map(function (s) { return s.char; }).join(""),
      "“append to text”");
    state.continuation = null;
    schedule();
  });

  function restore() {
    /* What this tab had before a reload: its text, its choices, and what Undo brings back. */
    var kept = saved();
    if (typeof kept.text === "string" && !$("text").value) $("text").value = kept.text;
    if (kept.view) state.view = kept.view;
    if (Array.isArray(kept.history)) { state.history = kept.history; showUndo(); }
    var settings = kept.settings || {};
    SETTINGS.forEach(function (id) { if (id in settings) $(id).value = settings[id]; });
    modeChosen();
  }

  // What the page's other panels (inside.js: the comparison, the cells) use.
  window.CharLMInspector = {
    api: api, model: model, models: function () { return state.models; }, score: score,
    unknownIn: unknownIn, readable: readable, fill: fill, saved: saved, save: save, changing: changing, current: current,
    showError: showError, inFormTerms: inFormTerms,
    // The range marked in the text (Shift with a click or an arrow), as positions of its
    // first and last character, or null.
    range: function () {
      var drawn = $("view").__clScore, r = drawn && drawn.view.range();
      if (!r) return null;
      var list = drawn.list;
      return [list[r[0]].position, list[r[1]].position];
    },
    onAnalyzed: function (fn) { listeners.push(fn); },
  };

  restore();
  loadModels().then(function () {
    $("model-info").textContent = describeModel(state.models[model()]);
    showDiagnosis(state.models[model()]);
    save({ model: model() });
    schedule();
  }).catch(function (e) { showError(String(e.message || e)); });
  // The server reloads a checkpoint when it changes on disk; so does the page, every few
  // seconds while it is shown and whenever it comes back into view.
  setInterval(function () { if (!document.hidden) refreshModels(); }, REFRESH_MS);
  window.addEventListener("focus", refreshModels);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refreshModels();
  });
})();
