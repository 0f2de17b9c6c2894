"""The four posts' loops (tests/loops/), broken and fixed, under the watcher: through the
two lines a user adds (`--watch`) and through `charlm watch SCRIPT` with the script
unchanged. Broken: the post's cause is named. Fixed: nothing fires.

The loops run in this process (as `python SCRIPT` would run them), with fewer steps
than their defaults where a finding needs fewer; the latching loop's fixed run is the
one that learns (5 steps of sequence, the learning rate 1e-2: at 20 steps a one-unit
net does not latch, whatever the split).
"""

from __future__ import annotations

import contextlib
import io
import runpy
import sys
from pathlib import Path

import pytest

from charlm.cli import main
from charlm.watcher import Watcher

pytestmark = pytest.mark.slow  # 20 short training runs

LOOPS = Path(__file__).parent / "loops"

RUNS = {  # (script, broken run's arguments, fixed run's arguments, the cause)
    "000": ("post_000_sequence.py", ["--steps", "60"], ["--steps", "150"], "gradients_accumulate"),
    "001": ("post_001_functions.py", ["--steps", "50"], ["--steps", "1000"], "no_gradient"),
    "002": (
        "post_002_latching.py",
        [],
        ["--length", "5", "--lr", "0.01"],
        "split_mismatch",
    ),
    "003": ("post_003_softmax.py", ["--steps", "200"], ["--steps", "200"], "bounded_softmax"),
}


def findings(report: str) -> list[str]:
    """The names in a report's "Findings (n)" block (not those seen and passed)."""
    out, inside = [], False
    for line in report.splitlines():
        if line.startswith("Findings ("):
            inside = True
        elif inside and line.startswith("  step "):
            out.append(line.split(": ", 1)[1])
        elif inside and not line.startswith(" "):
            inside = False
    return out


def run_loop(script: str, args: list[str]) -> tuple[str, str]:
    """Run a loop as `python SCRIPT ARGS` would, here: (its standard output, error)."""
    out, err = io.StringIO(), io.StringIO()
    argv, path = sys.argv, list(sys.path)
    sys.argv = [str(LOOPS / script), *args]
    sys.path.insert(0, str(LOOPS))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            names = runpy.run_path(str(LOOPS / script), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = argv, path
    for value in names.values():  # as the script's process would end: its hooks go
        if isinstance(value, Watcher):
            value.close()
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("post", sorted(RUNS))
def test_the_watcher_names_the_cause_and_passes_the_fix(post: str) -> None:
    script, broken_args, fixed_args, cause = RUNS[post]
    out, err = run_loop(script, [*broken_args, "--watch"])
    assert cause in findings(out), out[-3000:]
    assert f"charlm: {cause} at step " in err  # printed as it fired
    out, err = run_loop(script, [*fixed_args, "--fixed", "--watch"])
    assert "Findings: none; the run looks healthy." in out, out[-3000:]
    assert "Seen and passed" not in out and "charlm:" not in err


def test_the_latching_loop_names_its_split_and_what_follows() -> None:
    out, _ = run_loop("post_002_latching.py", ["--watch"])
    assert findings(out) == ["split_mismatch", "below_chance", "stuck_at_class_frequencies"]
    assert "the validation targets are all class 0 (400 of 400)" in out


@pytest.mark.parametrize("post", ["000", "001", "003"])
def test_charlm_watch_runs_the_script_unchanged(
    post: str, capsys: pytest.CaptureFixture[str]
) -> None:
    script, broken_args, fixed_args, cause = RUNS[post]
    assert main(["watch", str(LOOPS / script), *broken_args]) == 0
    err = capsys.readouterr().err
    assert findings(err) == [cause], err[-3000:]
    assert main(["watch", str(LOOPS / script), *fixed_args, "--fixed"]) == 0
    err = capsys.readouterr().err
    assert "Findings: none; the run looks healthy." in err and "charlm: " not in err


def test_charlm_watch_keeps_the_scripts_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "fails.py"
    script.write_text("import sys\nprint('bye')\nsys.exit(3)\n")
    assert main(["watch", str(script)]) == 3
    crash = tmp_path / "crash.py"
    crash.write_text("raise ValueError('boom')\n")
    assert main(["watch", str(crash)]) == 1
    err = capsys.readouterr().err
    assert "ValueError: boom" in err and "no step was seen" in err and "healthy" not in err
    assert main(["watch", str(tmp_path / "missing.py")]) == 2


LEFT_OUT = """
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Embedding(5, 8), nn.Flatten(), nn.Linear(24, 5))
optimizer = torch.optim.Adam(model[0].parameters(), lr=0.01)  # the head left out
x, y = torch.randint(5, (32, 3)), torch.randint(5, (32,))
for _ in range(5):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
"""


def test_charlm_watch_names_parameters_no_optimizer_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "left_out.py"
    script.write_text(LEFT_OUT)
    assert main(["watch", str(script)]) == 0
    err = capsys.readouterr().err
    assert findings(err) == ["not_optimized"], err
    assert "2 of the model's parameters are in no optimizer (Linear.weight, Linear.bias)" in err
    # only the parameters an optimizer holds are checked for gradients left over
    assert "gradients cleared yes: none of the 1 parameter held" in err
