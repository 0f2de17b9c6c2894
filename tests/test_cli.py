import json
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charlm import checkpoint
from charlm.cli import main
from charlm.runtime import bf16_steps_supported, int8_steps_supported

from .conftest import CORPORA, REPO


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.slow
def test_train_prints_where_and_how_sure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = run(
        capsys, "train", str(CORPORA / "ab.txt"), "--checkpoints-dir", str(tmp_path), "--quiet"
    )
    assert rc == 0
    assert f"checkpoint: {tmp_path / 'ab'}" in out
    assert "per-step confidence:" in out and "min prob 1.0000" in out
    assert "too small to hold out" in out


@pytest.mark.slow
def test_progress_lines_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", str(CORPORA / "alphabet.txt"), "--checkpoints-dir", str(tmp_path)]
    rc, _, err = run(capsys, *args, "--max-steps", "200")
    lines = err.splitlines()
    assert rc == 0 and len(lines) == 2
    assert lines[0].startswith("step 100: val ") and "(best)" in lines[0]
    assert "chars/s" in lines[1] and lines[1].startswith("step 200: val ")


def test_predict_json(alphabet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "predict", str(alphabet_dir), "abc", "--continue", "30", "--json")
    assert rc == 0
    data = json.loads(out)
    assert data["next"][0]["char"] == "d" and data["next"][0]["prob"] >= 0.999
    assert len(data["next"]) == 5
    assert data["continuation"] == "defghijklmnopqrstuvwxyzabcdefg"
    assert [s["char"] for s in data["steps"]] == list(data["continuation"])
    assert all(s["prob"] >= 0.999 for s in data["steps"])


