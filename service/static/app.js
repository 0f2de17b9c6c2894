/* The inspector page: asks the service's JSON endpoints and draws the answers with
 * CharLM.renderScore. All numbers come from the service; nothing is computed here. */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  // drawn: the model and text the view shows (without a continuation), so that asking
  // again for the same draws nothing new.
  var state = {
    models: {}, continuation: null, kind: "greedy", seq: 0, cache: {}, stream: null, drawn: null,
  };

  var KEY = "charlm-api-key";
  var REFRESH_MS = 5000;

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
    $("status").textContent = on ? what : "";
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
      fill(select, names.map(function (name) { return [name, name]; }), chosen);
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
      if (changed) { state.continuation = null; state.drawn = null; schedule(); }
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

  function scoreWith(name, text, next) {
    /* /score of `text` by model `name`, asking only for the steps from the first
       character that differs from the text this model scored last: the steps before it
       cannot have changed (each depends only on the characters up to it). Resolves like
       api(); the answer's steps are the whole text's. With `next`, the answer also has
       the whole distribution of the character after the text. */
    var chars = Array.from(text), last = state.cache[name], start = 1;
    if (last) {
      var same = 0, n = Math.min(last.chars.length, chars.length);
      while (same < n && last.chars[same] === chars[same]) same++;
      start = Math.max(1, same);
    }
    var body = { model: name, text: text, alternatives: 5, start: start };
    if (next) body.next_top = 0;
    return api("/score", body).then(function (r) {
      if (!r.ok) return r;
      var kept = start > 1 ? last.steps.filter(function (s) { return s.position < start; }) : [];
      var data = Object.assign({}, r.data, { steps: kept.concat(r.data.steps) });
      state.cache[name] = { chars: chars, steps: data.steps };
      return { ok: true, status: r.status, data: data };
    });
  }

  function score(text, name) {
    /* Score `text` with model `name` (default: the chosen one); with unknown characters,
       score the part before the first one. */
    name = name || model();
    var result = { text: text, score: null, unknown: [] };
    function prefix(unknown, message) {
      /* The part before the first unknown character, scored when it can be. */
      var first = unknown.reduce(function (m, u) { return Math.min(m, u.position); }, Infinity);
      result.unknown = unknown;
      result.message = message;
      if (first < 2) return Promise.resolve(result);
      return scoreWith(name, Array.from(text).slice(0, first).join(""))
        .then(function (r) { if (r.ok) result.score = r.data; return result; });
    }
    var unknown = unknownIn(text, name);
    if (unknown.length) {
      var shown = unknown.slice(0, 5).map(function (u) {
        return JSON.stringify(u.char) + " at position " + u.position;
      }).join(", ");
      return prefix(unknown, "not in this model's vocabulary: " + shown +
        (unknown.length > 5 ? " and " + (unknown.length - 5) + " more" : "") +
        "; the text after the first one is not scored");
    }
    if (Array.from(text).length < 2) return Promise.resolve(result);  // nothing to predict yet
    return scoreWith(name, text, true).then(function (r) {
      if (r.ok) { result.score = r.data; return result; }
      var err = r.data.error || {};
      if (err.type === "unknown_character") return prefix(err.characters, err.message);
      throw new Error(err.message || ("the service answered " + r.status));
    });
  }

  function draw(result) {
    var s = result.score || {};
    CharLM.renderScore($("view"), {
      text: result.text,
      steps: s.steps || [],
      bits_per_char: s.bits_per_char,
      unknown: result.unknown,
      continuation: state.continuation,
      continuationKind: state.kind,
      choose: choose,
    });
    showError(result.message || "");
    $("view").classList.remove("cl-stale");
    $("accept").disabled = !state.continuation;
  }

  function shownChar(c) {
    return c === " " ? "␣ (space)" : c === "\n" ? "↵ (newline)" : c === "\t" ? "→ (tab)" : c;
  }

  function drawNext(next) {
    /* The whole next-character distribution after the text, likeliest first, as bars. */
    var list = $("next-list");
    list.textContent = "";
    $("next").hidden = !next;
    (next || []).forEach(function (cp) {
      var row = document.createElement("li");
      var ch = document.createElement("span");
      ch.className = "cl-next-char";
      ch.textContent = shownChar(cp.char);
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
    var seq = ++state.seq;
    state.drawn = null;
    if (!text || !model()) {
      $("view").textContent = ""; showError(""); drawNext(null);
      listeners.forEach(function (fn) { fn(text, null); });
      return Promise.resolve();
    }
    return score(text).then(function (result) {
      if (seq !== state.seq) return;
      draw(result);
      state.drawn = key;
      listeners.forEach(function (fn) { fn(text, result); });
      if (result.unknown.length) return drawNext(null);
      if (result.score) return drawNext(result.score.next);
      // One character: nothing to score, but what follows it can be asked.
      return api("/predict", { model: model(), text: text, top_k: 0 }).then(function (r) {
        if (seq === state.seq) drawNext(r.ok ? r.data.next : null);
      });
    }).catch(function (e) { if (seq === state.seq) failed(e); });
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
    /* The /generate request for the form: greedy is temperature 0. Null (with the error
       shown) when a field is not a number. */
    var settings = { model: model(), prompt: text, length: n, stream: true };
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

  function continueText() {
    /* Stream a continuation from the service, showing it as it comes with a count and a
       Stop button; then score it to shade each character made. */
    var text = $("text").value, raw = $("length").value.trim(), n = Number(raw);
    if (!text) { showError("Type some text to continue first."); return Promise.resolve(); }
    if (!raw || !Number.isInteger(n) || n < 1) {
      showError("“continue by” must be a whole number of characters, 1 or more.");
      return Promise.resolve();
    }
    var settings = settingsFor(text, n);
    if (!settings) return Promise.resolve();
    var seq = ++state.seq, kind = $("mode").value === "greedy" ? "greedy" : "sampled";
    var what = kind === "greedy" ? "continuing greedily: " : "sampling: ";
    var made = [], stop = new AbortController(), stopped = false;
    state.stream = stop;
    busy(true, what + "0 of " + n + " characters");
    $("stop").hidden = false;
    $("stop").disabled = false;
    $("streamed").hidden = false;
    $("streamed").textContent = "";
    showError("");
    var headers = Object.assign({ "Content-Type": "application/json" }, authHeaders());
    var asked = fetch("/generate", {
      method: "POST", headers: headers, body: JSON.stringify(settings), signal: stop.signal,
    }).then(function (r) {
      if (!r.ok) return r.json().then(function (d) { throw new Error(d.error.message); });
      return readEvents(r, function (c) {
        made.push(c);
        $("streamed").textContent += c;
        $("status").textContent = what + made.length + " of " + n + " characters";
      });
    }).catch(function (e) {
      if (e && e.name === "AbortError") { stopped = true; return; }  // keep what was made
      throw e;
    }).then(function () {
      if (seq !== state.seq || !made.length) return null;
      // How sure was the model of each character it made? Score the whole text.
      return score(text + made.join("")).then(function (result) {
        if (!result.score) throw new Error(result.message || "the continuation could not be scored");
        var start = Array.from(text).length;
        return result.score.steps.filter(function (s) { return s.position >= start; });
      });
    });
    return asked.then(function (steps) {
      if (seq !== state.seq || !steps) return;
      state.continuation = steps;
      state.kind = kind;
      return score(text).then(function (result) {
        if (seq !== state.seq) return;
        draw(result);
        if (stopped) showError("Stopped after " + steps.length + " of " + n + " characters.");
      });
    }).catch(function (e) { if (seq === state.seq) failed(e); })
      .then(function () {
        if (state.stream === stop) state.stream = null;
        $("stop").hidden = true;
        $("streamed").hidden = true;
        busy(false);
      });
  }

  function choose(item, char, how) {
    /* An alternative picked in a tooltip: put `char` in place of the item and score
       again ("replace"), or cut the text there and continue from `char` ("continue"). */
    var text = Array.from($("text").value);
    var cont = (state.continuation || []).map(function (s) { return s.char; });
    var all = text.concat(cont), at = item.position;
    if (how === "replace") {
      all[at] = char;
      $("text").value = all.join("");
      state.continuation = null;
      schedule();
      return;
    }
    $("text").value = all.slice(0, at).join("") + char;
    state.continuation = null;
    continueText();
  }

  $("text").addEventListener("input", function () {
    state.continuation = null;
    schedule();
  });
  $("model").addEventListener("change", function () {
    $("model-info").textContent = describeModel(state.models[model()]);
    showDiagnosis(state.models[model()]);
    state.continuation = null;
    schedule();
  });
  $("mode").addEventListener("change", function () {
    ["temperature", "top-k", "top-p", "seed"].forEach(function (id) {
      $(id).disabled = $("mode").value !== "sample";
    });
  });
  function downloadReport() {
    /* The text as shown (with a continuation, if there is one) as the self-contained HTML
       report of `charlm score --html`, saved as a file. */
    var text = $("text").value + (state.continuation || []).map(function (s) { return s.char; }).join("");
    if (Array.from(text).length < 2) { showError("Type at least two characters first."); return; }
    var headers = Object.assign({ "Content-Type": "application/json" }, authHeaders());
    busy(true, "writing the report…");
    fetch("/report", {
      method: "POST", headers: headers,
      body: JSON.stringify({ model: model(), text: text, alternatives: 5 }),
    }).then(function (r) {
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

  $("continue").addEventListener("click", continueText);
  $("stop").addEventListener("click", function () {
    if (state.stream) { $("stop").disabled = true; state.stream.abort(); }
  });
  $("download").addEventListener("click", downloadReport);
  $("accept").addEventListener("click", function () {
    if (!state.continuation) return;
    $("text").value += state.continuation.map(function (s) { return s.char; }).join("");
    state.continuation = null;
    schedule();
  });

  // What the page's other panels (inside.js: the comparison, the cells) use.
  window.CharLMInspector = {
    api: api, model: model, models: function () { return state.models; }, score: score,
    unknownIn: unknownIn, fill: fill,
    showError: showError, inFormTerms: inFormTerms,
    onAnalyzed: function (fn) { listeners.push(fn); },
  };

  loadModels().then(schedule).catch(function (e) { showError(String(e.message || e)); });
  // The server reloads a checkpoint when it changes on disk; so does the page, every few
  // seconds while it is shown and whenever it comes back into view.
  setInterval(function () { if (!document.hidden) refreshModels(); }, REFRESH_MS);
  window.addEventListener("focus", refreshModels);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refreshModels();
  });
})();
