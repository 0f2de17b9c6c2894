"""The inspector's views of many units and of part of a text, checked against the API's
numbers: the heat strip of every unit with the units most active at a chosen character,
a feature of the user's own (a regular expression, or a marked range) ranking the units,
and the statistics of a marked range. Real Chromium against a real server."""

import math
import re

import httpx2 as httpx
import pytest

from .serving import Server
from .test_browser import Page, server
from .test_browser_pasted import shaded
from .test_browser_reading import PROSE, wide

__all__ = ["server", "wide"]

pytestmark = [pytest.mark.slow, pytest.mark.server]  # a browser and a real server process

TEXT = PROSE[:160]
PROB_BINS = [0, 0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999]


def activations(server: Server, **body: object) -> dict[str, object]:
    r = httpx.post(server.url + "/activations", json={"model": "notes", **body}, timeout=60)
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


def open_cells(p: Page, server: Server) -> None:
    p.open_inspector(server, "notes")
    shaded(p, TEXT)
    p.page.click("#cells > summary")
    p.page.wait_for_function(
        "n => document.querySelectorAll('#cell-view .cl-ch').length === n"
        " && document.querySelector('#cell-strip canvas')",
        arg=len(TEXT),
    )


def test_the_heat_strip_draws_every_unit_and_names_the_most_active(
    wide: Page, server: Server
) -> None:
    open_cells(wide, server)
    every = activations(server, text=TEXT, layer=1, kind="cell", cells=list(range(32)), top=0)
    series = every["series"]  # type: ignore[index]
    size = wide.page.eval_on_selector("#cell-strip canvas", "c => [c.width, c.height]")
    assert size[0] % len(TEXT) == 0 and size[1] % 32 == 0  # a column a character, a row a unit
    # One pixel is the diverging scale's colour of that unit's value there.
    cw, rh = size[0] // len(TEXT), size[1] // 32
    x, unit = 37, 5
    pixel = wide.page.eval_on_selector(
        "#cell-strip canvas",
        "(c, a) => Array.from(c.getContext('2d').getImageData(a[0], a[1], 1, 1).data)",
        [x * cw, unit * rh],
    )
    value = series[unit]["values"][x]  # type: ignore[index]
    assert pixel[:3] == wide.page.evaluate("v => CharLM.diverging(v)", value)
    # A column clicked: the units furthest from 0 there, as buttons that shade by them.
    wide.page.locator("#cell-strip canvas").scroll_into_view_if_needed()
    box = wide.page.locator("#cell-strip canvas").bounding_box()
    assert box is not None
    wide.page.mouse.click(box["x"] + (x + 0.5) * cw * box["width"] / size[0], box["y"] + 2)
    listed = wide.page.eval_on_selector_all(
        "#cell-strip .cl-strip-top .cl-unit-pick", "bs => bs.map(b => +b.dataset.unit)"
    )
    at = [abs(s["values"][x]) for s in series]  # type: ignore[index]
    assert listed == sorted(range(32), key=lambda u: -at[u])[:8]
    wide.page.click(f"#cell-strip .cl-unit-pick[data-unit='{listed[0]}']")
    wide.page.wait_for_function(
        "u => document.getElementById('cell-unit').value === String(u)"
        " && document.getElementById('cell-view').textContent.includes('unit ' + u + ' in')",
        arg=listed[0],
    )


def test_a_regular_expression_ranks_the_units_by_how_they_follow_it(
    wide: Page, server: Server
) -> None:
    open_cells(wide, server)
    pattern = r"[A-Z][a-z]+"  # capitalised words
    wide.page.fill("#feature-regex", pattern)
    wide.page.click("#feature-form button[type=submit]")
    wide.page.wait_for_selector("#feature-result .cl-unit-pick")
    spans = [[m.start(), m.end()] for m in re.finditer(pattern, TEXT)]
    want = activations(server, text=TEXT, layer=1, kind="cell", top=8, marked=spans)
    own = want["features"][0]  # type: ignore[index]
    assert own["feature"] == "marked"
    got = wide.page.eval_on_selector_all(
        "#feature-result .cl-unit-pick", "bs => bs.map(b => [+b.dataset.unit, +b.dataset.r])"
    )
    assert [u for u, _ in got] == [c["cell"] for c in own["cells"]]
    assert [r for _, r in got] == pytest.approx([c["r"] for c in own["cells"]], abs=1e-9)
    marked = sum(b - a for a, b in spans)
    assert f"({marked} characters)" in wide.page.inner_text("#feature-result")
    # One that does not compile is refused in the panel, by JavaScript's own words.
    wide.page.fill("#feature-regex", "(unclosed")
    wide.page.click("#feature-form button[type=submit]")
    assert "not a regular expression" in wide.page.inner_text("#cell-error")


def test_a_marked_range_has_its_statistics_and_ranks_the_units(wide: Page, server: Server) -> None:
    open_cells(wide, server)
    wide.page.click("#view .cl-ch[data-index='20']")
    wide.page.click("#view .cl-ch[data-index='70']", modifiers=["Shift"])
    assert wide.page.locator("#view .cl-in-range").count() == 51
    steps = httpx.post(server.url + "/score", json={"model": "notes", "text": TEXT}).json()["steps"]
    part = [s for s in steps if 20 <= s["position"] <= 70]
    bpc = sum(-math.log2(s["prob"]) for s in part) / len(part)
    head = wide.page.inner_text("#view .cl-range-head")
    assert f"positions 20\u201370: 51 characters, {bpc:#.4g} bits/char" in head
    counts = wide.page.eval_on_selector_all(
        "#view .cl-range .cl-hist-prob .cl-hist-row", "rs => rs.map(r => +r.dataset.count)"
    )
    want = [0] * len(PROB_BINS)
    for s in part:
        want[max(k for k, edge in enumerate(PROB_BINS) if s["prob"] >= edge)] += 1
    assert counts == want
    ranks = wide.page.eval_on_selector_all(
        "#view .cl-range .cl-hist-rank .cl-hist-row", "rs => rs.map(r => +r.dataset.count)"
    )
    bounds = [1, 5, 20, math.inf]
    assert ranks == [
        sum(1 for s in part if (bounds[k - 1] if k else 0) < s["rank"] <= bounds[k])
        for k in range(4)
    ]
    # Shift with an arrow extends it; the tooltip says what the range holds.
    wide.page.keyboard.press("Shift+ArrowRight")
    assert wide.page.locator("#view .cl-in-range").count() == 52
    assert "range 20\u201371: 52 characters" in wide.page.inner_text("#view .cl-tip")
    # The marked range is a feature too: the units that follow it.
    wide.page.click("#feature-range")
    wide.page.wait_for_selector("#feature-result .cl-unit-pick")
    own = activations(server, text=TEXT, layer=1, kind="cell", top=8, marked=[[20, 72]])
    got = wide.page.eval_on_selector_all(
        "#feature-result .cl-unit-pick", "bs => bs.map(b => +b.dataset.unit)"
    )
    assert got == [c["cell"] for c in own["features"][0]["cells"]]  # type: ignore[index]
    # Escape clears it.
    wide.page.focus("#view .cl-text")
    wide.page.keyboard.press("Escape")
    assert wide.page.locator("#view .cl-in-range").count() == 0
    assert wide.page.is_hidden("#view .cl-range")
