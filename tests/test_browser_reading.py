"""The inspector as a reader sees it, at a desktop and a phone width: prose that reads and
wraps as prose, ink that contrasts with every shade, and API docs that work offline.
Real Chromium against a real server; no request may leave the server."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CORPORA, copy_checkpoint
from .serving import Server
from .test_browser import Page, server

__all__ = ["server"]  # the fixtures, shared with test_browser.py

pytestmark = [pytest.mark.slow, pytest.mark.server]  # a browser and a real server process

WIDTHS = [1280, 360]
PROSE = (CORPORA / "notes.txt").read_text(encoding="utf-8")[:700]


class Guarded:
    """A page at a width whose requests outside the server are refused and recorded."""

    def __init__(self, browser: object, width: int, server_url: str) -> None:
        self.page = Page(browser, width=width)
        self.outside: list[str] = []

        def route(r: object) -> None:
            url = r.request.url  # type: ignore[attr-defined]
            if url.startswith(server_url):
                r.continue_()  # type: ignore[attr-defined]
            else:
                self.outside.append(url)
                r.abort()  # type: ignore[attr-defined]

        self.page.page.route("**/*", route)

    def close(self) -> None:
        """Close it; no request left the server, and the console logged no error."""
        self.page.page.close()
        assert self.outside == [], self.outside
        assert self.page.errors == []


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def wide(request: pytest.FixtureRequest, browser: object, server: Server) -> Iterator[Page]:
    g = Guarded(browser, request.param, server.url)
    yield g.page
    g.close()


def _contrast(fg: str, bg: str) -> float:
    def lum(css: str) -> float:
        r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])

        def lin(v: int) -> float:
            c = v / 255
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)

    a, b = sorted((lum(fg), lum(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def test_prose_reads_and_wraps_between_words(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    wide.type_text(PROSE)
    drawn = wide.page.inner_text(".cl-text")
    assert "␣" not in drawn and "↵" not in drawn
    # Every word's characters sit on one line: lines break only between words.
    tops = wide.page.eval_on_selector_all(
        ".cl-ch", "es => es.map(e => [e.textContent, Math.round(e.getBoundingClientRect().top)])"
    )
    lines = {top for _, top in tops}
    assert len(lines) > 3  # the text really wraps at this width
    word: list[int] = []
    for char, top in [*tops, (" ", 0)]:
        if char.strip() and char not in "-—/":
            word.append(top)
            continue
        assert len(set(word)) <= 1, "a word was broken across lines"
        word = []
    overflow = wide.page.evaluate("document.documentElement.scrollWidth - innerWidth")
    assert overflow <= 0
    # The markers come back on request, and go again.
    wide.page.check(".cl-markers-toggle")
    wide.page.wait_for_function("() => document.querySelector('.cl-text').innerText.includes('␣')")
    assert wide.page.locator(".cl-ch").count() == len(PROSE)
    wide.page.uncheck(".cl-markers-toggle")
    wide.page.wait_for_function("() => !document.querySelector('.cl-text').innerText.includes('␣')")


def test_every_shade_has_readable_ink(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    wide.type_text(PROSE[:300])
    pairs = wide.page.eval_on_selector_all(
        ".cl-scored",
        "es => es.map(e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor])",
    )
    assert len(pairs) == 299
    ratios = [_contrast(fg, bg) for fg, bg in pairs]
    assert min(ratios) >= 4.5, min(ratios)
    # And across the whole scale, not only the shades this text happens to use.
    scale = wide.page.evaluate(
        """() => Array.from({length: 2001}, (_, i) => {
            const p = 1e-4 + (1 - 2e-4) * i / 2000;
            return ['rgb(' + CharLM.colourRgb(p).join(',') + ')', CharLM.ink(p)];
        })"""
    )
    inks = {"#000": "rgb(0,0,0)", "#fff": "rgb(255,255,255)"}
    worst = min(_contrast(bg, inks[ink]) for bg, ink in scale)
    assert worst >= 4.5, worst


def test_api_docs_work_offline(wide: Page, server: Server) -> None:
    wide.page.goto(server.url + "/docs")
    wide.page.wait_for_selector(".opblock", timeout=20_000)
    paths = wide.page.eval_on_selector_all(
        ".opblock-summary-path", "es => es.map(e => e.textContent)"
    )
    assert "/predict" in " ".join(paths) and "/accuracy" in " ".join(paths)
    wide.page.goto(server.url + "/redoc")
    wide.page.wait_for_function(
        "() => document.body.innerText.includes('/predict')", timeout=20_000
    )


LONG = (PROSE * 8)[:5000]


def test_keyboard_and_the_min_link_keep_the_selection_in_view(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    wide.type_text(LONG)
    view = wide.page

    def selected_in_view() -> bool:
        return bool(
            view.evaluate(
                """() => { const r = document.querySelector('.cl-selected').getBoundingClientRect();
                           return r.top >= -1 && r.bottom <= innerHeight + 1; }"""
            )
        )

    box = view.locator(".cl-text").bounding_box()
    assert box is not None
    view.mouse.move(box["x"] + box["width"] / 2, box["y"] + 40)  # the pointer rests on the text
    view.focus(".cl-text")
    view.keyboard.press("End")
    assert view.get_attribute(".cl-selected", "data-index") == str(len(LONG) - 1)
    assert selected_in_view()
    assert f"at position {len(LONG) - 1}" in view.inner_text(".cl-tip")
    # Up and Down move a drawn line, not a character.
    view.keyboard.press("Home")
    start = view.evaluate(
        "() => document.querySelector('.cl-selected').getBoundingClientRect().toJSON()"
    )
    view.keyboard.press("ArrowDown")
    below = view.evaluate(
        "() => document.querySelector('.cl-selected').getBoundingClientRect().toJSON()"
    )
    assert below["top"] > start["top"] + start["height"] / 2
    assert abs(below["left"] - start["left"]) < 3 * start["width"] + 2
    view.keyboard.press("ArrowUp")
    assert view.get_attribute(".cl-selected", "data-index") == "0"
    # The link to the least likely character selects it, scrolls to it, and the tooltip
    # shows it, whatever lands under the resting pointer.
    link = view.inner_text(".cl-min")
    position = int(re.search(r"at position (\d+)", link).group(1))  # type: ignore[union-attr]
    view.focus(".cl-min")
    view.keyboard.press("Enter")
    assert view.get_attribute(".cl-selected", "data-index") == str(position)
    assert selected_in_view()
    view.wait_for_timeout(100)  # any hover events the scroll causes
    assert f"at position {position}:" in view.inner_text(".cl-tip")
    tip = view.evaluate("() => document.querySelector('.cl-tip').getBoundingClientRect().toJSON()")
    assert tip["top"] >= 0 and tip["bottom"] <= view.viewport_size["height"]  # type: ignore[index]


def test_continue_checks_its_length_and_shows_it_is_busy(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    wide.type_text(PROSE[:80])
    view = wide.page
    asked = len([u for u in wide.requests if "/generate" in u])
    view.fill("#length", "0")
    view.click("#continue")
    assert "“continue by” must be a whole number of characters, 1 or more" in view.inner_text(
        "#error"
    )
    assert len([u for u in wide.requests if "/generate" in u]) == asked  # nothing was sent
    view.fill("#length", "1500")
    during = view.evaluate(
        """() => { document.getElementById('continue').click();
                   return [document.getElementById('continue').disabled,
                           document.getElementById('view').getAttribute('aria-busy'),
                           document.getElementById('status').textContent]; }"""
    )
    assert during == [True, "true", "continuing greedily: 0 of 1500 characters"]
    view.wait_for_function("() => !document.getElementById('continue').disabled", timeout=60_000)
    assert view.locator(".cl-generated").count() == 1500
    assert view.inner_text("#status") == "" and view.get_attribute("#view", "aria-busy") == "false"
    # Over the server's cap: the error names the form's field, not the API's.
    view.fill("#length", "10001")
    view.click("#continue")
    view.wait_for_function("() => document.getElementById('error').textContent !== ''")
    error = view.inner_text("#error")
    assert "“continue by” is 10001; the limit is 10000" in error
    assert "(set by --max-generate-length)" in error  # the server's flag, for its operator
    assert "length" not in error.replace("“continue by”", "").replace("--max-generate-length", "")
    # Chromium logs every answer of 400 or more; the refusal was the point here.
    wide.errors[:] = [e for e in wide.errors if "status of 422" not in e]


def test_failures_mark_the_shading_out_of_date(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    wide.type_text(PROSE[:60])
    view = wide.page
    assert view.locator("#view.cl-stale").count() == 0
    sent: list[int] = []  # the size of each /score request
    view.on("request", lambda r: r.url.endswith("/score") and sent.append(len(r.post_data)))
    # A text over the server's limit: refused, and the old shading marked as such.
    # (Chromium fills it as many input events: the page was asked again while it waited.)
    view.fill("#text", (PROSE * 40)[:20_001])
    # (A slow answer marks the view out of date too, before the refusal comes.)
    view.wait_for_function(
        "() => document.getElementById('error').textContent.replace(/,/g, '').includes('20001')"
    )
    assert view.locator("#view.cl-stale").count() == 1
    wide.type_text(PROSE[:60])  # back under the limit: fresh shading
    view.wait_for_function("() => !document.getElementById('view').classList.contains('cl-stale')")
    assert sum(size > 20_001 for size in sent) == 1  # the refused text was not sent again
    # The server stops answering.
    view.route(server.url + "/score", lambda r: r.abort())
    view.fill("#text", PROSE[:70])
    view.wait_for_function(
        "() => document.getElementById('error').textContent.includes('could not be reached')"
    )
    assert view.locator("#view.cl-stale").count() == 1
    # Chromium logs the refused (413) and the failed requests; they were the point here.
    wide.errors[:] = [e for e in wide.errors if "Failed to load resource" not in e]


def test_the_plot_has_an_axis_and_points_at_characters(wide: Page, server: Server) -> None:
    view = wide.page
    wide.open_inspector(server, "notes")
    text = (PROSE * 3)[:1500]  # past the 400 characters that get dots of their own
    wide.type_text(text)
    summary = view.locator(".cl-summary").bounding_box()
    box = view.locator(".cl-text").bounding_box()
    assert summary is not None and box is not None and summary["y"] < box["y"]  # above the text
    ticks = view.eval_on_selector_all(
        ".cl-xtick", "es => es.map(e => [e.textContent, e.getBoundingClientRect().height])"
    )
    assert len(ticks) >= 3 and ticks[0][0] == "0"
    assert min(h for _, h in ticks) >= 9  # readable at this width, not shrunk to 5 px
    assert "position in the text" in view.inner_text(".cl-plot")
    view.locator(".cl-plot svg").scroll_into_view_if_needed()
    plot = view.locator(".cl-hit").bounding_box()
    assert plot is not None
    view.mouse.move(plot["x"] + plot["width"] * 0.7, plot["y"] + plot["height"] / 2)
    pointed = view.get_attribute(".cl-pointed", "data-index")
    assert pointed is not None and 900 < int(pointed) < 1200
    assert f"at position {pointed}:" in view.inner_text(".cl-tip")
    view.mouse.click(plot["x"] + plot["width"] * 0.7, plot["y"] + plot["height"] / 2)
    assert view.get_attribute(".cl-selected", "data-index") == pointed
    in_view = view.evaluate(
        """() => { const r = document.querySelector('.cl-selected').getBoundingClientRect();
                   return r.top >= -1 && r.bottom <= innerHeight + 1; }"""
    )
    assert in_view


def test_a_phone_sees_the_text_on_its_first_screen(browser: object, server: Server) -> None:
    p = Page(browser, width=360)
    p.page.set_viewport_size({"width": 360, "height": 640})
    p.open_inspector(server, "notes")
    p.type_text(PROSE[:45])
    shaded = p.page.locator(".cl-text").bounding_box()
    assert shaded is not None
    assert shaded["y"] + shaded["height"] < 640  # the shaded text, whole, on screen one
    assert p.page.locator("#continue").is_visible()  # below it, not gone
    p.page.close()
    assert p.errors == []


@pytest.mark.parametrize("width", WIDTHS)
def test_models_trained_while_the_page_is_open_appear(
    browser: object, tmp_path_factory: pytest.TempPathFactory, alphabet_dir: Path, width: int
) -> None:
    from charlm.training import fit

    root = tmp_path_factory.mktemp("live") / "checkpoints"
    copy_checkpoint(alphabet_dir, root / "alphabet")
    live = Server(root)
    g = Guarded(browser, width, live.url)
    p = g.page
    try:
        p.open_inspector(live, "alphabet")
        p.page.fill("#text", "abc!abc!")
        p.page.wait_for_function("() => document.querySelectorAll('.cl-unknown').length === 2")
        corpus = tmp_path_factory.mktemp("corpus") / "bang.txt"
        corpus.write_text("abc!" * 300)
        small = {"max_steps": 60}
        fit(corpus, root / "alphabet", overwrite=True, train_overrides=small, plots=False)
        fit(corpus, root / "second", train_overrides=small, plots=False)
        # Within a refresh: the new model is listed, the retrained one's vocabulary is used.
        p.page.wait_for_selector("#model option[value=second]", state="attached", timeout=20_000)
        p.page.wait_for_function(
            "() => document.querySelectorAll('.cl-unknown').length === 0"
            " && document.querySelectorAll('.cl-scored').length === 7",
            timeout=20_000,
        )
        assert p.page.input_value("#model") == "alphabet"  # the choice stays
        assert p.page.is_hidden("#offers")  # nothing unknown left to offer a mapping for
        assert "4 symbols" in p.page.inner_text("#model-info")
    finally:
        live.stop()
    g.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_characters_of_several_code_points_are_drawn_whole(
    browser: object, tmp_path_factory: pytest.TempPathFactory, width: int
) -> None:
    from charlm.training import fit

    root = tmp_path_factory.mktemp("graphemes") / "checkpoints"
    corpus = root.parent / "cafe.txt"
    corpus.write_text("cafe\u0301 \U0001f44d\U0001f3fd " * 200)  # é decomposed; 👍🏽
    fit(corpus, root / "cafe", train_overrides={"max_steps": 200}, plots=False)
    live = Server(root)
    g = Guarded(browser, width, live.url)
    p = g.page
    try:
        p.open_inspector(live, "cafe")
        text = "cafe\u0301 \U0001f44d\U0001f3fd cafe\u0301"
        p.page.fill("#text", text)
        p.page.wait_for_function("() => document.querySelectorAll('.cl-scored').length === 10")
        drawn = p.page.eval_on_selector_all(".cl-ch", "es => es.map(e => e.textContent)")
        assert drawn == ["c", "a", "f", "e\u0301", " ", "\U0001f44d\U0001f3fd", " ", "c", "a",
                         "f", "e\u0301"]  # fmt: skip
        # The emoji's shade is the probability of both its code points, as /score gives them.
        import httpx2 as httpx

        steps = httpx.post(live.url + "/score", json={"model": "cafe", "text": text}).json()[
            "steps"
        ]
        by_position = {s["position"]: s["prob"] for s in steps}
        emoji = p.page.locator(".cl-ch >> nth=5")
        assert float(emoji.get_attribute("data-prob") or 0) == pytest.approx(
            by_position[6] * by_position[7], rel=1e-6
        )
        emoji.hover()
        tip = p.page.inner_text(".cl-tip")
        assert "2 code points" in tip and "U+1F44D" in tip and "U+1F3FD" in tip
    finally:
        live.stop()
    g.close()


def test_the_next_characters_distribution_is_listed(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "alphabet")
    wide.type_text("abc")
    view = wide.page
    view.wait_for_function("() => document.querySelectorAll('#next-list li').length === 26")
    rows = view.eval_on_selector_all(
        "#next-list li",
        "es => es.map(e => [e.querySelector('.cl-next-char').textContent,"
        " parseFloat(e.querySelector('.cl-next-prob').textContent),"
        " e.querySelector('.cl-next-bar').getBoundingClientRect().width])",
    )
    assert rows[0][0] == "d" and rows[0][1] >= 99.9
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    assert rows[0][2] > 50 * max(rows[1][2], 0.01)  # the bars are to scale
    wide.page.fill("#text", "")
    view.wait_for_function("() => document.getElementById('next').hidden")


RANK_COLOURS = ["rgb(76, 175, 80)", "rgb(255, 213, 79)", "rgb(239, 83, 80)", "rgb(142, 36, 170)"]


def test_shading_by_rank_with_its_legend_and_histograms(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    wide.type_text(PROSE[:400])
    view = wide.page
    assert view.locator(".cl-hist-prob .cl-hist-row").count() == 8
    view.select_option(".cl-colour-by", "rank")
    view.wait_for_selector(".cl-rank-legend")
    shaded = view.eval_on_selector_all(
        ".cl-scored", "es => es.map(e => [+e.dataset.rank, getComputedStyle(e).backgroundColor])"
    )
    assert len(shaded) == 399
    for rank, background in shaded:
        bucket = 0 if rank <= 1 else 1 if rank <= 5 else 2 if rank <= 20 else 3
        assert background == RANK_COLOURS[bucket], (rank, background)
    legend = [
        int(c)
        for c in view.eval_on_selector_all(".cl-rank-item", "es => es.map(e => e.dataset.count)")
    ]
    ranks = [r for r, _ in shaded]
    assert legend == [
        sum(r <= 1 for r in ranks),
        sum(1 < r <= 5 for r in ranks),
        sum(5 < r <= 20 for r in ranks),
        sum(r > 20 for r in ranks),
    ]
    hist = view.eval_on_selector_all(
        ".cl-hist-rank .cl-hist-row", "es => es.map(e => +e.dataset.count)"
    )
    assert hist == legend
    probs = view.eval_on_selector_all(
        ".cl-hist-prob .cl-hist-row", "es => es.map(e => +e.dataset.count)"
    )
    assert sum(probs) == 399
    ratios = view.eval_on_selector_all(
        ".cl-scored",
        "es => es.map(e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor])",
    )
    assert min(_contrast(fg, bg) for fg, bg in ratios) >= 4.5
    view.select_option(".cl-colour-by", "probability")
    view.wait_for_selector(".cl-legend-bar")


def test_the_view_downloads_as_a_report(wide: Page, server: Server, tmp_path: Path) -> None:
    wide.open_inspector(server, "alphabet")
    wide.type_text("abcdef")
    view = wide.page
    view.fill("#length", "4")
    view.click("#continue")
    view.wait_for_selector(".cl-generated")
    with view.expect_download() as info:
        view.click("#download")
    saved = tmp_path / "report.html"
    info.value.save_as(saved)
    assert info.value.suggested_filename == "charlm-alphabet-report.html"
    report = Page(wide.page.context.browser)
    report.page.goto(saved.as_uri())
    report.page.wait_for_selector(".cl-scored")
    drawn = "".join(report.page.eval_on_selector_all(".cl-ch", "es => es.map(e => e.textContent)"))
    assert drawn == "abcdefghij"  # the text and its continuation
    assert min(report.probs(".cl-scored")) >= 0.999
    assert all(u.startswith("file:") for u in report.requests), report.requests
    report.page.close()
    assert report.errors == []


def test_sampling_controls_reach_the_service(wide: Page, server: Server) -> None:
    wide.open_inspector(server, "notes")
    wide.type_text("The rain ")
    view = wide.page
    view.select_option("#mode", "sample")
    view.fill("#length", "30")
    view.fill("#top-k", "3")
    view.fill("#top-p", "0.9")
    view.fill("#seed", "7")
    texts = []
    for _ in range(2):
        view.click("#continue")
        view.wait_for_function("() => !document.getElementById('continue').disabled")
        view.wait_for_selector(".cl-generated")
        texts.append(
            "".join(view.eval_on_selector_all(".cl-generated", "es => es.map(e => e.textContent)"))
        )
        ranks = view.eval_on_selector_all(".cl-generated", "es => es.map(e => +e.dataset.rank)")
        assert all(1 <= r <= 3 for r in ranks), ranks  # top-k 3: never below third
    assert texts[0] == texts[1] and len(texts[0]) == 30  # the same seed, the same sample
    view.fill("#top-p", "2")
    view.click("#continue")
    view.wait_for_function("() => document.getElementById('error').textContent !== ''")
    assert "“top-p”" in view.inner_text("#error") and "top_p" not in view.inner_text("#error")
    wide.errors[:] = [e for e in wide.errors if "status of 422" not in e]
