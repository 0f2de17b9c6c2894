"""`charlm sweep`: the space file, real sweeps through the CLI, pruning through a real
trainer, and several real processes sharing one study in SQLite and in PostgreSQL.

Trials are tiny: notes.txt, models of 16 or 32 units, 0.03 minutes each.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from charlm import checkpoint
from charlm.cli import main
from charlm.errors import ConfigError
from charlm.sweep import (
    DEFAULT_SPACE,
    DEFAULT_SPACE_TOML,
    PRUNED,
    Objective,
    Param,
    check_storage,
    default_storage,
    open_storage,
    open_study,
    read_space,
)
from charlm.sweep.space import parse_space
from charlm.training.settings_file import read_settings

from .conftest import CORPORA, REPO
from .postgres import postgres_url  # noqa: F401 (a fixture)

NOTES = CORPORA / "notes.txt"
MINUTES = "0.03"
SPACE = """\
lr = { low = 5e-3, high = 5e-2, log = true }
hidden_size = { choices = [16, 32] }
seq_len = { choices = [8, 16] }
embedding_dim = 8
eval_interval = 10
"""


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(SPACE, encoding="utf-8")
    return path


# -- the space file -------------------------------------------------------------


def test_a_space_file_with_every_kind_of_entry(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text(
        'preset = "small"\n'
        "eval_interval = 50\n"
        "lr = { low = 1e-4, high = 0.1, log = true }\n"
        "dropout = { low = 0, high = 0.5 }\n"
        "num_layers = { low = 1, high = 3 }\n"
        'cell = { choices = ["lstm", "gru"] }\n'
        "[hidden_size]\n"
        "choices = [64, 128]\n",
        encoding="utf-8",
    )
    space = read_space(path)
    assert space.preset == "small"
    assert space.fixed == {"eval_interval": 50}
    assert space.params == (
        Param("lr", low=1e-4, high=0.1, log=True),
        Param("dropout", low=0.0, high=0.5),
        Param("num_layers", low=1, high=3),
        Param("cell", choices=("lstm", "gru")),
        Param("hidden_size", choices=(64, 128)),
    )
    assert isinstance(space.params[1].low, float)  # an integer given for a number
    assert space.params[2].is_int_range and not space.params[1].is_int_range
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    model, train = space.suggest(trial)
    assert set(model) == {"dropout", "num_layers", "cell", "hidden_size"}
    assert set(train) == {"eval_interval", "lr"}
    assert isinstance(model["num_layers"], int) and 1 <= model["num_layers"] <= 3
    assert 1e-4 <= train["lr"] <= 0.1 and model["hidden_size"] in (64, 128)


def test_the_default_space() -> None:
    kinds = {p.name: (bool(p.choices), p.log) for p in DEFAULT_SPACE.params}
    assert kinds == {
        "lr": (False, True),
        "hidden_size": (True, False),
        "dropout": (False, False),
        "seq_len": (True, False),
        "batch_size": (True, False),
        "weight_decay": (False, True),
    }
    assert DEFAULT_SPACE.fixed == {} and DEFAULT_SPACE.preset is None
    assert DEFAULT_SPACE_TOML in (REPO / "docs" / "scaling.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hiden_size = { choices = [1] }\n", "unknown setting hiden_size"),
        ("max_minutes = 1\nlr = { low = 0.1, high = 1 }\n", "max_minutes is set by"),
        ("lr = { low = 0.1 }\n", "lr: give choices = [...], or low and high"),
        ("lr = { low = 0.1, high = 1, step = 2 }\n", "lr: give choices"),
        ("lr = {}\n", "got an empty table"),
        ("lr = { choices = [0.1], low = 1 }\n", "lr: choices goes alone (not with low)"),
        ("lr = { choices = [] }\n", "lr: choices must be a non-empty list"),
        ("lr = { choices = 0.1 }\n", "lr: choices must be a non-empty list"),
        ("hidden_size = { choices = [16, 16] }\n", "hidden_size: choices has duplicates"),
        ("hidden_size = { choices = [16, 1.5] }\n", "hidden_size must be an integer, got float"),
        ("hidden_size = { choices = [16, 0] }\n", "hidden_size must be an integer from 1"),
        ("lr = { low = 0.1, high = 0.01 }\n", "lr: low (0.1) must be below high (0.01)"),
        ("weight_decay = { low = 0, high = 0.1, log = true }\n", "a log range needs low > 0"),
        ("lr = { low = 0.01, high = 0.1, log = 1 }\n", "lr: log must be true or false"),
        ("dropout = { low = 0.0, high = 1.0 }\n", "dropout, high: model dropout must be"),
        ('cell = { low = "a", high = "b" }\n', "a text setting takes choices"),
        ('cell = { choices = ["lstm", "transformer"] }\n', "cell must be one of lstm"),
        ("eval_interval = 0\nlr = { low = 0.01, high = 0.1 }\n", "eval_interval must be"),
        ("eval_interval = 10\n", "searches nothing"),
        ('preset = "huge"\nlr = { low = 0.01, high = 0.1 }\n', "preset must be one of"),
        ("lr = { low = 0.01, high = \n", "not valid TOML: "),
    ],
)
def test_bad_space_files_name_the_file_and_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "space.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_space(path)
    assert str(caught.value).startswith(f"space file {path}")
    assert expected in str(caught.value)


def test_a_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        read_space(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="the default space: "):
        parse_space("x = 1", "the default space")


# -- bad input on the command line ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--trials", "0"], "--trials must be at least 1, got 0"),
        (["--minutes-per-trial", "0"], "--minutes-per-trial must be a number above 0, got 0"),
        (["--minutes-per-trial", "-1"], "--minutes-per-trial must be a number above 0"),
        (["--minutes-per-trial", "nan"], "--minutes-per-trial must be a number above 0"),
        (["--storage", "nonsense"], "--storage nonsense: not a database URL"),
        (["--storage", "nosuchdb://x/y"], "unknown database kind 'nosuchdb'"),
        (["--storage", "sqlite:////nonexistent/dir/x.db"], "cannot open it: "),
        (
            ["--storage", "postgresql://me:secret@127.0.0.1:1/db"],
            "--storage postgresql://me:***@127.0.0.1:1/db: cannot open it: ",
        ),
        (["--space", "{tmp}/none.toml"], "space file {tmp}/none.toml: cannot read it"),
        (["--study", " "], "--study must not be empty"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    argv = ["sweep", str(NOTES), "--trials", "1", "--minutes-per-trial", MINUTES]
    argv += ["--out", str(tmp_path / "out"), *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("charlm: error: ") and err.count("\n") == 1, err
    assert expected.replace("{tmp}", str(tmp_path)) in err
    assert "secret" not in err


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite+pysqlite:///:memory:?cache=shared",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:study?mode=memory&uri=true",
    ],
)
def test_a_storage_in_memory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """A study in memory would vanish at exit (and Optuna's heartbeat thread, on a
    connection of its own, would not even find its tables): refused before anything
    is read, written or run."""
    out = tmp_path / "out"
    argv = ["sweep", str(NOTES), "--trials", "1", "--minutes-per-trial", MINUTES]
    rc = main([*argv, "--out", str(out), "--storage", url])
    printed = capsys.readouterr()
    assert rc == 2, printed
    assert printed.err == (
        f"charlm: error: --storage {url} is a database in memory, which ends with this "
        "process and the study with it; give a file (e.g. sqlite:///sweep.db), or leave "
        "--storage out for sweep.db in the sweep's directory\n"
    )
    assert printed.out == "" and not out.exists()


def test_storage_files_and_servers_are_not_taken_for_memory(tmp_path: Path) -> None:
    for url in (
        f"sqlite:///{tmp_path}/sweep.db",
        "sqlite:///file:sweep.db?uri=true",
        "sqlite:///memory.db",
        "postgresql://me:secret@127.0.0.1:1/db",
    ):
        check_storage(url)  # no error


def test_a_missing_corpus_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["sweep", str(tmp_path / "none.txt"), "--trials", "1", "--minutes-per-trial", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"charlm: error: corpus {tmp_path / 'none.txt'}: no such file\n"
    assert not (REPO / "checkpoints" / "sweeps" / "none").exists()


def test_a_bad_space_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.toml"
    space.write_text("hidden_size = { choices = [] }\n", encoding="utf-8")
    rc = main(
        ["sweep", str(NOTES), "--trials", "1", "--minutes-per-trial", MINUTES, "--space",
         str(space), "--out", str(tmp_path / "out")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (
        f"charlm: error: space file {space}, hidden_size: choices must be a non-empty list\n"
    )


# -- a real sweep ------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_sweep_writes_its_report_and_best_toml_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], space_file: Path
) -> None:
    out = tmp_path / "sweep"
    argv = ["sweep", str(NOTES), "--trials", "3", "--minutes-per-trial", MINUTES]
    rc = main([*argv, "--space", str(space_file), "--out", str(out), "--seed", "0"])
    printed, err = capsys.readouterr()
    assert rc == 0, err
    assert printed.count("\ntrial ") == 3
    assert "study notes: 3 trials" in printed

    rows = _rows(out / "trials.csv")
    assert [r["number"] for r in rows] == ["0", "1", "2"]
    assert list(rows[0]) == [
        "number", "state", "lr", "hidden_size", "seq_len", "best_val_loss", "steps",
    ]  # fmt: skip
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert complete  # the pruner prunes nothing before 3 trials have completed
    best = min(complete, key=lambda r: float(r["best_val_loss"]))

    text = (out / "best.toml").read_text(encoding="utf-8")
    said = re.match(
        r"# charlm sweep, study notes: trial (\d+), best validation loss ([\d.]+)", text
    )
    assert said is not None, text
    assert said.group(1) == best["number"]
    assert float(said.group(2)) == round(float(best["best_val_loss"]), 4)
    settings = read_settings(out / "best.toml")
    assert settings.model["hidden_size"] == int(best["hidden_size"])
    assert settings.train["lr"] == float(best["lr"])
    assert settings.train["max_minutes"] == float(MINUTES)
    assert settings.train["eval_interval"] == 10  # fixed settings are kept too

    md = (out / "trials.md").read_text(encoding="utf-8")
    assert md.count("\n| ") == 1 + 3  # the header and one row per trial
    assert f"| {best['number']} (best) | complete |" in md
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for r in rows:
        assert checkpoint.exists(out / f"trial-{int(r['number']):04d}")

    rc = main(
        ["train", str(NOTES), "--config", str(out / "best.toml"), "--name", "best",
         "--checkpoints-dir", str(tmp_path), "--quiet"]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    ckpt = checkpoint.load(tmp_path / "best")
    assert ckpt.model_config.hidden_size == settings.model["hidden_size"]
    assert ckpt.train_config.lr == settings.train["lr"]
    assert ckpt.train_config.seq_len == settings.train["seq_len"]


# -- pruning ----------------------------------------------------------------------


def _study_with_better_trials(name: str) -> optuna.Study:
    """A study in memory holding three complete trials that reported a loss of 0 at
    every evaluation: any real run is worse than their median."""
    study = open_study(optuna.storages.InMemoryStorage(), name, seed=0)
    for _ in range(3):
        study.add_trial(
            create_trial(value=0.0, intermediate_values={s: 0.0 for s in range(5, 101, 5)})
        )
    return study


def test_a_trial_worse_than_the_others_is_pruned_at_its_first_evaluation(
    tmp_path: Path,
) -> None:
    study = _study_with_better_trials("prune")
    space = parse_space("hidden_size = { choices = [16] }\nembedding_dim = 8\neval_interval = 5\n")
    study.optimize(Objective(NOTES, tmp_path, space, 1.0, threads=1), n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["stop_reason"] == PRUNED
    assert trial.user_attrs["steps"] == 5  # the run ended right after the first evaluation
    assert list(trial.intermediate_values) == [5]
    assert trial.intermediate_values[5] > 1.0
    saved = checkpoint.load(tmp_path / f"trial-{trial.number:04d}")
    assert saved.summary["step"] == 5


def test_a_run_that_ends_on_its_own_is_not_pruned(tmp_path: Path) -> None:
    study = _study_with_better_trials("complete")
    space = parse_space(
        "hidden_size = { choices = [16] }\nembedding_dim = 8\neval_interval = 5\nmax_steps = 5\n"
    )
    study.optimize(Objective(NOTES, tmp_path, space, 1.0, threads=1), n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.COMPLETE  # worse than the median, but finished
    assert trial.user_attrs["stop_reason"] == "max steps"
    assert trial.value == trial.intermediate_values[5]


# -- several processes on one study -------------------------------------------------


def _sweep_together(
    tmp_path: Path, space: Path, outs: list[Path], storage: list[str], trials: int
) -> list[str]:
    """Start one `charlm sweep` process per entry of `outs` at once; their stdout."""
    argv = [sys.executable, "-m", "charlm", "sweep", str(NOTES), "--trials", str(trials)]
    argv += ["--minutes-per-trial", MINUTES, "--space", str(space), "--study", "together"]
    argv += ["--threads", "1", *storage]
    procs = [
        subprocess.Popen(
            [*argv, "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for out in outs
    ]
    printed = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        printed.append(stdout)
    return printed


def _check_shared_study(url: str, outs: list[Path], processes: int, trials: int) -> None:
    study = optuna.load_study(study_name="together", storage=open_storage(url))
    done = study.get_trials()
    assert len(done) == processes * trials
    assert sorted(t.number for t in done) == list(range(processes * trials))
    assert {t.state for t in done} <= {TrialState.COMPLETE, TrialState.PRUNED}
    by_process: dict[str, list[dict[str, object]]] = {}
    for t in done:
        by_process.setdefault(t.user_attrs["process"], []).append(t.params)
    assert sorted(len(p) for p in by_process.values()) == [trials] * processes
    first, second = by_process.values()
    assert not [p for p in first if p in second]  # different samplers, different settings
    dirs = sorted(d.name for out in outs for d in out.glob("trial-*"))
    assert dirs == [f"trial-{n:04d}" for n in range(processes * trials)]  # each once
    for t in done:
        assert checkpoint.exists(Path(t.user_attrs["directory"]))
    # the last process to finish wrote the report of the whole study
    counts = [len(_rows(out / "trials.csv")) for out in outs]
    assert max(counts) == processes * trials


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(tmp_path: Path, space_file: Path) -> None:
    out = tmp_path / "shared"
    printed = _sweep_together(tmp_path, space_file, [out, out], [], trials=2)
    assert all("wrote " in p for p in printed)
    _check_shared_study(default_storage(out), [out], processes=2, trials=2)


@pytest.mark.slow
def test_two_processes_share_one_postgres_study(
    tmp_path: Path,
    space_file: Path,
    postgres_url: str,  # noqa: F811
) -> None:
    outs = [tmp_path / "machine-a", tmp_path / "machine-b"]
    printed = _sweep_together(tmp_path, space_file, outs, ["--storage", postgres_url], trials=2)
    assert all(postgres_url.split("@")[1] in p for p in printed)
    _check_shared_study(postgres_url, outs, processes=2, trials=2)
