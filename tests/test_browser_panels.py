"""The inspector's working tools, at a desktop and a phone width: typing that re-scores
only what changed, continuations streamed with a Stop button, choosing an alternative,
two models side by side, and the inside of the LSTM. Real Chromium against a real
server; no request may leave the server, and the console logs no error."""

import json
import math
import time

import httpx2 as httpx
import pytest

from .serving import Server
from .test_browser import LETTERS, Page, server
from .test_browser_reading import PROSE, wide

__all__ = ["server", "wide"]  # the fixtures, shared with the other browser tests

pytestmark = [pytest.mark.slow, pytest.mark.server]  # a browser and a real server process


def test_typing_rescores_only_from_the_first_change(wide: Page, server: Server) -> None:
    sent: list[dict[str, object]] = []
    wide.page.on("request", lambda r: r.url.endswith("/score") and sent.append(r.post_data_json))
    wide.open_inspector(server, "notes")
    text = PROSE[:400]
    wide.type_text(text)
    assert sent[-1]["start"] == 1  # the first scoring: all of it
    # One character typed at the end: only its step is asked for.
    wide.page.focus("#text")
    wide.page.keyboard.press("End")
    wide.page.keyboard.type("e")
    text += "e"
    wide.page.wait_for_function("n => document.querySelectorAll('.cl-ch').length === n", arg=401)
    assert sent[-1]["start"] == 400 and sent[-1]["text"] == text
    # One changed in the middle: the steps from there on.
    changed = text[:200] + "q" + text[201:]
    wide.page.fill("#text", changed)
    wide.page.wait_for_function(
        "() => document.querySelector('.cl-ch[data-index=\"200\"]').textContent === 'q'"
    )
    assert sent[-1]["start"] == 200
    # What is drawn is what scoring the whole text again gives.
    full = httpx.post(server.url + "/score", json={"model": "notes", "text": changed}).json()
    want = [s["prob"] for s in full["steps"]]
    assert wide.probs(".cl-scored") == pytest.approx(want, rel=1e-6)
    assert f"{full['bits_per_char']:#.4g} bits/char" in wide.page.inner_text(".cl-summary")


def test_a_continuation_streams_and_stops(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    wide.type_text(PROSE[:50])
    view = wide.page
    # Slow the connection, so that the Stop button is pressed long before the end.
    cdp = view.context.new_cdp_session(view)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": 6000, "uploadThroughput": -1},
    )
    view.select_option("#mode", "sample")
    view.fill("#length", "10000")
    view.click("#continue")
    # The characters appear as they are made, with a count, and the page is busy.
    view.wait_for_function(
        "() => document.getElementById('streamed').textContent.length >= 30", timeout=20_000
    )
    status = view.inner_text("#status")
    assert status.startswith("sampling: ") and status.endswith(" of 10000 characters")
    assert view.is_disabled("#continue") and view.is_visible("#stop")
    view.click("#stop")
    view.wait_for_function("() => !document.getElementById('continue').disabled", timeout=20_000)
    made = view.locator(".cl-generated").count()
    assert 30 <= made < 10_000
    # A stop asked for is news, not an error: said in the status line, not the red box.
    assert f"Stopped after {made} of 10000 characters" in view.inner_text("#status")
    assert view.inner_text("#error") == ""
    assert not view.is_visible("#stop") and not view.is_visible("#streamed")
    # The server stopped making it too.
    deadline = time.monotonic() + 10
    while httpx.get(server.url + "/health").json()["generation"]["active"] and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert httpx.get(server.url + "/health").json()["generation"]["active"] == 0
    # Each character made is shaded by the probability the model gave it.
    probs = wide.probs(".cl-generated")
    assert len(probs) == made and all(0 < p <= 1 for p in probs)


def test_greedy_continuation_streams_the_cycle(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "alphabet")
    wide.type_text("abc")
    wide.page.fill("#length", "30")
    wide.page.click("#continue")
    wide.page.wait_for_function(
        "() => document.querySelectorAll('.cl-generated').length === 30", timeout=20_000
    )
    drawn = wide.page.eval_on_selector_all(".cl-generated", "es => es.map(e => e.textContent)")
    assert "".join(drawn) == (LETTERS[3:] + LETTERS)[:30]
    assert min(wide.probs(".cl-generated")) >= 0.999


