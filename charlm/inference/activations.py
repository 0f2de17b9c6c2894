"""Inside the recurrent layers: each unit's activation at every character of a text.

`Predictor.activations(text, layer=..., kind=..., cells=[...])` (`activation_pieces`: the
same in pieces) reads the text once, from the zero state, and returns, for the chosen
layer, the activation of each unit asked for after every character, and the units most
correlated with simple features of the text (`charlm.inference.features`) and with
spans the caller marks, so that interpretable units can be found, as in Karpathy,
Johnson and Fei-Fei, "Visualizing and Understanding Recurrent Networks" (2015).

Kinds (an LSTM's units have them all; a GRU's and an RNN's have `hidden` only):

    cell          tanh(c_t), the cell state squashed into (-1, 1)
    hidden        h_t, the layer's output, (-1, 1)
    input_gate    i_t, (0, 1)
    forget_gate   f_t, (0, 1)
    output_gate   o_t, (0, 1)

Each layer runs as PyTorch's own module, with the layer's weights; an LSTM's gates are
then computed from the layer's input and its previous output, and the cell state from
them, so that o_t * tanh(c_t) must give back the module's output (tested against the
model's forward pass). The text is read in pieces (`charlm.slices`), so memory grows
with the units asked for, not with the text; the correlations are kept as running sums.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from charlm._config import check_choice, check_int
from charlm.errors import InputError
from charlm.inference.features import FEATURES, text_features
from charlm.inference.reader import Reader
from charlm.inference.results import ActivationResult, CellCorrelation, CellSeries, FeatureCells
from charlm.model import CharRNN
from charlm.slices import PIECE, Sliced, finish

__all__ = ["KINDS", "activation_pieces", "activations", "kinds_for"]

KINDS: dict[str, tuple[float, float]] = {  # each kind's range
    "cell": (-1.0, 1.0),
    "hidden": (-1.0, 1.0),
    "input_gate": (0.0, 1.0),
    "forget_gate": (0.0, 1.0),
    "output_gate": (0.0, 1.0),
}
_GATES = {"input_gate": 0, "forget_gate": 1, "output_gate": 3}  # PyTorch's order: i, f, g, o


def kinds_for(cell: str) -> tuple[str, ...]:
    """The kinds of activation a model with this cell type has."""
    return tuple(KINDS) if cell == "lstm" else ("hidden",)


def activations(
    predictor: Reader,
    text: str,
    *,
    layer: int = -1,
    kind: str = "cell",
    cells: Sequence[int] = (),
    top: int = 5,
    marked: Sequence[Sequence[int]] = (),
) -> ActivationResult:
    """The activations of `cells` (unit indices) of `layer` (negative counts from the
    last) after each character of `text`, and for every feature the `top` units most
    correlated with it. `marked`: spans [start, end) of the text that make a feature of
    the caller's own (1 inside them, 0 elsewhere), listed first as "marked"."""
    job = activation_pieces(
        predictor, text, layer=layer, kind=kind, cells=cells, top=top, marked=marked
    )
    with torch.inference_mode():
        return finish(job)


def activation_pieces(
    predictor: Reader,
    text: str,
    *,
    layer: int = -1,
    kind: str = "cell",
    cells: Sequence[int] = (),
    top: int = 5,
    marked: Sequence[Sequence[int]] = (),
) -> Sliced[ActivationResult]:
    """`activations` in pieces of `PIECE` characters (`charlm.slices`), its arguments
    checked now."""
    model = predictor.model
    cfg = model.config
    check_int("layer", layer, -cfg.num_layers)
    if layer >= cfg.num_layers:
        raise InputError(
            f"layer is {layer}; this model has {cfg.num_layers} layer"
            f"{'s' if cfg.num_layers > 1 else ''} (0 to {cfg.num_layers - 1})"
        )
    layer %= cfg.num_layers
    kinds = kinds_for(cfg.cell)
    if kind in KINDS and kind not in kinds:
        raise InputError(
            f"kind is {kind!r}; a {cfg.cell.upper()} layer has only 'hidden' activations"
        )
    check_choice("kind", kind, kinds)
    check_int("top", top, 0)
    cells = list(cells)
    for cell in cells:
        if not isinstance(cell, int) or isinstance(cell, bool):
            raise InputError(f"cells must be unit numbers; got {cell!r}")
        if not 0 <= cell < cfg.hidden_size:
            raise InputError(
                f"cell {cell} is not a unit of this layer: it has {cfg.hidden_size} "
                f"(0 to {cfg.hidden_size - 1})"
            )
    ids = predictor.ids(text, "text")
    feats = text_features(text)
    if marked:
        feats = {MARKED: _marked(marked, len(text)), **feats}
    return _read(predictor, text, ids, layer, kind, cells, top, feats)


