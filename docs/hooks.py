"""MkDocs hooks: the repository's root files as pages of the site.

README.md is the site's home page; BENCHMARKS.md, RELIABILITY.md and EXPERIMENTS.md live at
the root, where the scripts that measure them write; LICENSE is the licence. The site shows
each as a page, so that none is copied into docs/. Links are written to work on GitHub
(`docs/training.md` from the root, `../BENCHMARKS.md` from docs/); on the site they point
at the pages instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Root file -> the page it becomes.
ROOT_PAGES = {
    "README.md": "index.md",
    "BENCHMARKS.md": "benchmarks.md",
    "RELIABILITY.md": "reliability.md",
    "EXPERIMENTS.md": "experiments.md",
    "LICENSE": "license.md",
}
_NAMES = "|".join(re.escape(n) for n in ROOT_PAGES)
_FROM_DOCS = re.compile(r"\]\(\.\./(" + _NAMES + r")\b")
_FROM_ROOT = re.compile(r"\]\((" + _NAMES + r")\b")


def _page(name: str) -> str:
    """The markdown of root file `name` as a page of the site."""
    text = (ROOT / name).read_text(encoding="utf-8")
    if not name.endswith(".md"):
        return f"# {name.title()}\n\n```\n{text.rstrip()}\n```\n"
    text = _FROM_ROOT.sub(lambda m: "](" + ROOT_PAGES[m.group(1)], text)
    return text.replace("](docs/", "](")  # at the root, the pages are under docs/


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for name, page in ROOT_PAGES.items():
        files.append(File.generated(config, page, content=_page(name)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return _FROM_DOCS.sub(lambda m: "](" + ROOT_PAGES[m.group(1)], markdown)