def shown(char: str) -> str:
    """How the page names a character: whitespace by symbol and word, others quoted."""
    names = {" ": "␣ space", "\n": "↵ newline", "\t": "→ tab", "\u00a0": "⍽ no-break space"}
    return names.get(char, json.dumps(char))


def pick_alternative(p: Page, index: int, how: str) -> str:
    """Select the character at `index`, then press `how` ("replace" or "continue") for
    the first alternative its tooltip offers; the alternative."""
    p.page.click(f".cl-ch[data-index='{index}']")
    button = p.page.locator(f".cl-tip .cl-choice-{how}").first
    button.wait_for()
    char = button.get_attribute("data-char")
    assert char
    button.click()
    return char


def test_an_alternative_replaces_the_character_and_rescores(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    text = PROSE[:60]
    wide.type_text(text)
    wide.page.click(".cl-ch[data-index='10']")
    tip = wide.page.inner_text(".cl-tip")
    assert f"instead of {shown(text[10])}" in tip
    char = pick_alternative(wide, 10, "replace")
    assert char != text[10]
    changed = text[:10] + char + text[11:]
    assert wide.page.input_value("#text") == changed
    wide.page.wait_for_function(
        "c => document.querySelector('.cl-ch[data-index=\"10\"]').textContent === c", arg=char
    )
    full = httpx.post(server.url + "/score", json={"model": "notes", "text": changed}).json()
    drawn = wide.probs(".cl-scored")
    assert drawn == pytest.approx([s["prob"] for s in full["steps"]], rel=1e-6)
    # The replaced character keeps the selection, with its tooltip, now about it.
    assert wide.page.get_attribute(".cl-selected", "data-index") == "10"
    assert wide.page.is_visible("#view .cl-tip")
    assert wide.page.inner_text("#view .cl-tip").startswith(f"{shown(char)} at position 10")
    # And the text before can be brought back.
    assert wide.page.inner_text("#undo") == "Undo “replace”"
    wide.page.click("#undo")
    assert wide.page.input_value("#text") == text


def test_an_alternative_continues_the_text_from_there(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "alphabet")
    wide.type_text("abcdefgh")
    wide.page.fill("#length", "5")
    char = pick_alternative(wide, 4, "continue")  # instead of "e"
    assert wide.page.input_value("#text") == "abcd" + char
    wide.page.wait_for_function(
        "() => document.querySelectorAll('.cl-generated').length === 5", timeout=20_000
    )
    drawn = wide.page.eval_on_selector_all(".cl-generated", "es => es.map(e => e.textContent)")
    start = LETTERS.index(char) + 1
    assert "".join(drawn) == (LETTERS + LETTERS)[start : start + 5]


def test_two_models_side_by_side(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    text = PROSE[:120]
    wide.type_text(text)
    assert not wide.page.is_visible("#comparison")
    wide.page.select_option("#compare", "overfit")
    wide.page.wait_for_selector("#diff .cl-ch[data-diff]")
    assert "notes against overfit" in wide.page.inner_text("#comparison h2")
    a = httpx.post(server.url + "/score", json={"model": "notes", "text": text}).json()
    b = httpx.post(server.url + "/score", json={"model": "overfit", "text": text}).json()
    want = [
        math.log2(x["prob"]) - math.log2(y["prob"])
        for x, y in zip(a["steps"], b["steps"], strict=True)
    ]
    got = [
        float(d)
        for d in wide.page.eval_on_selector_all(
            "#diff .cl-ch[data-diff]", "es => es.map(e => e.dataset.diff)"
        )
    ]
    assert got == pytest.approx(want, abs=1e-5)
    summary = wide.page.inner_text("#comparison .cl-summary")
    assert f"notes: {a['bits_per_char']:#.4g} bits/char" in summary
    assert f"overfit: {b['bits_per_char']:#.4g} bits/char" in summary
    surer = sum(d < 0 for d in want)
    assert f"overfit surer on {surer} of {len(want)} characters" in summary
    wide.page.hover("#diff .cl-ch[data-index='5']")
    tip = wide.page.inner_text("#comparison .cl-tip")
    assert "bits of surprise against notes" in tip and "notes gave it" in tip
    # Typing re-draws both; "none" takes the comparison away.
    wide.type_text(text[:80])
    wide.page.wait_for_function("() => document.querySelectorAll('#diff .cl-ch').length === 80")
    wide.page.select_option("#compare", "")
    wide.page.wait_for_selector("#comparison", state="hidden")


def test_inside_the_lstm(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    text = "The rain (it came) and went.\nSo 'it' did.\n"
    wide.type_text(text)
    wide.page.click("#cells summary")
    wide.page.wait_for_function(
        "n => document.querySelectorAll('#cell-view .cl-ch').length === n", arg=len(text)
    )
    # Two layers of a 32-unit LSTM: the last layer's cell state by default.
    assert wide.page.eval_on_selector_all("#cell-layer option", "os => os.map(o => o.value)") == [
        "0",
        "1",
    ]
    assert (
        wide.page.input_value("#cell-layer") == "1"
        and wide.page.input_value("#cell-kind") == "cell"
    )
    values = [
        float(v)
        for v in wide.page.eval_on_selector_all(
            "#cell-view .cl-ch", "es => es.map(e => e.dataset.value)"
        )
    ]
    want = httpx.post(
        server.url + "/activations",
        json={"model": "notes", "text": text, "layer": 1, "kind": "cell", "cells": [0]},
    ).json()
    assert values == pytest.approx(want["series"][0]["values"], abs=1e-6)
    # The units that follow each feature, as buttons; one shades the text by that unit.
    features = wide.page.inner_text("#cell-features")
    assert "inside single quotes ('...')" in features and "brackets ( [ { open" in features
    # Units with |r| >= 0.3 are offered; a feature no unit follows that closely says so.
    for f in want["features"]:
        row = wide.page.locator(f"#cell-features [data-feature='{f['feature']}']")
        offered = row.locator(".cl-unit-pick").evaluate_all("bs => bs.map(b => +b.dataset.unit)")
        assert offered == [c["cell"] for c in f["cells"] if abs(c["r"]) >= 0.3]
        if f["cells"] and not offered:
            assert "no unit follows it closely" in row.inner_text()
    strong = [f for f in want["features"] if f["cells"] and abs(f["cells"][0]["r"]) >= 0.3]
    top = strong[0]["cells"][0]
    button = wide.page.locator(f"#cell-features .cl-unit-pick[data-unit='{top['cell']}']").first
    button.click()
    wide.page.wait_for_function(
        "u => document.getElementById('cell-view').textContent.includes('unit ' + u)",
        arg=top["cell"],
    )
    assert wide.page.input_value("#cell-unit") == str(top["cell"])
    # Another layer and a gate; the tooltip gives the value.
    wide.page.select_option("#cell-layer", "0")
    wide.page.select_option("#cell-kind", "forget_gate")
    wide.page.wait_for_function(
        "() => document.getElementById('cell-view').textContent.includes('forget gate')"
    )
    gate = [
        float(v)
        for v in wide.page.eval_on_selector_all(
            "#cell-view .cl-ch", "es => es.map(e => e.dataset.value)"
        )
    ]
    assert all(0 <= v <= 1 for v in gate)  # (float32 sigmoids can round to 1)
    wide.page.hover("#cell-view .cl-ch[data-index='3']")
    assert f"forget gate of unit {top['cell']}: {gate[3]:.3f}" in wide.page.inner_text(
        "#cells .cl-tip"
    )
    # A unit the layer does not have: the form's words, in the panel that asked, and no
    # view left showing another unit under controls that say this one.
    wide.page.fill("#cell-unit", "32")
    wide.page.dispatch_event("#cell-unit", "change")
    assert "“unit” must be a whole number from 0 to 31" in wide.page.inner_text("#cell-error")
    assert wide.page.inner_text("#error") == ""
    assert wide.page.locator("#cell-view .cl-ch").count() == 0


def test_a_gru_shows_only_its_hidden_state(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "gru")
    wide.type_text("abcdefgh")
    wide.page.click("#cells summary")
    wide.page.wait_for_selector("#cell-view .cl-ch")
    kinds = wide.page.eval_on_selector_all("#cell-kind option", "os => os.map(o => o.value)")
    assert kinds == ["hidden"]
