"""Task corpora, the answer file and answer accuracy: every answer recomputed here, from
the text alone; accuracy checked against `predict` on a model that knows the alphabet."""

import json
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from charlm.cli import main
from charlm.errors import ConfigError, CorpusError, InputError, UnknownCharacterError
from charlm.inference import Predictor
from charlm.tasks import (
    TASK_KINDS,
    AnswerItem,
    CountingConfig,
    CycleConfig,
    FunctionsConfig,
    LatchConfig,
    answer_accuracy,
    make_task,
    read_answers,
    write_answers,
    write_task,
)
from charlm.tasks.configs import CYCLE_SYMBOLS

SMALL = {
    "cycle": CycleConfig(symbols=94, length=500),
    "counting": CountingConfig(repeats=5),
    "functions": FunctionsConfig(lines=50, heldout_per_class=2),
    "latch": LatchConfig(gap=5, lines=50, heldout_per_class=10),
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# -- generators -------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(TASK_KINDS))
def test_same_seed_same_files_other_seed_other_files(kind: str, tmp_path: Path) -> None:
    def files(seed: int, name: str) -> tuple[bytes, bytes]:
        text, held = write_task(make_task(kind, SMALL[kind], seed), tmp_path / name / "t.txt")
        assert held == tmp_path / name / "t.heldout.tsv"
        return text.read_bytes(), held.read_bytes()

    assert files(7, "a") == files(7, "b")
    other = files(8, "c")
    assert other[1] != files(7, "a")[1]  # the held-out draw (cycle's text has no randomness)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["t.heldout.tsv", "t.txt"]
    assert read_answers(tmp_path / "a" / "t.heldout.tsv") == make_task(kind, SMALL[kind], 7).heldout


def test_cycle_answers_are_the_next_symbol() -> None:
    corpus = make_task("cycle", CycleConfig(symbols=94, length=1000, heldout_per_class=3), 1)
    cycle = CYCLE_SYMBOLS[:94]
    assert corpus.train_text == (cycle * 11)[:1000] and "\n" not in corpus.train_text
    for item in corpus.heldout:
        k = len(item.prompt)
        assert 1 <= k <= 94 and item.fields == {"context": str(k)}
        start = cycle.index(item.prompt[0])
        assert item.prompt + item.answer == (cycle * 3)[start : start + k + 1]
    assert Counter(i.answer for i in corpus.heldout) == Counter({c: 3 for c in cycle})
    assert len({i.answer for i in corpus.heldout[:20]}) > 1  # shuffled
    with pytest.raises(ConfigError, match="symbols must be an integer from 2 to 94, got 95"):
        CycleConfig(symbols=95)


def test_counting_values_are_exact_and_each_answer_is_the_next() -> None:
    config = CountingConfig(start=0.1, step=0.1, end=3.0, digits=1, repeats=3, heldout_rounds=2)
    corpus = make_task("counting", config, 0)
    # in floats, (3.0 - 0.1) / 0.1 = 28.999...: a float count would drop the last value
    expected = [_decimal(Fraction("0.1") * (i + 1), 1) for i in range(30)]
    assert corpus.train_text == (",".join(expected) + "\n") * 3
    assert len(corpus.heldout) == 2 * 29
    for item in corpus.heldout:
        assert item.prompt.startswith("\n0.1,") and item.prompt.endswith(",")
        before = item.prompt[1:-1].split(",")
        assert before == expected[: len(before)]
        assert item.answer == expected[len(before)] and item.fields == {"index": str(len(before))}
    assert Counter(i.answer for i in corpus.heldout) == Counter({v: 2 for v in expected[1:]})
    line = make_task("counting", CountingConfig(start=-0.1, end=0.1, digits=2), 0).train_text
    assert line.split("\n")[0] == "-0.10,-0.05,0.00,0.05,0.10"
    with pytest.raises(ConfigError, match="step must be at least 10"):
        CountingConfig(step=0.001)
    with pytest.raises(ConfigError, match="end must be at least start"):
        CountingConfig(end=0.0)


def _decimal(value: Fraction, digits: int) -> str:
    scaled = round(value * 10**digits)  # half to even, exactly
    sign = "-" if scaled < 0 else ""
    whole, part = divmod(abs(scaled), 10**digits)
    return f"{sign}{whole}.{part:0{digits}d}" if digits else f"{sign}{whole}"


FEATURES = {"line": lambda x: x, "parabola": lambda x: x**2, "sqrt": np.sqrt}
LINE = re.compile(r"^(-?\d+\.\d,-?\d+\.\d)(;-?\d+\.\d,-?\d+\.\d)*=(line|parabola|sqrt)$")


def _fits(points: str, name: str) -> bool:
    """Whether y = k * f(x) + b fits every point within the rounding of y (0.05), for the
    least-squares k and b: its RMS residual is at most that of the true k and b."""
    xy = np.array([[float(v) for v in p.split(",")] for p in points.split(";")])
    a = np.stack([FEATURES[name](xy[:, 0]), np.ones(len(xy))], axis=1)
    coef = np.linalg.lstsq(a, xy[:, 1], rcond=None)[0]
    return bool(np.sqrt(np.mean((a @ coef - xy[:, 1]) ** 2)) <= 0.05 + 1e-9)


def test_functions_points_fit_the_named_function() -> None:
    config = FunctionsConfig(lines=600, heldout_per_class=4)
    corpus = make_task("functions", config, 3)
    lines = corpus.train_text.splitlines()
    assert len(lines) == 600 and all(LINE.match(line) for line in lines)
    names, counts = Counter(), Counter()
    for line in lines:
        points, name = line.split("=")
        names[name] += 1
        counts[points.count(";") + 1] += 1
        assert _fits(points, name), line
    assert set(counts) == set(range(1, 9)) and min(names.values()) > 150
    assert "-0.0," not in corpus.train_text and not re.search(r"-0\.0(;|=)", corpus.train_text)
    held = Counter()
    for item in corpus.heldout:
        assert item.prompt.startswith("\n") and item.prompt.endswith("=")
        points = item.prompt[1:-1]
        n = points.count(";") + 1
        assert item.fields == {"points": str(n)} and _fits(points, item.answer)
        held[item.answer, n] += 1
    assert held == Counter({(f, n): 4 for f in FEATURES for n in range(1, 13)})
    noisy = make_task("functions", FunctionsConfig(lines=600, noise=0.5), 3).train_text
    assert noisy != corpus.train_text
    assert not all(_fits(*line.split("=")) for line in noisy.splitlines())
    for bad, match in [
        ({"points": "0-3"}, "points must be N or A-B"),
        ({"points": "5-2"}, "points must be N or A-B"),
        ({"x_min": -1.0}, "x_min must be a finite number >= 0"),
        ({"k_min": 3.0}, r"k_min \(3\) must not be above k_max"),
    ]:
        with pytest.raises(ConfigError, match=match):
            FunctionsConfig(**bad)


def test_latch_label_is_the_key_across_the_gap() -> None:
    config = LatchConfig(gap=30, noise="xyz", labels="ABC", lines=300, heldout_per_class=40)
    corpus = make_task("latch", config, 5)
    lines = corpus.train_text.splitlines()
    assert len(lines) == 300 and corpus.train_text.endswith("\n")
    for line in lines:
        key, noise, label = line[0], line[1:-2], line[-1]
        assert key == label and key in "ABC" and line[-2] == "="
        assert len(noise) == 30 and set(noise) <= set("xyz")
    assert min(Counter(line[0] for line in lines).values()) > 70
    assert Counter(i.answer for i in corpus.heldout) == Counter({"A": 40, "B": 40, "C": 40})
    assert len({i.answer for i in corpus.heldout[:40]}) == 3  # shuffled, not one class first
    for item in corpus.heldout:
        assert item.prompt[0] == "\n" and item.prompt[1] == item.answer
        assert item.prompt.endswith("=") and len(item.prompt) == 1 + 1 + 30 + 1
        assert item.fields == {"gap": "30"}
        assert item.prompt[1:] + item.answer not in lines  # another stream: 3^30 lines
    for bad, match in [
        ({"noise": "aA"}, "noise and labels share 'A'"),
        ({"labels": "A"}, "labels must be 2 to 10"),
        ({"noise": "a=b"}, "must not contain '='"),
        ({"gap": -1}, "gap must be an integer"),
    ]:
        with pytest.raises(ConfigError, match=match):
            LatchConfig(**bad)


def test_make_task_refuses_unknown_kinds_and_mismatched_configs() -> None:
    with pytest.raises(ConfigError, match="unknown task kind 'nope'; the kinds are cycle"):
        make_task("nope")
    with pytest.raises(ConfigError, match="latch takes a LatchConfig, got CycleConfig"):
        make_task("latch", CycleConfig())
    with pytest.raises(ConfigError, match="seed must be"):
        make_task("latch", None, -1)
    assert LatchConfig.from_dict(LatchConfig(gap=3).to_dict()) == LatchConfig(gap=3)


# -- the answer file --------------------------------------------------------------


def test_answer_file_round_trip_escapes_what_it_must(tmp_path: Path) -> None:
    items = [
        AnswerItem("\nline\tone\\two\n", "x\\n", {"k": "a=b", "t\tab": "new\nline"}),
        AnswerItem("#not a comment", "#", {}),
        AnswerItem("\\#", " ", {"n": ""}),
    ]
    path = write_answers(tmp_path / "deep" / "a.tsv", items)
    raw = path.read_text(encoding="utf-8")
    assert raw.splitlines()[0] == "\\nline\\tone\\\\two\\n\tx\\\\n\tk=a=b\tt\\tab=new\\nline"
    assert raw.splitlines()[1].startswith("\\#not")
    back = read_answers(path)
    assert back == items and [i.line for i in back] == [1, 2, 3]
    path.write_text("# a comment\n\n" + raw + "   \n", encoding="utf-8")
    assert [i.line for i in read_answers(path)] == [3, 4, 5]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"abc\td\nno tab here\n", "line 2: no tab"),
        (b"# c\nabc\t\n", "line 2: the answer (after the first tab) is empty"),
        (b"a\\qb\tc\n", "line 1: bad escape '\\q' at column 2"),
        (b"ab\tc\\\n", "line 1: bad escape a lone '\\' at the end"),
        (b"ab\tc\tnovalue\n", "line 1: bad field 'novalue'; expected field=value"),
        (b"ab\tc\t=v\n", "line 1: bad field '=v'"),
        (b"ab\tc\tk=1\tk=2\n", "line 1: the field 'k' is given twice"),
        (b"# only\n\n", "no items"),
        (b"", "no items"),
        (b"ab\tc\nd\xffe\tf\n", "line 2: not valid UTF-8 (byte 0xff)"),
    ],
)
def test_malformed_answer_files_name_the_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(CorpusError) as e:
        read_answers(path)
    assert str(e.value).startswith(f"answer file {path}") and message in str(e.value)


