"""Inside the recurrent layers (`Predictor.activations`): every kind of activation
against the LSTM equations written out by hand, the last layer against the model's own
forward pass, chunked reading against one pass, the correlations against numpy's, and
the text features by hand. Also `score(start=...)`, which the inspector's incremental
scoring relies on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
import torch

from charlm.cli import main
from charlm.errors import ConfigError, InputError
from charlm.inference import Predictor
from charlm.inference import activations as act
from charlm.inference.features import FEATURES, text_features
from charlm.model import CharRNN, ModelConfig
from charlm.vocab import Vocabulary

from .conftest import copy_checkpoint
from .serving import Server

TEXT = 'say "hi" (to [me]) \'now\'\nand "then"\n\tok!' * 3


def predictor(cell: str = "lstm", layers: int = 2, seed: int = 0) -> Predictor:
    torch.manual_seed(seed)
    vocab = Vocabulary.from_text(TEXT)
    cfg = ModelConfig(
        vocab_size=len(vocab), embedding_dim=6, hidden_size=7, num_layers=layers, cell=cell
    )
    model = CharRNN(cfg).double()
    for p in model.parameters():  # larger weights than the default: gates far from 0.5
        p.data.mul_(3)
    return Predictor(model, vocab)


def by_hand(p: Predictor, text: str) -> list[dict[str, torch.Tensor]]:
    """Per layer: i, f, o, tanh(c) and h at every step, from PyTorch's documented LSTM
    equations, one time step at a time."""
    m = p.model
    H = m.config.hidden_size
    inp = m.embedding.weight[p.vocab.encode(text)]  # (T, E)
    out = []
    for layer in range(m.config.num_layers):
        w = {
            k: getattr(m.lstm, f"{k}_l{layer}")
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
        h, c = torch.zeros(H, dtype=torch.float64), torch.zeros(H, dtype=torch.float64)
        rows: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("input_gate", "forget_gate", "output_gate", "cell", "hidden")
        }
        for t in range(inp.shape[0]):
            gates = w["weight_ih"] @ inp[t] + w["bias_ih"] + w["weight_hh"] @ h + w["bias_hh"]
            i, f, g, o = gates.chunk(4)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            for k, v in (
                ("input_gate", i),
                ("forget_gate", f),
                ("output_gate", o),
                ("cell", torch.tanh(c)),
                ("hidden", h),
            ):
                rows[k].append(v)
        layer_out = {k: torch.stack(v) for k, v in rows.items()}
        out.append(layer_out)
        inp = layer_out["hidden"]
    return out


def matrix(p: Predictor, text: str, layer: int, kind: str) -> np.ndarray:
    """(T, H): every unit's activation."""
    H = p.model.config.hidden_size
    r = p.activations(text, layer=layer, kind=kind, cells=range(H))
    return np.array([s.values for s in r.series]).T


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("kind", list(act.KINDS))
def test_lstm_activations_match_the_equations_by_hand(layer: int, kind: str) -> None:
    p = predictor()
    with torch.no_grad():
        want = by_hand(p, TEXT)[layer][kind].numpy()
    got = matrix(p, TEXT, layer, kind)
    assert got.shape == (len(TEXT), 7)
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert want.std() > 0.1  # the units move: the comparison is not of constants


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_last_layer_gives_the_forward_pass_logits(cell: str) -> None:
    """The last layer's output, through the model's head, is the model's own forward
    pass; for an LSTM so is o * tanh(c) from the reported gate and cell state."""
    p = predictor(cell)
    with torch.no_grad():
        logits, _ = p.model(p.vocab.encode(TEXT).unsqueeze(0))
        h = torch.from_numpy(matrix(p, TEXT, -1, "hidden"))
        np.testing.assert_allclose(p.model.head(h).numpy(), logits[0].numpy(), atol=1e-10)
    if cell == "lstm":
        o, tanh_c = matrix(p, TEXT, 1, "output_gate"), matrix(p, TEXT, 1, "cell")
        np.testing.assert_allclose(o * tanh_c, h.numpy(), atol=1e-10)


def test_reading_in_chunks_carries_the_state(monkeypatch: pytest.MonkeyPatch) -> None:
    p = predictor()
    whole = {k: matrix(p, TEXT, 0, k) for k in ("cell", "hidden", "forget_gate")}
    monkeypatch.setattr(act, "PIECE", 7)
    for kind, want in whole.items():
        np.testing.assert_allclose(matrix(p, TEXT, 0, kind), want, atol=1e-12)
    r = p.activations(TEXT, layer=0, kind="cell", top=7)
    monkeypatch.setattr(act, "PIECE", 10_000)
    for a, b in zip(
        r.features, p.activations(TEXT, layer=0, kind="cell", top=7).features, strict=True
    ):
        assert [c.cell for c in a.cells] == [c.cell for c in b.cells]
        np.testing.assert_allclose([c.r for c in a.cells], [c.r for c in b.cells], atol=1e-12)


