"""The inspector page and the HTML report, driven in headless Chromium.

Chromium comes from the system (Debian's `chromium` package; CI installs it). Without
it these tests are skipped, except under CI=true, where they fail instead.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from charlm.cli import main

from .serving import Server

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow, pytest.mark.server]  # a browser and a real server process

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def server(inspector_server: Server) -> Server:
    """The inspector's server (tests/conftest.py), one for the session's browser tests."""
    return inspector_server


class Page:
    """A browser page that records console errors, uncaught exceptions and requests."""

    def __init__(self, browser: object, width: int = 1000) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open_inspector(self, server: Server, model: str) -> None:
        self.page.goto(server.url + "/")
        self.page.wait_for_selector(f"#model option[value={model}]", state="attached")
        self.page.select_option("#model", model)

    def type_text(self, text: str) -> None:
        self.page.fill("#text", text)
        self.page.wait_for_function(
            "t => document.querySelectorAll('#view .cl-ch').length === Array.from(t).length",
            arg=text,
        )

    def probs(self, selector: str) -> list[float]:
        return [
            float(p)
            for p in self.page.eval_on_selector_all(selector, "es => es.map(e => e.dataset.prob)")
        ]


@pytest.fixture
def page(browser: object) -> Iterator[Page]:
    p = Page(browser)
    yield p
    p.page.close()
    assert p.errors == []


def test_alphabet_is_shaded_near_certain(page: Page, server: Server, tmp_path: Path) -> None:
    page.open_inspector(server, "alphabet")
    names = page.page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
    assert names == ["alphabet", "gru", "notes", "overfit"]
    assert "26 symbols" in page.page.inner_text("#model-info")
    assert "no detector fired" in page.page.inner_text("#model-diagnosis")
    page.type_text("abcdefg")
    assert page.page.locator(".cl-context").count() == 1  # 'a' has no prediction
    probs = page.probs(".cl-scored")
    assert len(probs) == 6 and min(probs) >= 0.999
    colours = page.page.eval_on_selector_all(".cl-scored", "es => es.map(e => e.style.background)")
    assert len(set(colours)) >= 1 and all(c.startswith("rgb(") for c in colours)
    page.page.hover(".cl-scored >> nth=2")  # 'd'
    tip = page.page.inner_text(".cl-tip")
    shown = float(re.search(r"probability ([\d.]+)%", tip).group(1))  # type: ignore[union-attr]
    assert shown >= 99.9 and "rank 1 (top choice)" in tip and "alternatives:" in tip
    assert '"d" at position 3' in tip
    assert "min probability 99.9" in page.page.inner_text(".cl-summary")
    page.page.screenshot(path=str(tmp_path / "inspector.png"), full_page=True)
    assert (tmp_path / "inspector.png").stat().st_size > 10_000


def test_the_training_diagnosis_is_shown_beside_the_model(page: Page, server: Server) -> None:
    page.open_inspector(server, "overfit")
    box = page.page.locator("#model-diagnosis")
    box.locator("summary").wait_for()
    assert "1 finding" in box.inner_text()
    title = box.locator("summary").inner_text()
    assert title.startswith("overfitting (step ") and "validation loss rose" in title
    page.page.click("#model-diagnosis summary")
    assert "try: --dropout" in box.inner_text()
    page.page.select_option("#model", "alphabet")
    assert "no detector fired" in box.inner_text()


def test_continue_appends_the_cycle(page: Page, server: Server) -> None:
    page.open_inspector(server, "alphabet")
    page.type_text("abc")
    page.page.fill("#length", "30")
    page.page.click("#continue")
    page.page.wait_for_selector(".cl-generated")
    generated = page.page.eval_on_selector_all(".cl-generated", "es => es.map(e => e.textContent)")
    assert "".join(generated) == (LETTERS[3:] + LETTERS)[:30]
    assert min(page.probs(".cl-generated")) >= 0.999
    page.page.hover(".cl-generated >> nth=0")
    assert "chosen greedily" in page.page.inner_text(".cl-tip")
    page.page.click("#accept")
    assert page.page.input_value("#text") == "abc" + (LETTERS[3:] + LETTERS)[:30]
    # (a function, not an expression: the page's content security policy forbids eval)
    page.page.wait_for_function("() => document.querySelectorAll('.cl-scored').length === 32")


def test_a_gru_model_is_inspected_like_an_lstm(page: Page, server: Server) -> None:
    page.open_inspector(server, "gru")
    page.page.wait_for_function(
        "() => document.querySelector('#model-info').innerText.includes('GRU')"
    )
    page.type_text("uvwxyzab")
    assert min(page.probs(".cl-scored")) >= 0.99
    page.page.fill("#length", "5")
    page.page.click("#continue")
    page.page.wait_for_selector(".cl-generated")
    generated = page.page.eval_on_selector_all(".cl-generated", "es => es.map(e => e.textContent)")
    assert "".join(generated) == "cdefg"


def test_sampling_mode_shades_the_sample(page: Page, server: Server) -> None:
    page.open_inspector(server, "notes")
    page.type_text("The rain ")
    page.page.select_option("#mode", "sample")
    page.page.fill("#temperature", "0.8")
    page.page.fill("#length", "25")
    page.page.click("#continue")
    page.page.wait_for_selector(".cl-generated")
    probs = page.probs(".cl-generated")
    assert len(probs) == 25 and all(0 < p <= 1 for p in probs)
    page.page.hover(".cl-generated >> nth=0")
    assert "sampled" in page.page.inner_text(".cl-tip")


def test_unknown_characters_are_skipped_and_flagged_inline(page: Page, server: Server) -> None:
    """A character the model does not know is marked and skipped: the reading goes on
    from the state before it, so d is shaded as if the text were "abcde"."""
    page.open_inspector(server, "alphabet")
    page.type_text("abc1de")
    assert page.page.inner_text(".cl-unknown") == "1"
    assert page.page.locator(".cl-scored").count() == 4  # b, c, d and e
    assert page.page.locator(".cl-unscored").count() == 0
    assert '"1" at 3' in page.page.inner_text("#view .cl-summary")
    assert page.page.inner_text("#error") == ""
    plain = httpx.post(server.url + "/score", json={"model": "alphabet", "text": "abcde"}).json()
    assert page.probs(".cl-scored") == pytest.approx([s["prob"] for s in plain["steps"]], rel=1e-6)
    page.type_text("abcdefgh")  # fixing the text brings the shading back
    assert page.page.locator(".cl-unknown").count() == 0 and page.page.inner_text("#error") == ""


def test_keyboard_steps_through_characters(page: Page, server: Server) -> None:
    page.open_inspector(server, "alphabet")
    page.type_text("lmnopq")
    page.page.focus(".cl-text")
    for _ in range(3):
        page.page.keyboard.press("ArrowRight")
    assert page.page.get_attribute(".cl-selected", "data-index") == "3"
    assert '"o" at position 3' in page.page.inner_text(".cl-live")
    page.page.keyboard.press("End")
    assert page.page.get_attribute(".cl-selected", "data-index") == "5"
    page.page.click(".cl-min")
    assert page.page.locator(".cl-selected").count() == 1


def test_narrow_screen_has_no_sideways_scroll(
    browser: object, server: Server, tmp_path: Path
) -> None:
    p = Page(browser, width=360)
    p.open_inspector(server, "notes")
    p.type_text("The wren came back to the woodpile, and the rain stopped at last.")
    overflow = p.page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    p.page.screenshot(path=str(tmp_path / "narrow.png"), full_page=True)
    p.page.close()
    assert overflow <= 0 and p.errors == []


def test_html_report_renders_offline(browser: object, alphabet_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    assert main(["score", str(alphabet_dir), "uvwxyzabc", "--html", str(report)]) == 0
    p = Page(browser)
    p.page.goto(report.as_uri())
    p.page.wait_for_selector(".cl-scored")
    assert min(p.probs(".cl-scored")) >= 0.999 and len(p.probs(".cl-scored")) == 8
    p.page.hover(".cl-scored >> nth=0")
    assert "alternatives:" in p.page.inner_text(".cl-tip")
    p.page.close()
    assert p.errors == [] and p.requests == [report.as_uri()]


def test_html_report_escapes_the_text(browser: object, tmp_path: Path) -> None:
    corpus = tmp_path / "html.txt"
    corpus.write_text("</script><b>bold</b> & <i>x</i>; " * 40)
    assert (
        main(
            [
                "train",
                str(corpus),
                "--checkpoints-dir",
                str(tmp_path),
                "--quiet",
                "--max-steps",
                "30",
            ]
        )
        == 0
    )
    report = tmp_path / "report.html"
    text = "</script><b>bold</b> & x"
    assert main(["score", str(tmp_path / "html"), text, "--html", str(report)]) == 0
    p = Page(browser)
    p.page.goto(report.as_uri())
    p.page.wait_for_selector(".cl-scored")
    drawn = "".join(p.page.eval_on_selector_all(".cl-ch", "es => es.map(e => e.textContent)"))
    assert drawn == text  # as itself: spaces are spaces
    assert p.page.evaluate("document.querySelectorAll('main b, main i').length") == 0
    p.page.close()
    assert p.errors == []
