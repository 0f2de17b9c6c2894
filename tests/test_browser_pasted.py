"""The inspector with text as people bring it, at a desktop and a phone width: pasted
from the web (characters the model never saw), edited by the model's own suggestions,
reloaded, read on a phone. Each test is one of the defects a user met; real Chromium
against a real server, every number checked against the API's."""

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from .serving import Server
from .test_browser import Page, server
from .test_browser_panels import shown
from .test_browser_reading import PROSE, Guarded, wide

__all__ = ["server", "wide"]

pytestmark = [pytest.mark.slow, pytest.mark.server]  # a browser and a real server process

# What copying from a web page gives: curly apostrophes, an en dash, no-break spaces, and
# curly double quotes, which the notes model cannot map (it has no " at all).
PASTED = (
    PROSE[:240].replace(" the ", " the\u00a0", 2)
    + "\nIt\u2019s the hoe\u2019s edge \u2013 not the spade\u2019s \u201cbite\u201d."
)


def score(server: Server, text: str, **extra: object) -> dict[str, object]:
    body = {"model": "notes", "text": text, "alternatives": 5, **extra}
    r = httpx.post(server.url + "/score", json=body, timeout=60)
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


def shaded(p: Page, text: str) -> None:
    """Paste `text` and wait until every character is drawn and none lags behind."""
    p.page.fill("#text", text)
    p.page.wait_for_function(
        "n => document.querySelectorAll('#view .cl-ch').length === n"
        " && !document.querySelector('#view [data-pending-from]')"
        " && !document.getElementById('view').classList.contains('cl-stale')",
        arg=len(text),
    )


def throttle(p: Page, latency: int = 0, download: int = -1) -> Callable[..., None]:
    """Slow `p`'s connection (ms of latency, bytes/s down; -1: unlimited); returns a
    function that sets new conditions."""
    cdp = p.page.context.new_cdp_session(p.page)
    cdp.send("Network.enable")

    def conditions(latency: int = 0, download: int = -1) -> None:
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": latency,
                "downloadThroughput": download,
                "uploadThroughput": -1,
            },
        )

    conditions(latency, download)
    return conditions


@pytest.fixture
def phone(browser: object, server: Server) -> Iterator[Page]:
    """A 360 x 640 page (a phone held upright)."""
    g = Guarded(browser, 360, server.url)
    g.page.page.set_viewport_size({"width": 360, "height": 640})
    yield g.page
    g.close()


def test_unknown_characters_are_skipped_and_mapped_in_one_click(wide: Page, server: Server) -> None:
    """Defect 1: one character the model has never seen blanked the rest of the text."""
    wide.open_inspector(server, "notes")
    shaded(wide, PASTED)
    unknown = [i for i, c in enumerate(PASTED) if c in "\u2019\u2013\u201c\u201d\u00a0"]
    assert wide.page.locator("#view .cl-unknown").count() == len(unknown)
    assert wide.page.locator("#view .cl-unscored").count() == 0
    want = score(server, PASTED, on_unknown="skip")
    assert [u["position"] for u in want["unknown"]] == unknown  # type: ignore[union-attr]
    assert wide.probs("#view .cl-scored") == pytest.approx(
        [s["prob"] for s in want["steps"]],  # type: ignore[union-attr]
        rel=1e-6,
    )
    # The mappings to characters the model knows are offered, each and all at once; “ and
    # ” are not (the model has no ").
    offered = wide.page.eval_on_selector_all(
        "#offers .cl-offer[data-char]", "bs => bs.map(b => b.dataset.char)"
    )
    assert sorted(offered) == sorted(["\u2019", "\u2013", "\u00a0"])
    wide.page.click("#offers .cl-offer-all")
    mapped = PASTED.replace("\u2019", "'").replace("\u2013", "-").replace("\u00a0", " ")
    assert wide.page.input_value("#text") == mapped
    wide.page.wait_for_function("() => document.querySelectorAll('#view .cl-unknown').length === 2")
    want = score(server, mapped, on_unknown="skip")
    assert wide.probs("#view .cl-scored") == pytest.approx(
        [s["prob"] for s in want["steps"]],  # type: ignore[union-attr]
        rel=1e-6,
    )
    # What was pasted is one click away.
    wide.page.click("#undo")
    assert wide.page.input_value("#text") == PASTED