def test_correlations_are_pearsons_and_the_strongest_come_first() -> None:
    p = predictor()
    full = matrix(p, TEXT, 1, "cell")
    feats = text_features(TEXT)
    r = p.activations(TEXT, layer=1, kind="cell", top=3)
    assert [f.feature for f in r.features] == list(FEATURES)
    for f in r.features:
        want = np.array([np.corrcoef(full[:, u], feats[f.feature])[0, 1] for u in range(7)])
        assert [c.cell for c in f.cells] == list(np.argsort(-np.abs(want))[:3])
        np.testing.assert_allclose(
            [c.r for c in f.cells], want[[c.cell for c in f.cells]], atol=1e-9
        )


def test_a_feature_constant_over_the_text_lists_no_cells() -> None:
    r = predictor().activations("and and", kind="hidden")
    quotes = {f.feature: f.cells for f in r.features}
    assert quotes["in_double_quotes"] == [] and quotes["bracket_depth"] == []
    assert len(quotes["word_position"]) == 5


def test_text_features_by_hand() -> None:
    f = text_features('a "b(c)"\nd')
    assert f["in_double_quotes"].tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    assert f["bracket_depth"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert f["line_position"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0]
    assert f["after_newline"].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert f["word_position"].tolist() == [1, 0, 0, 1, 0, 1, 0, 0, 0, 1]


def test_result_holds_the_asked_units_and_the_range() -> None:
    r = predictor().activations(TEXT, layer=0, kind="forget_gate", cells=[3, 0])
    assert (r.layer, r.kind, r.size, r.low, r.high) == (0, "forget_gate", 7, 0.0, 1.0)
    assert [s.cell for s in r.series] == [3, 0]
    assert all(0 < v < 1 for s in r.series for v in s.values)
    assert predictor().activations(TEXT, layer=-2).layer == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": 2}, "this model has 2 layers (0 to 1)"),
        ({"layer": -3}, "layer"),
        ({"kind": "candle"}, "kind"),
        ({"cells": [7]}, "cell 7 is not a unit of this layer: it has 7"),
        ({"cells": [-1]}, "cell -1"),
        ({"cells": ["1"]}, "cells must be unit numbers"),
        ({"top": -1}, "top"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(
        (ConfigError, InputError), match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        predictor().activations(TEXT, **kwargs)  # type: ignore[arg-type]


def test_a_gru_has_no_cell_state_to_show() -> None:
    with pytest.raises(InputError, match="a GRU layer has only 'hidden' activations"):
        predictor("gru").activations(TEXT, kind="cell")
    with pytest.raises(InputError, match="never seen: '€' at position 0"):
        predictor("gru").activations("€", kind="hidden")


def test_score_from_a_start_lists_the_later_steps_and_summarises_the_whole() -> None:
    p = predictor()
    whole = p.score(TEXT, alternatives=2)
    for start in (1, 2, 40, len(TEXT) - 1, len(TEXT) + 3):
        part = p.score(TEXT, alternatives=2, start=start)
        assert part.steps == [s for s in whole.steps if s.position >= start]
        assert (part.bits_per_char, part.min_prob, part.min_position) == (
            whole.bits_per_char,
            whole.min_prob,
            whole.min_position,
        )
    with pytest.raises(ConfigError, match="start must be an integer >= 1"):
        p.score(TEXT, start=0)


# -- over HTTP and on the command line -------------------------------------------------


@pytest.fixture(scope="module")
def notes_server(
    notes_dir: Path, gru_alphabet_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("inside") / "checkpoints"
    copy_checkpoint(notes_dir, root / "notes")
    copy_checkpoint(gru_alphabet_dir, root / "gru")
    s = Server(root, "--max-activation-values", "500", "--max-text-chars", "300")
    yield s
    s.stop()


@pytest.mark.server
def test_http_activations_are_the_librarys(notes_server: Server, notes: Predictor) -> None:
    text = "The rain (it said 'soon') came.\nAnd"
    body = {"model": "notes", "text": text, "layer": 0, "kind": "output_gate", "cells": [4, 1]}
    r = httpx.post(notes_server.url + "/activations", json=body)
    assert r.status_code == 200, r.text
    want = notes.activations(text, layer=0, kind="output_gate", cells=[4, 1])
    got = r.json()
    assert [s["cell"] for s in got["series"]] == [4, 1]
    np.testing.assert_allclose(
        [s["values"] for s in got["series"]], [s.values for s in want.series], atol=1e-6
    )
    assert [f["feature"] for f in got["features"]] == list(FEATURES)
    assert (got["layer"], got["size"], got["low"], got["high"]) == (0, 32, 0.0, 1.0)
    schema = httpx.get(notes_server.url + "/openapi.json").json()
    assert "/activations" in schema["paths"]


@pytest.mark.server
@pytest.mark.parametrize(
    ("body", "status", "kind", "message"),
    [
        (
            {"text": "a" * 251, "cells": [0, 1]},
            413,
            "too_many_items",
            "(characters x cells) is 502; the limit is 500",
        ),
        (
            {"text": "a" * 301},
            413,
            "text_too_long",
            "text is 301 characters long; the limit is 300",
        ),
        ({"text": "abc", "kind": "candle"}, 422, None, "kind must be one of"),
        ({"text": "abc", "layer": 2}, 422, None, "this model has 2 layers (0 to 1)"),
        ({"text": "abc", "cells": [32]}, 422, None, "cell 32 is not a unit of this layer"),
        ({"text": "abc", "cells": ["1"]}, 422, None, "cells"),
        ({"text": "ab€"}, 422, "unknown_character", "'€' at position 2"),
        ({"text": ""}, 422, None, "text is empty"),
    ],
)
def test_http_activations_refuse_bad_requests_by_name(
    notes_server: Server, body: dict[str, object], status: int, kind: str | None, message: str
) -> None:
    r = httpx.post(notes_server.url + "/activations", json={"model": "notes", **body})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert message in error["message"]
    if kind:
        assert error["type"] == kind


@pytest.mark.server
def test_http_a_gru_shows_its_hidden_state_only(notes_server: Server) -> None:
    ok = httpx.post(
        notes_server.url + "/activations",
        json={"model": "gru", "text": "abcd", "kind": "hidden", "cells": [0]},
    )
    assert ok.status_code == 200 and len(ok.json()["series"][0]["values"]) == 4
    r = httpx.post(notes_server.url + "/activations", json={"model": "gru", "text": "abcd"})
    assert r.status_code == 422
    assert "a GRU layer has only 'hidden' activations" in r.json()["error"]["message"]


@pytest.mark.server
def test_http_score_from_a_start(notes_server: Server, notes: Predictor) -> None:
    text = "The rain came down on the hills."
    r = httpx.post(notes_server.url + "/score", json={"model": "notes", "text": text, "start": 20})
    assert r.status_code == 200
    got = r.json()
    want = notes.score(text)
    assert [s["position"] for s in got["steps"]] == list(range(20, len(text)))
    assert got["bits_per_char"] == pytest.approx(want.bits_per_char, rel=1e-6)
    bad = httpx.post(notes_server.url + "/score", json={"model": "notes", "text": text, "start": 0})
    assert bad.status_code == 422 and "start must be an integer >= 1" in bad.text


def test_cli_lists_the_units_that_follow_features(
    notes_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "The rain (it said 'soon') came.\nAnd the 'hills' too.\n"
    assert main(["cells", str(notes_dir), text, "--layer", "0", "--unit", "3", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("layer 0 (of 0 to 1), cell, 32 units, 53 characters")
    assert re.search(r"inside single quotes \('\.\.\.'\) +\d+ [+-]0\.\d\d +\d+ [+-]0\.\d\d", out)
    assert re.search(r'inside double quotes \("\.\.\."\) +\(constant in this text\)', out)
    assert re.search(r"unit 3: ([+-]\d\.\d\d, ){12}\.\.\.", out)
    assert main(["cells", str(notes_dir), text, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "cell"
    assert main(["cells", str(notes_dir), text, "--layer", "5"]) != 0
    assert "this model has 2 layers" in capsys.readouterr().err


def test_marked_spans_are_a_feature_of_the_callers_own() -> None:
    """Spans the user marks rank the units by Pearson r with 1 inside, 0 outside,
    computed here from the activations themselves."""
    p = predictor()
    text = 'say "hi" to me and "then" now'
    spans = [[4, 8], [19, 25]]
    r = p.activations(text, layer=0, kind="cell", cells=range(p.model.config.hidden_size), top=4)
    mine = p.activations(text, layer=0, kind="cell", top=4, marked=spans)
    assert mine.features[0].feature == "marked"
    assert mine.features[1:] == r.features  # the text's own features are unchanged
    y = np.zeros(len(text))
    for a, b in spans:
        y[a:b] = 1
    values = np.array([s.values for s in r.series])  # (H, T)
    want = [float(np.corrcoef(v, y)[0, 1]) for v in values]
    order = np.argsort(-np.abs(want))[:4]
    got = mine.features[0].cells
    assert [c.cell for c in got] == order.tolist()
    for c in got:
        assert c.r == pytest.approx(want[c.cell], abs=1e-9)
    for bad in ([[5, 5]], [[0, len(text) + 1]], [[-1, 2]], [[1, 2, 3]], [["a", 2]]):
        with pytest.raises(InputError, match="marked spans must be"):
            p.activations(text, marked=bad)