def test_missing_answer_file(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file"):
        read_answers(tmp_path / "none.tsv")
    with pytest.raises(InputError, match="item 1: the answer is empty"):
        write_answers(tmp_path / "x.tsv", [AnswerItem("a", "")])
    assert not list(tmp_path.iterdir())  # nothing half-written


# -- accuracy ---------------------------------------------------------------------

# The alphabet model continues any slice of a..z with the next letters (wrapping).
HAND = (
    "abc\td\tcontext=3\n"  # right
    "qrstuvwxyz\tab\tcontext=10\n"  # right, across the wrap
    "klm\tq\tcontext=3\n"  # wrong: n
    "# a comment\n"
    "pqr\tstu\tcontext=3\tset=b\n"  # right
    "def\tgx\tcontext=3\tset=b\n"  # wrong: gh
)


@pytest.fixture
def hand_file(tmp_path: Path) -> Path:
    path = tmp_path / "hand.tsv"
    path.write_text(HAND, encoding="utf-8")
    return path


def test_accuracy_on_a_hand_made_file(alphabet: Predictor, hand_file: Path) -> None:
    items = read_answers(hand_file)
    result = answer_accuracy(alphabet, items)
    assert (result.model, result.items, result.correct, result.accuracy) == ("alphabet", 5, 3, 0.6)
    groups = [(g.field, g.value, g.items, g.correct) for g in result.groups]
    assert groups == [  # "10" after "3": numeric order
        ("context", "3", 4, 2),
        ("context", "10", 1, 1),
        ("set", "b", 2, 1),
    ]
    assert [(m.item, m.answer, m.predicted) for m in result.mistakes] == [
        (3, "q", "n"),
        (5, "gx", "gh"),
    ]
    probs = [_answer_prob(alphabet, item) for item in items]  # one `predict` per step
    wrong = [m.item - 1 for m in result.mistakes]
    assert all(probs[n] < 0.01 if n in wrong else probs[n] > 0.9 for n in range(5)), probs
    for m in result.mistakes:
        assert m.answer_prob == pytest.approx(probs[m.item - 1], abs=1e-5)
    means = [g.mean_answer_prob for g in result.groups]
    assert means == pytest.approx(
        [(probs[0] + probs[2] + probs[3] + probs[4]) / 4, probs[1], (probs[3] + probs[4]) / 2],
        abs=1e-5,
    )
    assert result.mean_answer_prob == pytest.approx(sum(probs) / 5, abs=1e-5)
    only = answer_accuracy(alphabet, items, by=["set"])
    assert [g.field for g in only.groups] == ["set"] and only.correct == 3
    assert answer_accuracy(alphabet, items, by=[]).groups == []


def test_long_answers_are_scored_in_one_pass_with_the_same_numbers(alphabet: Predictor) -> None:
    items = [AnswerItem("ab", "cdefghijklmn"), AnswerItem("ab", "cdefghijklmz")]  # 12 chars
    result = answer_accuracy(alphabet, items)
    assert result.correct == 1 and result.mistakes[0].predicted == "cdefghijklmn"
    probs = [_answer_prob(alphabet, item) for item in items]
    assert probs[0] > 0.9 and probs[1] < 0.01
    assert result.mistakes[0].answer_prob == pytest.approx(probs[1], abs=1e-5)
    assert result.mean_answer_prob == pytest.approx(sum(probs) / 2, abs=1e-5)


def _answer_prob(p: Predictor, item: AnswerItem) -> float:
    prob = 1.0
    for j, char in enumerate(item.answer):
        dist = p.predict(item.prompt + item.answer[:j], top_k=0).next
        prob *= next(c.prob for c in dist if c.char == char)
    return prob


def test_accuracy_refuses_items_it_cannot_answer(alphabet: Predictor, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="item 2: the prompt is empty"):
        answer_accuracy(alphabet, [AnswerItem("a", "b"), AnswerItem("", "a")])
    path = tmp_path / "a.tsv"
    path.write_text("abc\td\n\nabc\tD!\n", encoding="utf-8")
    with pytest.raises(UnknownCharacterError) as e:
        answer_accuracy(alphabet, read_answers(path))
    assert str(e.value).startswith("line 3: the answer has characters the model has never")
    assert "'D' at position 0; '!' at position 1" in str(e.value)
    with pytest.raises(InputError, match=r"no item has the field 'gap'.*fields: none"):
        answer_accuracy(alphabet, [AnswerItem("a", "b")], by=["gap"])
    with pytest.raises(InputError, match="no items"):
        answer_accuracy(alphabet, [])


# -- the command line -------------------------------------------------------------


def test_corpus_make_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data" / "latch.txt"
    args = ["corpus", "make", "latch", "--gap", "4", "--lines", "30", "--out", str(out)]
    rc, printed, _ = run(capsys, *args, "--seed", "2")
    assert rc == 0
    assert printed.splitlines() == [
        str(out),
        str(tmp_path / "data" / "latch.heldout.tsv"),
        "latch, seed 2: 240 chars in 30 lines; 200 held-out items",
    ]
    first = out.read_bytes(), (tmp_path / "data" / "latch.heldout.tsv").read_bytes()
    assert run(capsys, *args, "--seed", "2")[0] == 0
    assert first == (out.read_bytes(), (tmp_path / "data" / "latch.heldout.tsv").read_bytes())
    assert make_task("latch", LatchConfig(gap=4, lines=30), 2).train_text == first[0].decode()
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--points", "3"])  # an option of another kind
    assert exit_.value.code == 2 and "unrecognized arguments: --points" in capsys.readouterr().err
    rc, _, err = run(capsys, *args, "--gap", "-3")
    assert rc == 2 and err == "charlm: error: gap must be an integer from 0 to 100000, got -3\n"


def test_accuracy_command_text_and_json(
    alphabet_dir: Path, alphabet: Predictor, hand_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = run(capsys, "accuracy", str(alphabet_dir), str(hand_file))
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"alphabet on {hand_file}: 3 of 5 answers right (60.00%); mean ")
    assert "by context:" in lines and "by set:" in lines
    assert '  line 3: "klm" -> "n", expected "q" (p ' in out  # its line in the file
    rc, out, _ = run(capsys, "accuracy", str(alphabet_dir), str(hand_file), "--json", "--by", "set")
    data = json.loads(out)
    expected = answer_accuracy(alphabet, read_answers(hand_file), by=["set"]).model_dump()
    assert data.keys() == expected.keys() and data["groups"] == [
        {**g, "mean_answer_prob": pytest.approx(g["mean_answer_prob"], abs=1e-6)}
        for g in expected["groups"]
    ]
    assert data["correct"] == 3 and len(data["mistakes"]) == 2


def test_accuracy_command_names_the_bad_line(
    alphabet_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("abc\td\nabc d\n", encoding="utf-8")
    rc, _, err = run(capsys, "accuracy", str(alphabet_dir), str(bad))
    assert rc == 2 and err.startswith(f"charlm: error: answer file {bad}, line 2: no tab")
    bad.write_text("abc\td\n\tb\n", encoding="utf-8")
    rc, _, err = run(capsys, "accuracy", str(alphabet_dir), str(bad))
    assert rc == 2 and err.startswith(f"charlm: error: answer file {bad}, line 2: the prompt")
