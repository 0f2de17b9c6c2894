"""One rule for model names (`charlm/names.py`): the names `charlm train` gives, the
directories the server serves, and what it says of a checkpoint directory it does not."""

import shutil
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from charlm import names
from charlm.cli import main
from charlm.errors import ModelNameError, NoModelError
from charlm.registry import ModelRegistry
from charlm_service.app import create_app
from charlm_service.settings import ServiceSettings

from .conftest import CORPORA, copy_checkpoint
from .serving import Server

# -- the rule and the servable form --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("notes", "notes"),  # already a name: kept as it is
        ("notes-v1.0_b", "notes-v1.0_b"),
        ("A", "A"),
        ("x" * 128, "x" * 128),
        ("my notes", "my-notes"),
        ("my   notes  ", "my-notes"),
        ("café", "cafe"),
        ("Ångström data", "Angstrom-data"),
        ("naïve résumé.v2", "naive-resume.v2"),
        ("ﬁle", "file"),  # compatibility decomposition too
        ("Straße", "Stra-e"),  # no decomposition: replaced
        (".hidden", "hidden"),
        ("..hidden", "hidden"),
        ("_private", "private"),
        ("-dash", "dash"),
        ("a..b", "a.b"),
        ("../etc/passwd", "etc-passwd"),
        ("a/b\\c", "a-b-c"),
        ("tab\tand\nnewline\x00", "tab-and-newline"),
        (" x ", "x"),
        ("", "model"),
        (".", "model"),
        ("...", "model"),
        ("-_-", "model"),
        ("日本語", "model"),
        ("x" * 300, "x" * 128),
        ("é" * 200, "e" * 128),
        ("x" * 127 + " y", "x" * 127),  # cut, then no '-' left at the end
    ],
)
def test_servable_name(text: str, expected: str) -> None:
    got = names.servable_name(text)
    assert got == expected
    assert names.is_servable(got) and len(got) <= names.MAX_LENGTH
    assert names.servable_name(got) == got  # a name maps to itself


@pytest.mark.parametrize("name", ["a", "A.b_c-d", "0", "x" * 128, "notes.v2", "a-"])
def test_names_that_follow_the_rule(name: str) -> None:
    assert names.is_servable(name)
    names.check_name(name)


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a..b", ".x", "-x", "_x", "a/b", "a\\b", "x" * 129, "café", "a b",
     "a\x00b", "a\nb", None, 3, b"abc"],
)  # fmt: skip
def test_names_that_break_the_rule(name: object) -> None:
    assert not names.is_servable(name)
    with pytest.raises(ModelNameError, match=r"invalid model name .*names are 1 to 128"):
        names.check_name(name)


def test_shown_escapes_and_cuts() -> None:
    assert names.shown("my notes") == "'my notes'"
    assert names.shown("caf\u00e9\n") == "'caf\\xe9\\n'"
    long = names.shown("\u202e" * 100 + "x")
    assert len(long) <= 64 and long.endswith("...") and long.isascii()
    assert "\\u202e" in long and "\\u20'" not in long  # whole escapes only