def test_continue_from_here_keeps_the_original(wide: Page, server: Server) -> None:
    """Defect 2: "continue from here" deleted the rest of the text with no way back."""
    wide.open_inspector(server, "notes")
    text = PROSE[:300]
    shaded(wide, text)
    wide.page.fill("#length", "12")
    wide.page.click("#view .cl-ch[data-index='40']")
    wide.page.locator(".cl-tip .cl-choice-continue").first.click()
    wide.page.wait_for_function(
        "() => document.querySelectorAll('#view .cl-generated').length === 12", timeout=20_000
    )
    assert len(wide.page.input_value("#text")) == 41
    assert wide.page.inner_text("#undo") == "Undo “continue from here”"
    wide.page.click("#undo")
    assert wide.page.input_value("#text") == text
    wide.page.wait_for_function(
        "n => document.querySelectorAll('#view .cl-ch').length === n", arg=len(text)
    )
    assert wide.page.is_hidden("#undo")


def test_every_panel_follows_continue_from_here(wide: Page, server: Server) -> None:
    """Defect 3: after "continue from here" the next-character bars, the comparison and
    the Inside view still showed the old text."""
    wide.open_inspector(server, "notes")
    shaded(wide, PROSE[:200])
    wide.page.select_option("#compare", "overfit")
    wide.page.wait_for_function("() => !document.getElementById('comparison').hidden")
    wide.page.click("#cells > summary")
    wide.page.wait_for_function(
        "() => document.querySelectorAll('#cell-view .cl-ch').length === 200"
    )
    wide.page.fill("#length", "5")
    wide.page.click("#view .cl-ch[data-index='30']")
    wide.page.locator(".cl-tip .cl-choice-continue").first.click()
    wide.page.wait_for_function(
        "() => document.querySelectorAll('#view .cl-generated').length === 5", timeout=20_000
    )
    text = wide.page.input_value("#text")
    assert len(text) == 31
    for panel in ("#diff", "#cell-view"):
        wide.page.wait_for_function(
            "s => document.querySelectorAll(s + ' .cl-ch').length === 31", arg=panel
        )
    predicted = httpx.post(
        server.url + "/predict", json={"model": "notes", "text": text, "top_k": 3}
    ).json()["next"]
    bars = wide.page.eval_on_selector_all(
        "#next-list li",
        "es => es.slice(0, 3).map(e => e.querySelector('.cl-next-prob').textContent)",
    )
    probs = [c["prob"] for c in predicted]
    assert bars == wide.page.evaluate("ps => ps.map(CharLM.percent)", probs)
    assert wide.page.locator(".cl-stale").count() == 0  # and nothing says it lags


def test_a_lagging_panel_says_it_is_out_of_date(wide: Page, server: Server) -> None:
    """Defect 3: nothing was marked out of date. With a slow connection, the panels
    that have not caught up with the text say so, and stop saying it when they have."""
    wide.open_inspector(server, "notes")
    shaded(wide, PROSE[:120])
    net = throttle(wide, latency=1500)
    wide.page.focus("#text")
    wide.page.keyboard.press("End")
    wide.page.keyboard.type("s")
    wide.page.wait_for_function(
        "() => document.getElementById('next').classList.contains('cl-stale')"
        " && document.getElementById('view').classList.contains('cl-stale')"
    )
    assert "out of date" in wide.page.evaluate(
        "() => getComputedStyle(document.getElementById('next'), '::before').content"
    )
    net(latency=0)
    wide.page.wait_for_function(
        "() => document.querySelectorAll('.cl-stale').length === 0"
        " && document.querySelectorAll('#view .cl-ch').length === 121",
        timeout=20_000,
    )


def in_view(p: Page, selector: str) -> bool:
    """Whether any of the element lies inside the window."""
    return bool(
        p.page.eval_on_selector(
            selector,
            "e => { const r = e.getBoundingClientRect();"
            " return r.bottom > 0 && r.top < innerHeight && r.height > 0; }",
        )
    )


