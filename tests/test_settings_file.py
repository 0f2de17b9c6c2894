"""Settings files (`charlm train --config FILE`): round trip, flags over the file, bad
files refused with a message naming the file and the problem."""

from pathlib import Path

import pytest

from charlm import checkpoint
from charlm.cli import main
from charlm.errors import ConfigError
from charlm.training.settings_file import read_settings, write_settings

from .conftest import CORPORA


def test_round_trip(tmp_path: Path) -> None:
    model = {"cell": "gru", "hidden_size": 32, "dropout": 0.125}
    train = {"lr": 0.0031489225238001496, "seq_len": 16, "weight_decay": 1e-05}
    path = write_settings(
        tmp_path / "best.toml",
        model,
        {**train, "max_minutes": None, "target_loss": None},
        "trial 3, loss 2.0994\nsecond line",
        preset="small",
    )
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# trial 3, loss 2.0994\n# second line\n")
    assert "max_minutes" not in text  # None: the default, and TOML has no null
    settings = read_settings(path)
    assert settings.model == model
    assert settings.train == train  # floats come back bit for bit
    assert settings.preset == "small"
    assert [tmp.name for tmp in tmp_path.iterdir()] == ["best.toml"]


def test_an_integer_where_a_number_goes_is_a_float(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("lr = 1\nclip = 2\nbatch_size = 4\n", encoding="utf-8")
    settings = read_settings(path)
    assert settings.train == {"lr": 1.0, "clip": 2.0, "batch_size": 4}
    assert isinstance(settings.train["lr"], float)


def test_writing_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hiden_size is not a model or training setting"):
        write_settings(tmp_path / "x.toml", {"hiden_size": 3}, {})


def test_flags_given_override_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        "# a tiny run\n"
        'preset = "tiny"\n'
        "hidden_size = 16\n"
        "embedding_dim = 8\n"
        "lr = 0.01\n"
        "seq_len = 8\n"
        "max_steps = 20\n"
        "eval_interval = 10\n",
        encoding="utf-8",
    )
    argv = ["train", str(CORPORA / "notes.txt"), "--config", str(config), "--quiet"]
    rc = main(
        [*argv, "--checkpoints-dir", str(tmp_path), "--hidden-size", "24", "--max-steps", "30"]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "trained 30 steps" in out
    ckpt = checkpoint.load(tmp_path / "notes")
    assert ckpt.model_config.hidden_size == 24  # the flag
    assert ckpt.model_config.embedding_dim == 8  # the file
    assert ckpt.model_config.num_layers == 1  # the file's preset (tiny)
    assert ckpt.train_config.max_steps == 30
    assert ckpt.train_config.lr == 0.01
    assert ckpt.train_config.seq_len == 8
    assert ckpt.train_config.eval_interval == 10
    assert ckpt.summary["preset"] == "tiny"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hiden_size = 32\n", "unknown key hiden_size"),
        ("lr = 0.01\n[model]\nhidden_size = 3\n", "unknown key model"),
        ('lr = "fast"\n', "lr must be a number, got str"),
        ("hidden_size = 32.5\n", "hidden_size must be an integer, got float"),
        ("hidden_size = true\n", "hidden_size must be an integer, got bool"),
        ("[lr]\nlow = 1\n", "lr must be a number, got a table"),
        ("dropout = 1.5\n", "model dropout must be a finite number >= 0 and < 1, got 1.5"),
        ("batch_size = 0\n", "batch_size must be an integer >= 1, got 0"),
        ('split = "middle"\n', "split must be one of interleaved, tail; got 'middle'"),
        ('preset = "huge"\n', "preset must be one of tiny, small, large, got 'huge'"),
        ("lr = 0.01\nseq_len =\n", "not valid TOML: Invalid value (at line 2, column 10)"),
        ("lr = 0.01\nlr = 0.02\n", "not valid TOML"),
        (b"lr = 0.01 # \xff\n", "not UTF-8 text"),
    ],
)
def test_bad_files_exit_2_naming_the_file_and_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes, expected: str
) -> None:
    config = tmp_path / "bad.toml"
    if isinstance(text, bytes):
        config.write_bytes(text)
    else:
        config.write_text(text, encoding="utf-8")
    argv = ["train", str(CORPORA / "ab.txt"), "--config", str(config), "--quiet"]
    rc = main([*argv, "--checkpoints-dir", str(tmp_path / "ckpt")])
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith(f"charlm: error: settings file {config}: ")
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""
    assert not (tmp_path / "ckpt").exists()  # refused before anything was written


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.toml"
    argv = ["train", str(CORPORA / "ab.txt"), "--config", str(missing), "--quiet"]
    rc = main([*argv, "--checkpoints-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (
        f"charlm: error: settings file {missing}: cannot read it (No such file or directory)\n"
    )