# -- charlm train --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("a b", "; try --name a-b"),
        ("café", "; try --name cafe"),
        (".hidden", "; try --name hidden"),
        ("a..b", "; try --name a.b"),
        ("x" * 129, "; try --name " + "x" * 128),
        ("../x", "; try --name x, or give --checkpoints-dir for the location"),
        ("日本", "(names are"),
    ],
)
def test_train_refuses_a_name_that_breaks_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, hint: str
) -> None:
    ckpts = tmp_path / "ckpts"
    rc = main(["train", str(CORPORA / "ab.txt"), "--name", name, "--checkpoints-dir", str(ckpts)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith("charlm: error: --name ") and err.count("\n") == 1, err
    assert names.RULE in err and hint in err
    assert not ckpts.exists()  # nothing written


def test_sweep_refuses_a_study_that_cannot_name_its_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", str(CORPORA / "notes.txt"), "--trials", "1", "--minutes-per-trial", "0.01"]
    assert main([*argv, "--study", "a b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "; try --study a-b, or give --out" in err, err
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.server
@pytest.mark.slow  # a real server
def test_a_corpus_with_a_space_trains_a_model_that_is_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "my notes.txt"
    shutil.copyfile(CORPORA / "alphabet.txt", corpus)
    ckpts = tmp_path / "ckpts"
    argv = ["train", str(corpus), "--checkpoints-dir", str(ckpts), "--quiet", "--max-steps", "5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f'model name: my-notes (from "my notes.txt"; {names.RULE})'
    assert f"checkpoint: {ckpts / 'my-notes'}" in out
    assert sorted(p.name for p in ckpts.iterdir()) == ["my-notes"]
    # the same corpus gives the same name: --resume finds the checkpoint again
    assert main([*argv[:-1], "10", "--resume"]) == 0
    assert "checkpoint: " + str(ckpts / "my-notes") in capsys.readouterr().out
    # copies under names the server will not serve
    for bad in ("my notes", ".hidden", "café"):
        copy_checkpoint(ckpts / "my-notes", ckpts / bad)
    server = Server(ckpts)
    try:
        with httpx.Client(base_url=server.url) as c:
            listing = c.get("/models").json()
            assert [m["name"] for m in listing["models"]] == ["my-notes"]
            assert set(listing["errors"]) == {"'my notes'", "'.hidden'", "'caf\\xe9'"}
            assert "my-notes is taken" in listing["errors"]["'my notes'"]
            assert "rename it to hidden to serve it" in listing["errors"]["'.hidden'"]
            assert "rename it to cafe to serve it" in listing["errors"]["'caf\\xe9'"]
            r = c.post("/predict", json={"text": "abc"})  # the one model: 'model' omitted
            assert r.status_code == 200 and r.json()["model"] == "my-notes"
            r = c.post("/predict", json={"model": "my-notes", "text": "abc"})
            assert r.status_code == 200 and r.json()["next"]
    finally:
        server.stop()
    log = server.log.read_text()
    for key in ("'my notes'", "'.hidden'", "'caf\\xe9'"):
        lines = [line for line in log.splitlines() if f"not serving {key}: " in line]
        assert len(lines) == 1, log
        assert "is not a model name (names are" in lines[0]


# -- the registry and the service --------------------------------------------------


def test_misnamed_checkpoint_directories_are_listed_with_the_reason(
    tmp_path: Path, alphabet_dir: Path
) -> None:
    root = tmp_path / "ckpts"
    copy_checkpoint(alphabet_dir, root / "alphabet")
    for bad in ("my notes", ".hidden", "café", "evil\nname", "x" * 200 + " y"):
        copy_checkpoint(alphabet_dir, root / bad)
    (root / "not a model").mkdir()  # holds no checkpoint: not a model, ignored
    (root / ".cache").mkdir()
    (root / "stray file.txt").write_text("x")
    with TestClient(
        create_app(ServiceSettings(checkpoints_dir=root)), base_url="http://127.0.0.1"
    ) as c:
        listing = c.get("/models").json()
        assert [m["name"] for m in listing["models"]] == ["alphabet"]
        errors = listing["errors"]
        assert len(errors) == 5
        assert errors["'my notes'"].endswith("; rename it to my-notes to serve it")
        assert errors["'.hidden'"].endswith("; rename it to hidden to serve it")
        assert errors["'caf\\xe9'"].endswith("; rename it to cafe to serve it")
        assert errors["'evil\\nname'"].endswith("; rename it to evil-name to serve it")
        for key, reason in errors.items():  # escaped, cut, no path of the server
            assert key.isascii() and key.isprintable() and len(key) <= 64, key
            assert reason.isascii() and reason.isprintable(), reason
            assert str(tmp_path) not in key + reason
            assert f"not a model name ({names.RULE})" in reason
        long = next(k for k in errors if k.startswith("'xxx"))
        assert long.endswith("...") and errors[long].endswith(f"to {'x' * 128} to serve it")
        reload = c.post("/models/reload", json={}).json()
        assert reload["models"] == ["alphabet"] and reload["errors"] == errors
        # asked for by its directory name: refused as a name, nothing read
        r = c.post("/predict", json={"model": "my notes", "text": "abc"})
        assert (r.status_code, r.json()["error"]["type"]) == (422, "model_name")
        # renamed as told: served at the next reload, and no longer an error
        (root / "my notes").rename(root / "my-notes")
        reload = c.post("/models/reload", json={}).json()
        assert reload["models"] == ["alphabet", "my-notes"] and reload["loaded"] == ["my-notes"]
        assert "'my notes'" not in reload["errors"] and len(reload["errors"]) == 4
        r = c.post("/predict", json={"model": "my-notes", "text": "abc"})
        assert r.status_code == 200 and r.json()["next"][0]["char"] == "d"


def test_no_model_says_when_directories_are_not_served(tmp_path: Path, alphabet_dir: Path) -> None:
    copy_checkpoint(alphabet_dir, tmp_path / "my notes")
    registry = ModelRegistry(tmp_path)
    report = registry.refresh()
    assert report.loaded == [] and list(report.errors) == ["'my notes'"]
    assert registry.errors() == report.errors
    with pytest.raises(NoModelError, match=r"no model is loaded.*1 checkpoint\(s\) not served"):
        registry.get(None)
    for name in ("my notes", "../my notes", "..", "my-notes/../../etc"):
        with pytest.raises(ModelNameError):
            registry.get(name)