@pytest.mark.parametrize("size", [(1280, 800), (360, 640)], ids=["1280px", "360px"])
def test_results_appear_where_the_eye_is(
    browser: object, server: Server, size: tuple[int, int]
) -> None:
    """Defect 4: the stream sat thousands of pixels above "continue from here", a chosen
    comparison appeared off-screen, the Inside panel's error at the top of the page, and
    the plot's tooltip beside a character out of sight."""
    g = Guarded(browser, size[0], server.url)
    p = g.page
    p.page.set_viewport_size({"width": size[0], "height": size[1]})
    p.open_inspector(server, "notes")
    shaded(p, PROSE)
    net = throttle(p, download=20000)
    p.page.fill("#length", "5000")
    p.page.select_option("#mode", "sample")
    last = len(PROSE) - 20
    p.page.click(f"#view .cl-ch[data-index='{last}']")
    p.page.locator(".cl-tip .cl-choice-continue").first.click()
    p.page.wait_for_function(
        "() => document.getElementById('streamed').textContent.length >= 5", timeout=20_000
    )
    assert in_view(p, "#streamed") and in_view(p, "#stop")
    # The stream follows its newest characters.
    p.page.wait_for_function(
        "() => { const s = document.getElementById('streamed');"
        " return s.scrollHeight > s.clientHeight + 5"
        " && s.scrollTop + s.clientHeight >= s.scrollHeight - 2; }",
        timeout=30_000,
    )
    # The stop and the scoring that follows it run at full speed: at 20 kB/s the scores
    # of the text and its continuation alone took longer than the wait below.
    net()
    p.page.click("#stop")
    p.page.wait_for_function("() => !document.getElementById('continue').disabled", timeout=20_000)
    # A model to compare with: the comparison comes into view.
    p.page.evaluate("() => window.scrollTo(0, 0)")
    p.page.select_option("#compare", "overfit")
    p.page.wait_for_function("() => !document.getElementById('comparison').hidden")
    p.page.wait_for_timeout(300)
    assert in_view(p, "#comparison h2")
    # The Inside panel's error, beside its unit box.
    p.page.click("#cells > summary")
    p.page.wait_for_selector("#cell-view .cl-ch")
    p.page.fill("#cell-unit", "999")
    p.page.dispatch_event("#cell-unit", "change")
    assert "from 0 to 31" in p.page.inner_text("#cell-error")
    gap = p.page.evaluate(
        "() => document.getElementById('cell-error').getBoundingClientRect().top"
        " - document.getElementById('cell-unit').getBoundingClientRect().bottom"
    )
    assert 0 <= gap < 120
    # The plot's tooltip, at the plot.
    p.page.locator("#view .cl-plot svg").scroll_into_view_if_needed()
    box = p.page.locator("#view .cl-plot svg").bounding_box()
    assert box is not None
    p.page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.4)
    tip = p.page.locator("#view .cl-tip").bounding_box()
    assert tip is not None and p.page.is_visible("#view .cl-tip")
    assert box["y"] - tip["height"] - 20 <= tip["y"] <= box["y"] + box["height"] + 20
    assert in_view(p, "#view .cl-tip")
    g.close()


