"""A self-contained HTML report of per-step confidence, for `charlm score --html`.

The report embeds the same score view (stylesheet and script) that the service's
inspector page uses, and the score as JSON, so it opens in any browser with nothing
fetched from anywhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from charlm.inference import ScoreResult
from charlm.render import score_json

__all__ = ["ASSETS_DIR", "score_report"]

ASSETS_DIR = Path(__file__).parent / "assets"


def _script_safe(data: Any) -> str:
    """JSON that cannot end the <script> element it sits in."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def score_report(text: str, result: ScoreResult, *, model: str) -> str:
    """The HTML page for `result`, the score of `text` by the model named `model`."""
    css = (ASSETS_DIR / "inspector.css").read_text(encoding="utf-8")
    js = (ASSETS_DIR / "scoreview.js").read_text(encoding="utf-8")
    data = {"text": text, **score_json(result)}
    title = f"charlm: {model}, {len(result.steps)} characters scored"
    return f"""<!doctype html>
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
<script id="score-data" type="application/json">{_script_safe(data)}</script>
<script>
CharLM.renderScore(document.getElementById("view"),
  JSON.parse(document.getElementById("score-data").textContent));
</script>
</body>
</html>
"""