MARKED = "marked"
_DESCRIPTIONS = {MARKED: "the characters you marked", **FEATURES}
_MAX_SPANS = 10_000


def _marked(spans: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """1 inside the spans [start, end) of a text of `n` characters, 0 elsewhere."""
    if len(spans) > _MAX_SPANS:
        raise InputError(f"marked has {len(spans)} spans; at most {_MAX_SPANS}")
    out = np.zeros(n)
    for span in spans:
        ok = isinstance(span, list | tuple) and len(span) == 2
        start, end = span if ok else (None, None)
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= n):
            raise InputError(
                f"marked spans must be [start, end) with 0 <= start < end <= {n} (the "
                f"text's length); got {span!r}"
            )
        out[start:end] = 1.0
    return out


def _read(
    predictor: Reader,
    text: str,
    ids: torch.Tensor,
    layer: int,
    kind: str,
    cells: list[int],
    top: int,
    feats: dict[str, np.ndarray],
) -> Sliced[ActivationResult]:
    cfg = predictor.model.config
    model = predictor.model
    names = list(feats)
    y = np.stack([feats[n] for n in names])  # (F, T)
    sums = _Sums(cfg.hidden_size, len(names))
    series: list[list[float]] = [[] for _ in cells]
    for start, values in _chunks(model, ids, layer, kind):
        a = values.double().cpu().numpy()  # (t, H)
        sums.add(a, y[:, start : start + a.shape[0]])
        for k, cell in enumerate(cells):
            series[k].extend(a[:, cell].tolist())
        yield
    r = sums.correlation()  # (F, H), NaN where a feature is constant
    features = []
    for f, name in enumerate(names):
        row = r[f]
        order: list[int] = (
            [] if np.isnan(row).all() else np.argsort(-np.abs(np.nan_to_num(row)))[:top].tolist()
        )
        features.append(
            FeatureCells(
                feature=name,
                description=_DESCRIPTIONS[name],
                cells=[CellCorrelation(cell=int(u), r=float(np.nan_to_num(row[u]))) for u in order],
            )
        )
    low, high = KINDS[kind]
    return ActivationResult(
        model=predictor.name,
        text=text,
        layer=layer,
        kind=kind,
        size=cfg.hidden_size,
        low=low,
        high=high,
        series=[CellSeries(cell=c, values=v) for c, v in zip(cells, series, strict=True)],
        features=features,
    )


def _layers(model: CharRNN, upto: int) -> list[nn.Module]:
    """Layers 0..`upto` of the model's recurrent module, each as a one-layer module of
    the same kind holding that layer's weights."""
    rec = model.recurrent
    param = model.head.weight
    out: list[nn.Module] = []
    for layer in range(upto + 1):
        kwargs: dict[str, object] = {}
        if isinstance(rec, nn.RNN):
            kwargs["nonlinearity"] = rec.nonlinearity
        one = type(rec)(
            input_size=rec.input_size if layer == 0 else rec.hidden_size,
            hidden_size=rec.hidden_size,
            num_layers=1,
            bias=rec.bias,
            batch_first=True,
            **kwargs,
        ).to(device=param.device, dtype=param.dtype)
        suffix = f"_l{layer}"
        own = {
            n[: -len(suffix)] + "_l0": p for n, p in rec.named_parameters() if n.endswith(suffix)
        }
        one.load_state_dict(own)
        out.append(one.eval())
    return out