def test_predict_by_name_and_all_characters(
    alphabet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["predict", "alphabet", "xyz", "--top-k", "0", "--checkpoints-dir"]
    rc, out, _ = run(capsys, *args, str(alphabet_dir.parent), "--json")
    assert rc == 0 and len(json.loads(out)["next"]) == 26
    rc, out, _ = run(capsys, *args, str(alphabet_dir.parent))
    assert rc == 0 and 'after "xyz", the next character is:' in out


def test_score_json_and_table(alphabet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "score", str(alphabet_dir), "abcdefghijklmnopqrstuvwxyzab", "--json")
    assert rc == 0
    data = json.loads(out)
    assert len(data["steps"]) == 27 and data["min_prob"] >= 0.999
    keys = {"char", "prob", "rank", "top_char", "top_prob", "entropy_bits"}
    assert all(keys <= s.keys() for s in data["steps"])
    assert data["bits_per_char"] < 0.01
    rc, out, _ = run(capsys, "score", str(alphabet_dir), "abcz")
    lines = out.splitlines()
    assert rc == 0 and lines[0].split()[:3] == ["pos", "char", "prob"]
    assert lines[3].split()[1] == "z" and "*" in lines[3]  # marked: not the top choice


def test_generate_is_reproducible(notes_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["generate", str(notes_dir), "--prompt", "The ", "--length", "60", "--seed", "3"]
    _, a, _ = run(capsys, *args)
    _, b, _ = run(capsys, *args)
    assert a == b and a.startswith("The ") and len(a) == 4 + 60 + 1


@pytest.mark.parametrize(
    "flag",
    [
        pytest.param(
            "--bf16",
            marks=pytest.mark.skipif(not bf16_steps_supported(), reason="no bf16 in oneDNN"),
        ),
        pytest.param(
            "--int8",
            marks=pytest.mark.skipif(not int8_steps_supported(), reason="no FBGEMM in torch"),
        ),
    ],
)
def test_generate_with_fewer_weight_bytes_follows_the_alphabet(
    alphabet_dir: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    args = ["generate", str(alphabet_dir), "--prompt", "abc", "--length", "52"]
    rc, out, _ = run(capsys, *args, "--temperature", "0", flag)
    assert rc == 0 and out == "abc" + "defghijklmnopqrstuvwxyzabc" * 2 + "\n"


def test_generate_takes_one_kind_of_weights(
    alphabet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["generate", str(alphabet_dir), "--int8", "--bf16"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_eval_json(alphabet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "eval", str(alphabet_dir), str(CORPORA / "alphabet.txt"), "--json")
    data = json.loads(out)
    assert rc == 0 and data["chars"] == 2599 and data["bits_per_char"] < 0.01


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "no/such/corpus.txt"], "no such file"),
        (["predict", "no-such-model", "abc"], "no checkpoint at"),
        (["predict", "ALPHA", "ab1"], "'1' at position 2"),
        (["generate", "ALPHA", "--prompt", "Q"], "'Q' at position 0"),
        (["generate", "ALPHA", "--temperature", "-1"], "temperature must be a finite number >= 0"),
        (["generate", "ALPHA", "--seed", "99999999999999999999999"], "seed must be an integer"),
        (["predict", "ALPHA", "ab", "--top-k", "-1"], "top_k must be an integer >= 0, got -1"),
        (["serve", "--port", "99999"], "port: Input should be less than or equal to 65535"),
        (["score", "ALPHA", "a"], "at least 2 characters"),
        (["predict", "ALPHA", ""], "empty"),
        (["eval", "ALPHA", str(CORPORA / "notes.txt")], "corpus"),
        (
            ["train", str(CORPORA / "alphabet.txt"), "--hidden-size", "0"],
            "hidden_size must be an integer from 1 to 65536, got 0",
        ),
        (["train", str(CORPORA / "alphabet.txt"), "--resume"], "no checkpoint"),
        (["train", str(CORPORA / "alphabet.txt"), "--name", "../x"], "not a model name"),
        (["corpus", "download", "nonesuch"], "unknown corpus"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    argv: list[str],
    message: str,
    alphabet_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [str(alphabet_dir) if a == "ALPHA" else a for a in argv]
    if argv[0] == "train":
        argv += ["--checkpoints-dir", str(tmp_path), "--quiet"]
    rc, _, err = run(capsys, *argv)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("charlm: error: ")
    assert message in err and "Traceback" not in err


def test_downloaded_corpus_is_found_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHARLM_CACHE", str(tmp_path / "cache"))
    args = ["train", "tinyshakespeare", "--checkpoints-dir", str(tmp_path), "--quiet"]
    rc, _, err = run(capsys, *args)
    assert rc == 2 and "charlm corpus download tinyshakespeare" in err
    cached = tmp_path / "cache" / "corpora" / "tinyshakespeare.txt"
    cached.parent.mkdir(parents=True)
    cached.write_text("To be, or not to be: that is the question. " * 20)
    rc, out, _ = run(capsys, *args, "--max-steps", "5")
    assert rc == 0 and f"checkpoint: {tmp_path / 'tinyshakespeare'}" in out


@pytest.mark.slow
def test_existing_checkpoint_is_never_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", str(CORPORA / "alphabet.txt"), "--checkpoints-dir", str(tmp_path), "--quiet"]
    assert run(capsys, *base, "--max-steps", "50")[0] == 0
    manifest = (tmp_path / "alphabet" / "checkpoint.json").read_bytes()
    rc, _, err = run(capsys, *base)
    assert rc == 2 and "already holds a checkpoint" in err and "--resume" in err
    rc, _, err = run(capsys, *base, "--overwrite", "--lr", "-1")
    assert rc == 2 and "lr must be a finite number > 0, got -1.0" in err
    rc, _, err = run(capsys, *base, "--resume", "--overwrite")
    assert rc == 2
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe")
    rc, _, err = run(capsys, "train", str(bad), "--name", "alphabet", *base[2:], "--overwrite")
    assert rc == 2 and "not valid UTF-8" in err
    rc, _, err = run(
        capsys, "train", str(CORPORA / "notes.txt"), "--name", "alphabet", *base[2:], "--resume"
    )
    assert rc == 2 and "never seen" in err
    assert (tmp_path / "alphabet" / "checkpoint.json").read_bytes() == manifest
    assert checkpoint.load(tmp_path / "alphabet").summary["step"] == 50


@pytest.mark.slow
def test_console_script_and_module_entry_points(alphabet_dir: Path) -> None:
    exe = Path(sys.executable).parent / "charlm"
    proc = subprocess.run(
        [str(exe), "predict", str(alphabet_dir), "hij", "--top-k", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "k   " in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "charlm", "predict", str(alphabet_dir), "hi€"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.strip().endswith("'€' at position 2")


def test_preset_by_name_overrides_the_size_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", str(CORPORA / "alphabet.txt"), "--checkpoints-dir", str(tmp_path), "--quiet"]
    rc, _, _ = run(capsys, *args, "--preset", "small", "--max-steps", "3")
    assert rc == 0
    ckpt = checkpoint.load(tmp_path / "alphabet")
    assert ckpt.summary["preset"] == "small"
    assert (ckpt.model_config.hidden_size, ckpt.model_config.num_layers) == (128, 2)
    assert ckpt.train_config.seq_len == 64
    manifest = (tmp_path / "alphabet" / "checkpoint.json").read_bytes()
    rc, _, err = run(capsys, *args, "--preset", "tiny", "--resume")
    assert rc == 2 and "--preset tiny differs from the checkpoint's preset small" in err
    assert (tmp_path / "alphabet" / "checkpoint.json").read_bytes() == manifest
    with pytest.raises(SystemExit) as info:
        main([*args, "--preset", "huge"])
    assert info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def _train_process(tmp_path: Path, *flags: str, **popen: Any) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "charlm", "train", str(CORPORA / "notes.txt"), "--quiet"]
    cmd += ["--checkpoints-dir", str(tmp_path), "--max-steps", "1000000", *flags]
    return subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    """Until `condition` holds while `proc` runs. Only a wedged process (ten minutes with
    no progress, however busy the machine) fails the wait; no speed is asserted."""
    give_up = time.monotonic() + 600
    while not condition():
        assert proc.poll() is None, proc.communicate()
        if time.monotonic() > give_up:
            pytest.fail(f"training made no progress in 600 s: {proc.args}")
        time.sleep(0.05)


@pytest.mark.slow
def test_a_second_run_on_the_same_checkpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _train_process(tmp_path, "--eval-interval", "5")
    try:
        _wait_for(lambda: checkpoint.exists(tmp_path / "notes"), first)
        manifest = (tmp_path / "notes" / "checkpoint.json").read_bytes()
        base = ["train", str(CORPORA / "notes.txt"), "--checkpoints-dir", str(tmp_path)]
        for extra in (["--resume"], ["--overwrite"]):
            rc, _, err = run(capsys, *base, "--quiet", *extra)
            assert rc == 2 and "being written by another training run" in err
            assert f"process {first.pid}" in err and err.count("\n") == 1
        assert first.poll() is None  # the first run goes on, untouched
    finally:
        first.kill()
        first.wait()
    assert checkpoint.load(tmp_path / "notes").summary["step"] >= 5
    assert manifest  # a lock dies with its process: the directory can be resumed now
    rc, _, _ = run(capsys, *base, "--quiet", "--resume", "--max-steps", "12")
    assert rc == 0


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child: a real write failure, like a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_no_orphans(tmp_path: Path) -> None:
    proc = _train_process(
        tmp_path, "--hidden-size", "128", "--max-steps", "20", preexec_fn=_file_size_limit(65536)
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 2, (out, err)
    assert err.startswith("charlm: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "could not" in err and "File too large" in err
    left = sorted(p.name for p in (tmp_path / "notes").iterdir())
    assert not [n for n in left if n.endswith((".safetensors", ".tmp"))], left


@pytest.mark.slow
def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    done = _train_process(tmp_path, "--max-steps", "10", "--hidden-size", "128")
    try:
        assert done.wait(120) == 0, done.communicate()
    finally:
        done.kill()
    before = (tmp_path / "notes" / "checkpoint.json").read_bytes()
    files = sorted(p.name for p in (tmp_path / "notes").iterdir())
    proc = _train_process(
        tmp_path, "--resume", "--max-steps", "30", preexec_fn=_file_size_limit(65536)
    )
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert (tmp_path / "notes" / "checkpoint.json").read_bytes() == before
    after = sorted(p.name for p in (tmp_path / "notes").iterdir())
    assert [n for n in after if n.endswith(".safetensors")] == [
        n for n in files if n.endswith(".safetensors")
    ]
    assert checkpoint.load(tmp_path / "notes").summary["step"] == 10


def test_an_unwritable_place_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", str(CORPORA / "ab.txt"), "--checkpoints-dir", "/proc/charlm", "--quiet"]
    rc, _, err = run(capsys, *args)
    assert rc == 2 and err.count("\n") == 1 and "cannot create the checkpoint directory" in err


@pytest.mark.slow
def test_ctrl_c_before_the_first_save_does_not_suggest_resuming(tmp_path: Path) -> None:
    # SIGINT as a terminal sends it, whatever the disposition this test runner inherited
    # (a shell starting a job in the background sets SIGINT to be ignored).
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = _train_process(tmp_path, "--eval-interval", "1000000", preexec_fn=default_sigint)
    metrics = tmp_path / "notes" / "metrics.jsonl"
    try:
        _wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "no checkpoint was written" in out and "--resume" not in out
    assert not checkpoint.exists(tmp_path / "notes")


def test_sampling_at_extreme_settings_from_the_cli(
    alphabet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["generate", str(alphabet_dir), "--prompt", "abc", "--length", "26", "--seed", "1"]
    for extra in (["--temperature", "1e-40"], ["--top-p", "1e-46"], ["--temperature", "0"]):
        rc, out, _ = run(capsys, *base, *extra)
        assert rc == 0 and out == "abc" + "defghijklmnopqrstuvwxyzabc" + "\n", extra
