/* The inspector page: asks the service's JSON endpoints and draws the answers with
 * CharLM.renderScore. All numbers come from the service; nothing is computed here. */
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var state = { models: {}, continuation: null, kind: "greedy", seq: 0 };

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

  function loadModels() {
    /* The server's models, into the list: the one chosen stays chosen while it exists.
       Resolves to true when the chosen model is new or has changed (retrained). */
    return api("/models").then(function (r) {
      var select = $("model"), chosen = select.value;
      var before = JSON.stringify(state.models[chosen] || null);
      var fresh = {};
      (r.data.models || []).forEach(function (m) { fresh[m.name] = m; });
      var names = Object.keys(fresh);
      var listed = Array.from(select.options).map(function (o) { return o.value; });
      if (names.join("\n") !== listed.join("\n")) {
        select.textContent = "";
        names.forEach(function (name) {
          var opt = document.createElement("option");
          opt.value = name;
          opt.textContent = name;
          select.appendChild(opt);
        });
        if (fresh[chosen]) select.value = chosen;
      }
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
      if (changed) { state.continuation = null; return analyze(); }
    }).catch(function () { /* the next refresh, or a request, will say what is wrong */ });
  }

  function unknownIn(text) {
    /* Characters outside the model's vocabulary (listed by GET /models), with positions. */
    var m = state.models[model()];
    if (!m) return [];
    var known = new Set(m.vocab);
    var out = [];
    Array.from(text).forEach(function (c, i) { if (!known.has(c)) out.push({ char: c, position: i }); });
    return out;
  }

  function score(text) {
    /* Score `text`; with unknown characters, score the part before the first one. */
    var unknown = unknownIn(text);
    if (unknown.length) {
      var first = unknown[0].position;
      var shown = unknown.slice(0, 5).map(function (u) {
        return JSON.stringify(u.char) + " at position " + u.position;
      }).join(", ");
      var result = {
        text: text, score: null, unknown: unknown,
        message: "not in this model's vocabulary: " + shown +
          (unknown.length > 5 ? " and " + (unknown.length - 5) + " more" : "") +
          "; the text after the first one is not scored",
      };
      if (first < 2) return Promise.resolve(result);
      return api("/score", { model: model(), text: Array.from(text).slice(0, first).join(""), alternatives: 5 })
        .then(function (r) { if (r.ok) result.score = r.data; return result; });
    }
    if (Array.from(text).length < 2) {
      return Promise.resolve({ text: text, score: null, unknown: [] });  // nothing to predict yet
    }
    return api("/score", { model: model(), text: text, alternatives: 5 }).then(function (r) {
      if (r.ok) return { text: text, score: r.data, unknown: [] };
      var err = r.data.error || {};
      if (err.type === "unknown_character") {
        var first = err.characters.reduce(function (m, c) { return Math.min(m, c.position); }, Infinity);
        var result = { text: text, score: null, unknown: err.characters, message: err.message };
        if (first < 2) return result;
        return api("/score", { model: model(), text: Array.from(text).slice(0, first).join(""), alternatives: 5 })
          .then(function (r2) { if (r2.ok) result.score = r2.data; return result; });
      }
      if (Array.from(text).length < 2) return { text: text, score: null, unknown: [] };
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

  function predictNext(text) {
    /* The distribution after `text` (all of it), or null when it cannot be asked. */
    if (unknownIn(text).length) return Promise.resolve(null);
    return api("/predict", { model: model(), text: text, top_k: 0 }).then(function (r) {
      return r.ok ? r.data.next : null;
    });
  }

  function analyze() {
    var seq = ++state.seq, text = $("text").value;
    if (!text || !model()) {
      $("view").textContent = ""; showError(""); drawNext(null); return Promise.resolve();
    }
    return score(text).then(function (result) {
      if (seq === state.seq) draw(result);
      return predictNext(text);
    }).then(function (next) {
      if (seq === state.seq) drawNext(next);
    }).catch(function (e) { if (seq === state.seq) failed(e); });
  }

  function continueText() {
    var text = $("text").value, raw = $("length").value.trim(), n = Number(raw);
    if (!text) { showError("Type some text to continue first."); return Promise.resolve(); }
    if (!raw || !Number.isInteger(n) || n < 1) {
      showError("“continue by” must be a whole number of characters, 1 or more.");
      return Promise.resolve();
    }
    var seq = ++state.seq;
    busy(true, ($("mode").value === "greedy" ? "continuing greedily by " : "sampling ") +
      n + " characters…");
    var asked;
    if ($("mode").value === "greedy") {
      asked = api("/predict", { model: model(), text: text, continuation_length: n, alternatives: 5 })
        .then(function (r) {
          if (!r.ok) throw new Error(r.data.error.message);
          return { steps: r.data.steps, kind: "greedy" };
        });
    } else {
      var settings = { model: model(), prompt: text, length: n };
      var fields = [["temperature", "temperature", parseFloat], ["top-k", "top_k", Number],
                    ["top-p", "top_p", parseFloat], ["seed", "seed", Number]];
      for (var f = 0; f < fields.length; f++) {
        var raw = $(fields[f][0]).value.trim();
        if (raw === "") continue;  // the service's default
        var value = fields[f][2](raw);
        if (!isFinite(value)) {
          busy(false);
          showError("“" + fields[f][0] + "” must be a number.");
          return Promise.resolve();
        }
        settings[fields[f][1]] = value;
      }
      asked = api("/generate", settings)
        .then(function (r) {
          if (!r.ok) throw new Error(r.data.error.message);
          // How sure was the model of each sampled character? Score the whole text.
          return api("/score", { model: model(), text: text + r.data.text, alternatives: 5 });
        })
        .then(function (r) {
          if (!r.ok) throw new Error(r.data.error.message);
          var start = Array.from(text).length;
          return {
            steps: r.data.steps.filter(function (s) { return s.position >= start; }),
            kind: "sampled",
          };
        });
    }
    return asked.then(function (c) {
      if (seq !== state.seq) return;
      state.continuation = c.steps;
      state.kind = c.kind;
      return score(text).then(function (result) { if (seq === state.seq) draw(result); });
    }).catch(function (e) { if (seq === state.seq) failed(e); })
      .then(function () { busy(false); });
  }

  var timer = null;
  $("text").addEventListener("input", function () {
    state.continuation = null;
    clearTimeout(timer);
    timer = setTimeout(analyze, 200);
  });
  $("model").addEventListener("change", function () {
    $("model-info").textContent = describeModel(state.models[model()]);
    showDiagnosis(state.models[model()]);
    state.continuation = null;
    analyze();
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
  $("download").addEventListener("click", downloadReport);
  $("accept").addEventListener("click", function () {
    if (!state.continuation) return;
    $("text").value += state.continuation.map(function (s) { return s.char; }).join("");
    state.continuation = null;
    analyze();
  });

  loadModels().then(analyze).catch(function (e) { showError(String(e.message || e)); });
  // The server reloads a checkpoint when it changes on disk; so does the page, every few
  // seconds while it is shown and whenever it comes back into view.
  setInterval(function () { if (!document.hidden) refreshModels(); }, REFRESH_MS);
  window.addEventListener("focus", refreshModels);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refreshModels();
  });
})();
