"""From a keystroke to the new shading, in the inspector, on a long text.

    python bench/inspector_typing.py [--chars 5000] [--keys 15] [--before REV] [--write]

Trains a 2-layer 256-unit model for a few steps on the text it will type into (the time
depends on the model's size, not on how well it is trained), starts a real `charlm
serve` and opens the inspector in Chromium (Playwright). It pastes the first `--chars`
characters of tiny Shakespeare (corpora/notes.txt repeated when that is missing), waits
for the shading, then types one character at a time, `--keys` times at the end of the
text and as many in its middle, each 1.5 s after the previous one's shading is drawn
(so that what a page does after drawing is done). A keystroke's time runs from the
key's `keydown` event to the first moment after the view holds one more shaded
character and the browser has drawn a frame (a MutationObserver on the view, then
requestAnimationFrame and a zero timeout), so it includes any waiting the page does
before it asks the server, the request, and the drawing; a second time runs to the
frame after which no character shows the last text's shade (`data-pending-from`: a long text
changed part-way is scored first near the change, then to its end). The size of the
/score answers it waited for is counted too. Median and p90 per place; with `--before REV`
the same for that revision's server and page, in the same run, alternating.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import REPO, charlm_of, code_trees, free_port, percentile, report, wait_ready
from playwright.sync_api import sync_playwright

from charlm.cli import main as charlm

SHAKESPEARE = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"

ARM = """(where) => { window.__measure = new Promise((resolve) => {
  const text = document.getElementById("text"), view = document.getElementById("view");
  const want = view.querySelectorAll(".cl-ch").length + 1;
  let t0 = null, first = null;
  performance.clearResourceTimings();  // (the buffer holds 250 entries)
  const frame = (then) => requestAnimationFrame(() => setTimeout(then, 0));
  const done = () => frame(() => {
    const got = performance.getEntriesByType("resource")
      .filter((e) => e.name.endsWith("/score"))
      .reduce((n, e) => n + e.decodedBodySize, 0);
    resolve([first, got, performance.now() - t0]);
  });
  const seen = new MutationObserver(() => {
    if (t0 === null || view.querySelectorAll(".cl-ch").length !== want) return;
    if (first === null) {
      first = -1;  // the first frame with the new character shaded
      frame(() => { first = performance.now() - t0; if (finished) done(); });
    }
    if (!view.querySelector("[data-pending-from]")) {
      finished = true;
      seen.disconnect();
      if (first >= 0) done();
    }
  });
  let finished = false;
  seen.observe(view, {
    childList: true, subtree: true, attributes: true, attributeFilter: ["data-pending-from"],
  });
  text.addEventListener("keydown", () => { t0 = performance.now(); }, { once: true });
  const at = where === "end" ? text.value.length : Math.floor(text.value.length / 2);
  text.focus();
  text.setSelectionRange(at, at);
}); }"""


def corpus_text(chars: int) -> str:
    source = SHAKESPEARE if SHAKESPEARE.exists() else REPO / "corpora" / "notes.txt"
    text = source.read_text(encoding="utf-8")
    while len(text) < chars:
        text += text
    return text[:chars]


def start_server(code: Path, checkpoints: Path, port: int) -> subprocess.Popen[bytes]:
    """`charlm serve` with the charlm and service code of the tree `code`."""
    cmd = [*charlm_of(code), "serve", "--checkpoints-dir", str(checkpoints)]
    cmd += ["--port", str(port), "--log-level", "warning", "--max-text-chars", "100000"]
    proc = subprocess.Popen(cmd, cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_ready(port, proc)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chars", type=int, default=5000)
    ap.add_argument("--keys", type=int, default=15, help="keystrokes per place and code")
    ap.add_argument("--before", metavar="REV", help="also measure this revision, alternating")
    ap.add_argument("--write", action="store_true", help="append the results to BENCHMARKS.md")
    args = ap.parse_args()

    text = corpus_text(args.chars)
    keys = "etaoinshrd"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpts = tmp / "checkpoints"
        corpus = tmp / "text.txt"  # the model's vocabulary covers every character typed
        corpus.write_text(text + keys, encoding="utf-8")
        charlm(
            ["train", str(corpus), "--checkpoints-dir", str(ckpts), "--name", "notes",
             "--num-layers", "2", "--hidden-size", "256", "--max-steps", "20", "--quiet"]
        )  # fmt: skip
        with code_trees(args.before, tmp) as codes, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
            pages, procs = {}, []
            times: dict[tuple[str, str], list[float]] = {}
            wholes: dict[tuple[str, str], list[float]] = {}
            sizes: dict[tuple[str, str], list[int]] = {}
            try:
                for label, code in codes.items():
                    port = free_port()
                    procs.append(start_server(code, ckpts, port))
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    page.goto(f"http://127.0.0.1:{port}/")
                    page.wait_for_function(
                        "() => document.getElementById('model').options.length > 0"
                    )
                    page.fill("#text", text)
                    page.wait_for_function(
                        "n => document.querySelectorAll('#view .cl-ch').length === n",
                        arg=len(text),
                        timeout=60_000,
                    )
                    pages[label] = page
                for i in range(args.keys):
                    for where in ("end", "middle"):
                        for label, page in pages.items():
                            page.bring_to_front()  # a tab in the background is throttled
                            page.evaluate(ARM, where)
                            page.keyboard.press(keys[i % len(keys)])
                            ms, size, whole = page.evaluate("window.__measure")
                            page.wait_for_timeout(1500)  # work after the drawing ends first
                            times.setdefault((label, where), []).append(ms)
                            wholes.setdefault((label, where), []).append(whole)
                            sizes.setdefault((label, where), []).append(size)
            finally:
                browser.close()
                for proc in procs:
                    proc.terminate()
                    proc.wait(10)

    rows = [
        "| code | typed at | shaded: median (ms) | p90 (ms) | whole text current: median (ms) "
        "| p90 (ms) | /score JSON (median, kB) | keystrokes |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (label, where), ms in times.items():
        rows.append(
            f"| {label} | {where} | {statistics.median(ms):.0f} | {percentile(ms, 90):.0f} "
            f"| {statistics.median(wholes[label, where]):.0f} "
            f"| {percentile(wholes[label, where], 90):.0f} "
            f"| {statistics.median(sizes[label, where]) / 1000:,.1f} | {len(ms)} |"
        )
    notes = (
        f"A {args.chars:,}-character text, a 2 x 256 LSTM, Chromium at 1280 px; from a "
        "key's keydown event to the first frame drawn with the new character shaded, and "
        "to the frame after which no character shows the last text's shade (a long text "
        "changed part-way is scored in two requests: the 256 characters after the change "
        "first)."
    )
    report(f"Inspector: keystroke to shading ({args.chars:,} characters)", "\n".join(rows),
           notes, write=args.write)  # fmt: skip


if __name__ == "__main__":
    main()
