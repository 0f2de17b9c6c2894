"""The shape of the code: small modules, dependencies that point one way."""

import ast
import re
from pathlib import Path

from .conftest import REPO

CHARLM = REPO / "charlm"
SERVICE = REPO / "service"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def test_no_module_has_grown_into_several() -> None:
    """Where a module splits is a judgement about what it owns, not a line count; this
    only catches one that has grown far past what any module here needs (the largest
    are about 450 lines)."""
    for path in modules(CHARLM) + modules(SERVICE):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 600, f"{path.relative_to(REPO)} has {lines} lines: what does it own?"


def test_inference_does_not_import_training() -> None:
    for path in modules(CHARLM / "inference"):
        assert not any(m.startswith("charlm.training") for m in imports(path)), path


def test_the_library_knows_nothing_of_the_web() -> None:
    for path in modules(CHARLM):
        web = {m for m in imports(path) if m.split(".")[0] in ("fastapi", "starlette")}
        assert not web, (path, web)
        assert not any(m.startswith(("service", "charlm_service")) for m in imports(path)), path


def test_the_service_stays_out_of_model_internals() -> None:
    for path in modules(SERVICE):
        text = path.read_text(encoding="utf-8")
        assert "predictor.model" not in text, path
        assert "CharRNN" not in text and "CharLSTM" not in text, path
        assert not any(m.split(".")[0] == "torch" or m == "charlm.model" for m in imports(path))


def test_every_package_is_installed() -> None:
    """A subpackage missing from pyproject's list works in an editable install and is
    absent from a wheel."""
    import tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "charlm").rglob("__init__.py")
    }
    found |= {  # the service installs as charlm_service
        ".".join(("charlm_service", *p.parent.relative_to(REPO / "service").parts))
        for p in (REPO / "service").rglob("__init__.py")
    }
    assert found <= listed, found - listed


def _marks(decorators: list[ast.expr]) -> set[str]:
    """The `pytest.mark.NAME` names among `decorators` (or in a `pytestmark` value)."""
    found = set()
    for d in decorators:
        for node in ast.walk(d):
            inner = node.value if isinstance(node, ast.Attribute) else None
            if isinstance(inner, ast.Attribute) and inner.attr == "mark":
                found.add(node.attr)  # type: ignore[union-attr]
    return found


STARTS_SERVER = re.compile(r"(?<![A-Za-z_])Server\(")  # tests/serving.py's Server


def test_every_test_that_starts_a_server_is_marked_server() -> None:
    """`pytest -m "not server"` must leave out every test that starts `charlm serve`,
    whether the test starts it or a fixture of its module does."""
    unmarked = []
    for path in sorted((REPO / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module_marks: set[str] = set()
        starts: set[str] = set()  # functions of the module that start a server
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
            ):
                module_marks |= _marks([node.value])
            if isinstance(node, ast.FunctionDef) and STARTS_SERVER.search(ast.unparse(node)):
                starts.add(node.name)
        for node in tree.body:
            if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test_")):
                continue
            uses = node.name in starts or any(a.arg in starts for a in node.args.args)
            if uses and "server" not in module_marks | _marks(node.decorator_list):
                unmarked.append(f"{path.name}::{node.name}")
    assert unmarked == []