def test_choices_outlive_keystrokes_and_reloads(wide: Page, server: Server) -> None:
    """Defect 5: the rank view and "show spaces" reverted on every keystroke; a reload
    lost the text and the model; the default model was the first by name."""
    wide.page.goto(server.url + "/")
    wide.page.wait_for_function("() => document.getElementById('model').options.length > 0")
    models = httpx.get(server.url + "/models").json()["models"]
    best = max(models, key=lambda m: (m["vocab_size"], m["parameters"]))["name"]
    assert wide.page.input_value("#model") == best != "alphabet"
    wide.page.select_option("#model", "notes")
    shaded(wide, PROSE[:150])
    wide.page.select_option("#view .cl-colour-by", "rank")
    wide.page.check("#view .cl-markers-toggle")
    wide.page.focus("#text")
    wide.page.keyboard.press("End")
    wide.page.keyboard.type("a")
    wide.page.wait_for_function("() => document.querySelectorAll('#view .cl-ch').length === 151")
    assert wide.page.input_value("#view .cl-colour-by") == "rank"
    assert wide.page.is_checked("#view .cl-markers-toggle")
    assert wide.page.locator("#view .cl-rank-legend").count() == 1
    # A choice changed after typing redraws the text as it is now.
    wide.page.uncheck("#view .cl-markers-toggle")
    wide.page.check("#view .cl-markers-toggle")
    assert wide.page.locator("#view .cl-ch").count() == 151
    wide.page.select_option("#mode", "sample")
    wide.page.fill("#length", "17")
    wide.page.dispatch_event("#length", "change")
    wide.page.reload()
    wide.page.wait_for_function("() => document.querySelectorAll('#view .cl-ch').length === 151")
    assert wide.page.input_value("#text") == PROSE[:150] + "a"
    assert wide.page.input_value("#model") == "notes"
    assert wide.page.input_value("#view .cl-colour-by") == "rank"
    assert wide.page.is_checked("#view .cl-markers-toggle")
    assert wide.page.input_value("#mode") == "sample" and wide.page.input_value("#length") == "17"
    assert not wide.page.is_disabled("#temperature")


def test_the_pinned_tooltip_fits_a_phone(phone: Page, server: Server) -> None:
    """Defect 6: the phone's pinned tooltip ran past the screen's bottom, and each
    "continue from here" wrapped onto its own line."""
    phone.open_inspector(server, "notes")
    shaded(phone, PROSE[:400])
    phone.page.click("#view .cl-ch[data-index='179']")
    phone.page.wait_for_selector("#view .cl-tip.cl-tip-pinned")
    tip = phone.page.locator("#view .cl-tip").bounding_box()
    assert tip is not None
    assert tip["y"] >= 0 and tip["y"] + tip["height"] <= 640 and tip["height"] <= 320
    rows = phone.page.eval_on_selector_all(
        "#view .cl-choice",
        "rs => rs.map(r => [...r.querySelectorAll('button')].map(b =>"
        " Math.round(b.getBoundingClientRect().top)))",
    )
    assert rows and all(len(set(tops)) == 1 for tops in rows)  # each row on one line


def test_a_continuation_is_told_apart_from_the_text(
    wide: Page, server: Server, browser: object, tmp_path: Path
) -> None:
    """Defect 7: the summary and the downloaded report did not tell the prompt from the
    continuation."""
    wide.open_inspector(server, "notes")
    text = PROSE[:80]
    shaded(wide, text)
    wide.page.fill("#length", "25")
    wide.page.click("#continue")
    wide.page.wait_for_function(
        "() => document.querySelectorAll('#view .cl-generated').length === 25", timeout=20_000
    )
    made = "".join(
        wide.page.eval_on_selector_all("#view .cl-generated", "es => es.map(e => e.textContent)")
    )
    steps = score(server, text + made)["steps"]
    written = [-math.log2(s["prob"]) for s in steps if s["position"] < len(text)]  # type: ignore[index, union-attr]
    cont = [-math.log2(s["prob"]) for s in steps if s["position"] >= len(text)]  # type: ignore[index, union-attr]
    summary = wide.page.inner_text("#view .cl-summary")
    assert f"written: 79 characters, {sum(written) / 79:#.4g} bits/char" in summary
    assert f"continuation: 25 characters, {sum(cont) / 25:#.4g} bits/char" in summary
    titles = wide.page.eval_on_selector_all(
        "#view .cl-charts .cl-hist-title", "ts => ts.map(t => t.textContent)"
    )
    assert "characters in the continuation, by rank" in titles
    # The report: the same continuation marked as generated, its statistics apart.
    with wide.page.expect_download() as download:
        wide.page.click("#download")
    saved = tmp_path / "report.html"
    download.value.save_as(saved)
    report = Page(browser)
    report.page.goto(saved.as_uri())
    assert report.page.locator(".cl-generated").count() == 25
    assert f"continuation: 25 characters, {sum(cont) / 25:#.4g} bits/char" in (
        report.page.inner_text(".cl-summary")
    )
    assert report.errors == [] and report.requests == [saved.as_uri()]
    report.page.close()
    bad = httpx.post(
        server.url + "/report", json={"model": "notes", "text": "abc", "generated_from": 3}
    )
    assert bad.status_code == 422 and "generated_from" in bad.json()["error"]["message"]


