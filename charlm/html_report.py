"""A self-contained HTML report of per-step confidence, for `charlm score --html`.

The report embeds the same score view (stylesheet, and the scripts of the view and its
charts) that the service's inspector page uses, and the score as the same JSON that
`charlm score --json` prints and `POST /score` answers, so it opens in any browser with
nothing fetched from anywhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from charlm.inference.results import ScoreResult

__all__ = ["ASSETS_DIR", "score_page", "score_report", "script_safe"]

ASSETS_DIR = Path(__file__).parent / "assets"


def script_safe(text: str) -> str:
    """JSON text that cannot end the <script> element it sits in (each character is
    replaced on its own, so the JSON may be made safe piece by piece)."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def score_report(result: ScoreResult) -> str:
    """The HTML page for `result`."""
    before, after = score_page(result.model, len(result.steps))
    return before + script_safe(result.model_dump_json()) + after


def score_page(model: str, scored: int, generated_from: int | None = None) -> tuple[str, str]:
    """The HTML page for a score of `model` over `scored` characters: the text before
    the score's JSON and the text after it (the JSON goes between, `script_safe`). With
    `generated_from`, the characters from that position on are marked as the model's
    continuation, with their statistics apart."""
    css = (ASSETS_DIR / "inspector.css").read_text(encoding="utf-8")
    scripts = ("scoreview.js", "scorecharts.js")  # the view first: the charts extend it
    js = "\n".join((ASSETS_DIR / name).read_text(encoding="utf-8") for name in scripts)
    title = f"charlm: {model}, {scored} characters scored"
    if generated_from is not None:
        title += f", from position {generated_from} generated"
    view = {"generatedFrom": generated_from}
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<style>
{css}
</style>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
<p class="cl-sub">Each character is shaded by the probability the model gave it, given
everything before it. Hover or focus a character for its rank, entropy and alternatives.</p>
<div id="view" class="cl-view"></div>
</main>
<script>
{js}
</script>
<script id="score-data" type="application/json">{_DATA}</script>
<script>
CharLM.renderScore(document.getElementById("view"), Object.assign(
  JSON.parse(document.getElementById("score-data").textContent), {json.dumps(view)}));
</script>
</body>
</html>
"""
    before, after = page.split(_DATA)
    return before, after


_DATA = "\0score-data\0"  # where the JSON goes; no asset holds it
