"""The documentation: the README's shape, the command-line reference against the parser,
and the MkDocs site, built strictly and read in headless Chromium with no network."""

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from .serving import static_files

REPO = Path(__file__).resolve().parent.parent


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_opens_with_the_two_commands_and_stays_short() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert (
        blocks[0]
        .strip()
        .endswith("charlm train corpora/alphabet.txt && charlm predict alphabet abc --continue 26")
    )
    assert blocks[1].strip() == (
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]' && pytest"
    )
    assert len(text.splitlines()) <= 200
    # Every page it links to exists (GitHub reads these links as they are).
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target


def test_the_command_line_reference_is_the_parsers_help() -> None:
    """docs/cli.md is written by docs/cli_reference.py; a flag added, removed or reworded
    without running it fails here, with the command that brings the page up to date."""
    written = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    module = _load(REPO / "docs" / "cli_reference.py")
    columns = os.environ.get("COLUMNS")
    try:
        made = module.reference()
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    assert written == made, "docs/cli.md is out of date: run python docs/cli_reference.py"
    for command in ("train", "predict", "serve", "sweep", "corpus make latch"):
        assert f"## `charlm {command}`" in written
    assert "--max-minutes" in written and "--on-unknown" not in written.split("## `charlm")[0]


def test_the_hooks_point_root_links_at_site_pages() -> None:
    hooks = _load(REPO / "docs" / "hooks.py")
    page = hooks.on_page_markdown("see [B](../BENCHMARKS.md#x) and [T](training.md)", None, {}, [])
    assert page == "see [B](benchmarks.md#x) and [T](training.md)"
    home = hooks._page("README.md")
    assert "](docs/" not in home and "](training.md)" in home and "](benchmarks.md)" in home


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built with `mkdocs build --strict` (any warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    return out


@pytest.fixture(scope="module")
def site_url(site: Path) -> Iterator[str]:
    """The built site on a loopback port."""
    with static_files(site) as url:
        yield url + "/"


def test_the_site_has_every_page_and_the_api_from_the_docstrings(site: Path) -> None:
    pages = {p.parent.name for p in site.glob("*/index.html")}
    assert {
        "training",
        "diagnostics",
        "serving",
        "openai",
        "inspector",
        "corpora",
        "lab",
        "scaling",
        "architecture",
        "cli",
        "api",
        "development",
        "benchmarks",
    } <= pages
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("charlm.fit", "charlm.Predictor", "from_checkpoint", "charlm.watch"):
        assert name in api
    # fit's own docstring, rendered: the API page is made from the code.
    assert "Train on" in api and "writing checkpoints into" in api


@pytest.mark.slow
def test_the_site_reads_offline_with_no_broken_link(browser: object, site_url: str) -> None:
    """Every page reached from the home page, every link between them (anchors included),
    the navigation and the search, with every request outside the site refused."""
    context = browser.new_context()  # type: ignore[attr-defined]
    outside: list[str] = []
    host = urlparse(site_url).netloc

    def route(r: object) -> None:
        url = r.request.url  # type: ignore[attr-defined]
        if urlparse(url).netloc == host or url.startswith("data:"):
            r.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            r.abort()  # type: ignore[attr-defined]

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Crawl: every page linked from a page of the site, and every anchor asked for.
    seen: dict[str, set[str]] = {}  # page -> ids on it
    wanted: list[tuple[str, str, str]] = []  # (from, page, anchor)
    queue = [site_url]
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        answer = page.goto(url)
        assert answer is not None and answer.status == 200, url
        seen[url] = set(page.eval_on_selector_all("[id]", "es => es.map(e => e.id)"))
        for href in page.eval_on_selector_all("a[href]", "es => es.map(e => e.href)"):
            target, anchor = urldefrag(urljoin(url, href))
            if urlparse(target).netloc != host:
                continue
            if not target.endswith("/"):
                # an image or a file: it must be there
                assert page.request.get(target).status == 200, (url, href)
                continue
            if anchor:
                wanted.append((url, target, anchor))
            queue.append(target)
    assert len(seen) >= 20
    broken = [(f, p, a) for f, p, a in wanted if a not in seen[p]]
    assert not broken, broken[:10]

    # The navigation: from the home page to the training page in one click.
    page.goto(site_url)
    page.click("nav.md-nav--primary a.md-nav__link[href$='training/']")
    page.wait_for_url("**/training/")
    assert page.inner_text("h1").rstrip("\u00b6") == "Training"  # less its permalink

    # The search: a word from the diagnostics, found and followed.
    page.goto(site_url)
    page.keyboard.press("/")  # the search's shortcut
    page.keyboard.type("zero_grad")
    page.wait_for_selector(".md-search-result__item a", timeout=20_000)
    page.locator(".md-search-result__item a").first.click()
    page.wait_for_load_state()
    assert "zero_grad" in page.inner_text("article")

    assert outside == []
    assert errors == []
    context.close()