def _chunks(
    model: CharRNN, ids: torch.Tensor, layer: int, kind: str
) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, activations (t, H)) of `layer` for consecutive chunks of `ids`."""
    lstm = model.config.cell == "lstm"
    layers = _layers(model, layer)
    zero_h, zero_c = model.initial_state(1, ids.device)
    h = [zero_h[:1].clone() for _ in layers]  # each (1, 1, H)
    c = [zero_c[:1].clone() for _ in layers]
    for start in range(0, ids.numel(), PIECE):
        x = model.embedding(ids[start : start + PIECE].unsqueeze(0))  # (1, t, E)
        for n, module in enumerate(layers):
            inp, h_before, c_before = x, h[n], c[n]
            if lstm:
                x, (h[n], c[n]) = module(inp, (h_before, c_before))
            else:
                x, h[n] = module(inp, h_before)
        if kind == "hidden":
            yield start, x[0]
        else:  # the chosen layer's input, and its output one step earlier
            prev = torch.cat([h_before[0], x[0, :-1]])
            yield start, _lstm_kind(module, inp[0], prev, c_before[0, 0], kind)


def _lstm_kind(
    module: nn.Module, inp: torch.Tensor, prev: torch.Tensor, c: torch.Tensor, kind: str
) -> torch.Tensor:
    """A gate, or tanh of the cell state, (t, H), of one LSTM layer given its input
    (t, E), its previous output at each step (t, H) and the cell state before (H,)."""
    w = dict(module.named_parameters())
    gates = inp @ w["weight_ih_l0"].T + prev @ w["weight_hh_l0"].T
    if "bias_ih_l0" in w:
        gates = gates + w["bias_ih_l0"] + w["bias_hh_l0"]
    i, f, g, o = gates.chunk(4, dim=1)
    if kind in _GATES:
        return torch.sigmoid((i, f, g, o)[_GATES[kind]])
    f = torch.sigmoid(f)
    ig = torch.sigmoid(i) * torch.tanh(g)
    cs = torch.empty_like(ig)
    for t in range(ig.shape[0]):  # c_t = f_t * c_(t-1) + i_t * g_t
        c = torch.addcmul(ig[t], f[t], c, out=cs[t])
    return torch.tanh(cs)


class _Sums:
    """Running sums for the Pearson correlation of every unit with every feature."""

    def __init__(self, units: int, features: int) -> None:
        self.n = 0
        self.a = np.zeros(units)
        self.aa = np.zeros(units)
        self.y = np.zeros(features)
        self.yy = np.zeros(features)
        self.ya = np.zeros((features, units))

    def add(self, a: np.ndarray, y: np.ndarray) -> None:
        """Activations `a` (t, H) and features `y` (F, t) at the same positions."""
        self.n += a.shape[0]
        self.a += a.sum(0)
        self.aa += (a * a).sum(0)
        self.y += y.sum(1)
        self.yy += (y * y).sum(1)
        self.ya += y @ a

    def correlation(self) -> np.ndarray:
        """(F, H): r of each feature with each unit; NaN for a constant feature, 0 for a
        constant unit."""
        n = max(self.n, 1)
        cov = self.ya / n - np.outer(self.y / n, self.a / n)
        var_a = np.maximum(self.aa / n - (self.a / n) ** 2, 0.0)
        var_y = np.maximum(self.yy / n - (self.y / n) ** 2, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = cov / np.sqrt(np.outer(var_y, var_a))
        r[:, var_a <= 1e-12] = 0.0
        r[var_y <= 1e-12, :] = np.nan
        clipped: np.ndarray = np.clip(r, -1.0, 1.0)
        return clipped