def test_characters_and_numbers_are_written_one_way(wide: Page, server: Server) -> None:
    """Defect 7: "\\n" in tooltips but "↵ (newline)" in the bars; "0.11%" beside
    "6.41e-4"; 0.00e+0 to 0.10% as a histogram label."""
    wide.open_inspector(server, "notes")
    shaded(wide, "The rain came.\nThe")
    newline = "The rain came.\n".index("\n")
    wide.page.hover(f"#view .cl-ch[data-index='{newline}']")
    assert wide.page.inner_text("#view .cl-tip").startswith(f"{shown(chr(10))} at position")
    shaded(wide, "The rain came.\n")
    bars = wide.page.eval_on_selector_all(".cl-next-char", "es => es.map(e => e.textContent)")
    assert "↵ newline" in bars and "␣ space" in bars
    numbers = " ".join(
        wide.page.eval_on_selector_all(
            ".cl-next-prob, .cl-hist-label, .cl-tick", "es => es.map(e => e.textContent)"
        )
    )
    assert "e-" not in numbers and "e+" not in numbers
    labels = wide.page.eval_on_selector_all(
        "#view .cl-hist-prob .cl-hist-label", "es => es.map(e => e.textContent)"
    )
    assert labels[0] == "< 0.1%" and labels[-1] == "≥ 99.9%"
    smallest = min(
        json.loads(p)
        for p in wide.page.eval_on_selector_all(
            ".cl-next-prob", "es => es.map(e => JSON.stringify(parseFloat(e.textContent)))"
        )
    )
    assert smallest < 0.1  # some rows are under 0.1%, and still written as percentages


def test_the_inside_panel_shows_it_is_working(wide: Page, server: Server) -> None:
    """Defect 7: the Inside panel showed no busy state."""
    wide.open_inspector(server, "notes")
    shaded(wide, PROSE[:100])
    throttle(wide, latency=1200)
    wide.page.click("#cells > summary")
    wide.page.wait_for_function(
        "() => document.getElementById('cells').getAttribute('aria-busy') === 'true'"
        " && document.getElementById('cell-status').textContent.includes('reading')"
    )
    wide.page.wait_for_function(
        "() => document.getElementById('cells').getAttribute('aria-busy') === 'false'"
        " && document.querySelectorAll('#cell-view .cl-ch').length === 100",
        timeout=20_000,
    )
    assert wide.page.inner_text("#cell-status") == ""


def test_a_continuation_outlives_an_analysis_started_after_it(wide: Page, server: Server) -> None:
    """An analysis queued behind a slow one started after Continue was pressed; it used
    to cancel the continuation without a word."""
    wide.open_inspector(server, "notes")
    shaded(wide, PROSE[:100])
    throttle(wide, latency=600)
    wide.page.fill("#text", PROSE[:110])  # an analysis in flight,
    wide.page.fill("#text", PROSE[:120])  # and one queued behind it
    wide.page.fill("#length", "8")
    wide.page.click("#continue")
    wide.page.wait_for_function(
        "() => document.querySelectorAll('#view .cl-generated').length === 8"
        " && document.querySelectorAll('#view .cl-ch').length === 128",
        timeout=30_000,
    )
    assert wide.page.inner_text("#error") == ""


def test_pasted_text_is_continued_as_the_model_reads_it(wide: Page, server: Server) -> None:
    """Continue on a text with characters the model does not know continues the text it
    reads (them skipped), as the shading does."""
    wide.open_inspector(server, "alphabet")
    shaded(wide, "abc\u2019de")
    wide.page.fill("#length", "4")
    wide.page.click("#continue")
    wide.page.wait_for_function(
        "() => document.querySelectorAll('#view .cl-generated').length === 4", timeout=20_000
    )
    made = wide.page.eval_on_selector_all("#view .cl-generated", "es => es.map(e => e.textContent)")
    assert "".join(made) == "fghi" and wide.page.inner_text("#error") == ""
