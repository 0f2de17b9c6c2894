"""The inspector's screenshots in docs/inspector.md, taken from a real server and Chromium.

    python docs/inspector_shots.py CHECKPOINTS_DIR MODEL [--text FILE]

Starts `charlm serve` on CHECKPOINTS_DIR, opens the inspector at 1280 x 900 and at 360 x
640 (Playwright, the system's Chromium), pastes the first 1,200 characters of FILE
(default: tiny Shakespeare from ../shared/corpora) with every ' made a curly one (U+2019), as text
copied from a web page has it, and saves:

    docs/inspector-pasted.png   the curly quotes skipped and marked, the one-click offers
    docs/inspector-range.png    the statistics of a marked range
    docs/inspector-continue.png a continuation from a tooltip, told apart from the text
    docs/inspector-strip.png    the heat strip of every unit, the most active at a column
    docs/inspector-feature.png  the units that follow a regular expression
    docs/inspector-phone.png    the pinned tooltip on a phone
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
from playwright.sync_api import Page, sync_playwright

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
SHAKESPEARE = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shaded(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.wait_for_function(
        "n => document.querySelectorAll('#view .cl-ch').length === n"
        " && !document.querySelector('#view [data-pending-from]')",
        arg=len(text),
        timeout=60_000,
    )


def shot(page: Page, selector: str, name: str, pad: int = 8) -> None:
    """A picture of the part of the page from the top of the first of `selector`'s
    elements to the bottom of the last."""
    boxes = page.eval_on_selector_all(  # in the page's coordinates, wherever it is scrolled
        selector,
        "es => es.filter(e => e.getClientRects().length).map(e => {"
        " const r = e.getBoundingClientRect(); return [r.top + scrollY, r.bottom + scrollY]; })",
    )
    top = min(b[0] for b in boxes) - pad
    bottom = max(b[1] for b in boxes) + pad
    width = page.viewport_size["width"] if page.viewport_size else 1280
    page.screenshot(
        path=str(DOCS / name),
        full_page=True,
        clip={"x": 0, "y": max(0, top), "width": width, "height": bottom - max(0, top)},
    )
    print("wrote", DOCS / name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", type=Path)
    ap.add_argument("model")
    ap.add_argument("--text", type=Path, default=SHAKESPEARE)
    args = ap.parse_args()
    text = args.text.read_text(encoding="utf-8")[:1200].replace("'", "\u2019")
    port = free_port()
    cmd = [sys.executable, "-m", "charlm", "serve", "--checkpoints-dir", str(args.checkpoints)]
    server = subprocess.Popen([*cmd, "--port", str(port), "--log-level", "warning"], cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "/")
            page.wait_for_function("() => document.getElementById('model').options.length > 0")
            page.select_option("#model", args.model)
            shaded(page, text)
            shot(page, "#offers, #view .cl-legend-box, #view .cl-summary", "inspector-pasted.png")
            page.click("#offers .cl-offer")  # U+2019 -> '
            shaded(page, text.replace("\u2019", "'"))
            page.click("#view .cl-ch[data-index='120']")
            page.click("#view .cl-ch[data-index='260']", modifiers=["Shift"])
            page.mouse.move(0, 0)
            shot(page, "#view .cl-range", "inspector-range.png")
            page.keyboard.press("Escape")
            page.fill("#length", "60")
            page.click("#view .cl-ch[data-index='300']")
            page.locator(".cl-tip .cl-choice-continue").first.click()
            page.wait_for_function(
                "() => document.querySelectorAll('#view .cl-generated').length === 60",
                timeout=60_000,
            )
            page.mouse.move(0, 0)
            shot(page, ".cl-edits, #view .cl-summary, #view .cl-text", "inspector-continue.png")
            page.click("#undo")
            shaded(page, text.replace("\u2019", "'"))
            page.click("#cells > summary")
            page.wait_for_selector("#cell-strip canvas", timeout=60_000)
            canvas = page.locator("#cell-strip canvas")
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + 4)
            page.fill("#feature-regex", r"^[A-Z][a-z]+( [A-Z][a-z]+)?:$")
            page.click("#feature-form button[type=submit]")
            page.wait_for_selector("#feature-result .cl-unit-pick", timeout=60_000)
            shot(page, "#cells > summary, #cell-strip", "inspector-strip.png")
            shot(page, "#feature-form, #feature-result", "inspector-feature.png")
            phone = browser.new_page(viewport={"width": 360, "height": 640})
            phone.goto(url + "/")
            phone.wait_for_function("() => document.getElementById('model').options.length")
            phone.select_option("#model", args.model)
            shaded(phone, text.replace("\u2019", "'")[:400])
            phone.click("#view .cl-ch[data-index='179']")
            phone.wait_for_selector("#view .cl-tip.cl-tip-pinned")
            phone.screenshot(path=str(DOCS / "inspector-phone.png"))
            print("wrote", DOCS / "inspector-phone.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
