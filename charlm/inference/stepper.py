"""Fast one-character-at-a-time steps of a trained LSTM `CharRNN`, for generation.

Stepping `nn.LSTM` with one character costs far more than its arithmetic: every call
goes through the general sequence kernel (oneDNN's is slowest at batch 1). A `Stepper`
precomputes, once per model:

- layer 0's input term for every character: embedding @ W_ih^T + both biases, a (V, 4H)
  table, so the first layer needs only its recurrent product;
- for deeper layers, [W_ih | W_hh] side by side, so each layer is one matrix product of
  [h_below, h_own];
- the gate rows reordered to (i, f, o, g), so the three sigmoids are one call;
- large weight matrices prepacked for oneDNN's matrix-vector kernel where this torch
  has it (for small ones, like the output projection, the plain kernel is faster);
- or, with `weights="int8"`, the recurrent matrices quantised to int8 per output row
  and prepacked for FBGEMM's dynamically quantised product (each step's input is
  quantised to 8 bits on the fly): a quarter of float32's bytes to read per step.

A `StepSession` holds the state of one sequence, or of a batch of sequences stepped
together (the service's batched /predict), in preallocated buffers and advances it in
place; nothing is allocated per step but the kernels' outputs. Results match the
model's own forward pass to float32 rounding (the tests check 1e-5).

GRU and RNN models have no stepper: `Predictor` steps them through the model's own
forward pass, one character per call (the same numbers, at the general kernel's speed).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from charlm._config import check_choice
from charlm.errors import ConfigError
from charlm.model import CharRNN, State
from charlm.runtime import Linear, onednn_linear, require_bf16_steps, require_int8_steps

__all__ = ["STEP_WEIGHTS", "StepSession", "Stepper"]

STEP_WEIGHTS = ("fp32", "bf16", "int8")


def _plain_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x, w, b)


def _int8_pack(w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`w` (N, K) as int8 with a scale per row, packed for FBGEMM with the float `bias`
    its product adds (an opaque handle)."""
    scale = (w.abs().amax(1) / 127).clamp_min(1e-12).double()
    zero = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # quantised tensors are only the packing's input
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_channel(w.contiguous(), scale, zero, 0, torch.qint8)
        packed: torch.Tensor = torch.ops.quantized.linear_prepack(q, bias)
    return packed


def _int8_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    out: torch.Tensor = torch.ops.quantized.linear_dynamic(x.contiguous(), w)
    return out if b is None else out.add_(b)


def _gates_reordered(parts: list[torch.Tensor]) -> torch.Tensor:
    """`parts` (each (4H, n_i)) side by side, their gate rows moved from nn.LSTM's
    (i, f, g, o) to (i, f, o, g), written straight into one new buffer (no temporaries)."""
    H = parts[0].shape[0] // 4
    out = torch.empty(4 * H, sum(p.shape[1] for p in parts))
    start = 0
    for p in parts:
        end = start + p.shape[1]
        out[: 2 * H, start:end] = p[: 2 * H]  # i, f
        out[2 * H : 3 * H, start:end] = p[3 * H :]  # o
        out[3 * H :, start:end] = p[2 * H : 3 * H]  # g
        start = end
    return out


class Stepper:
    """Precomputed weights of one model for batch-1 stepping on the CPU.

    `weights` says how the recurrent weight matrices are kept:

    - "fp32": as trained; results match the model's forward pass to float32 rounding.
    - "bf16": bfloat16 (half the bytes to read per step); each layer's input is rounded
      to bfloat16 before its product. Needs a CPU whose oneDNN computes bf16 (AVX-512).
    - "int8": int8 with one float scale per row (a quarter of the bytes); each layer's
      input is quantised to 8 bits per step (FBGEMM's dynamic quantisation).

    Biases, gate arithmetic and cell state stay float32 in every case, and so does the
    output projection except with int8, where it is int8 too. bf16 and int8
    distributions stay within 2e-2 and 5e-2 of float32 ones (tests/test_stepper.py
    checks a trained model; bench/generate.py measures it too), so they are an opt-in
    for generation, never used to report probabilities. `bf16=True` is `weights="bf16"`.
    """

    def __init__(self, model: CharRNN, *, bf16: bool = False, weights: str = "fp32") -> None:
        weights = "bf16" if bf16 else weights
        check_choice("weights", weights, STEP_WEIGHTS)
        cfg = model.config
        if cfg.cell != "lstm":
            raise ConfigError(
                f"the fast stepper is written for LSTM cells; a {cfg.cell.upper()} steps "
                "through the model's own forward pass (Predictor does so by itself)"
            )
        H = cfg.hidden_size
        self.hidden_size = H
        self.num_layers = cfg.num_layers
        lstm = model.recurrent
        fast = onednn_linear() if model.head.weight.device.type == "cpu" else None
        if weights == "bf16":
            require_bf16_steps()
        if weights == "int8":
            require_int8_steps()
        self.kind = weights
        self.bf16 = weights == "bf16"
        int8 = weights == "int8"
        pack: Callable[[torch.Tensor], torch.Tensor] = fast[0] if fast else (lambda w: w)
        if self.bf16:
            assert fast is not None
            pack = lambda w: fast[0](w.bfloat16())  # noqa: E731
        self._linear: Linear = _int8_linear if int8 else fast[1] if fast else _plain_linear
        with torch.no_grad():

            def param(name: str) -> torch.Tensor:
                tensor: torch.Tensor = getattr(lstm, name)
                return tensor.detach().float()

            bias0 = param("bias_ih_l0") + param("bias_hh_l0")
            table = model.embedding.weight.float() @ param("weight_ih_l0").T + bias0  # (V, 4H)
            self.table = _gates_reordered([table.T]).T.contiguous()
            self.rows = list(self.table.unbind(0))  # one view per character, made once
            w_hh0 = _gates_reordered([param("weight_hh_l0")])
            self.weights = [_int8_pack(w_hh0) if int8 else pack(w_hh0)]
            self.biases = [torch.zeros(4 * H)]  # layer 0's bias is in the table
            # The bias each product adds at run time: int8 products add their own, packed.
            self.bias_args: list[torch.Tensor | None] = [self.biases[0]]
            for layer in range(1, cfg.num_layers):
                w_ih, w_hh = param(f"weight_ih_l{layer}"), param(f"weight_hh_l{layer}")
                b = param(f"bias_ih_l{layer}") + param(f"bias_hh_l{layer}")
                bias = _gates_reordered([b[:, None]])[:, 0].contiguous()
                w = _gates_reordered([w_ih, w_hh])
                self.weights.append(_int8_pack(w, bias) if int8 else pack(w))
                self.biases.append(bias)
                self.bias_args.append(None if int8 else bias)
            self.head_w = model.head.weight.detach().float().contiguous()
            self.head_b = model.head.bias.detach().float().contiguous()
            self._head_int8 = _int8_pack(self.head_w, self.head_b) if int8 else None

    def _head(self, top: torch.Tensor) -> torch.Tensor:
        """The output projection of the top layer's h (B, H): logits (B, V)."""
        if self._head_int8 is not None:
            return _int8_linear(top, self._head_int8, None)
        return F.linear(top, self.head_w, self.head_b)

    def session(self, state: State) -> StepSession:
        """Sequences continuing from `state` ((h, c), each (L, B, H)); B is usually 1."""
        return StepSession(self, state)


class StepSession:
    """The state of B sequences, advanced in place by `step` (B = 1) or `step_batch`."""

    def __init__(self, stepper: Stepper, state: State) -> None:
        self.s = stepper
        H, L = stepper.hidden_size, stepper.num_layers
        h, c = state
        B = h.shape[1]
        # All layers' h side by side: [h_(l-1), h_l] is then one slice of each row.
        self.h = h.detach().float().permute(1, 0, 2).reshape(B, L * H).clone()
        self.c = [c[layer].detach().float().reshape(B, H).clone() for layer in range(L)]
        self.tanh_c = torch.empty(B, H)
        # Views made once: each layer's input, its h, and the top layer's h.
        self._inputs = [self.h[:, max(0, layer - 1) * H : (layer + 1) * H] for layer in range(L)]
        self._outputs = [self.h[:, layer * H : (layer + 1) * H] for layer in range(L)]
        if stepper.kind == "int8" and B > 1:  # FBGEMM reads its input contiguously
            self._inputs = [x.contiguous() for x in self._inputs]
            self._copy_inputs = True
        else:
            self._copy_inputs = False

    def step(self, char_id: int) -> torch.Tensor:
        """Feed one character to a single sequence; the next logits, shape (V,)."""
        return self._advance(self.s.rows[char_id], None)[0]

    def step_batch(self, char_ids: torch.Tensor) -> torch.Tensor:
        """Feed one character to each sequence, ids (B,); the next logits, shape (B, V)."""
        return self._advance(self.s.biases[0], self.s.table[char_ids])

    def _advance(self, bias0: torch.Tensor, input0: torch.Tensor | None) -> torch.Tensor:
        s = self.s
        H = s.hidden_size
        linear, weights, biases = s._linear, s.weights, s.bias_args
        for layer in range(s.num_layers):
            x = self._inputs[layer]
            if self._copy_inputs:
                x.copy_(self.h[:, max(0, layer - 1) * H : (layer + 1) * H])
            bias = bias0 if layer == 0 else biases[layer]
            if s.bf16:
                assert bias is not None  # only int8 products carry their bias
                gates = linear(x.bfloat16(), weights[layer], None).float().add_(bias)
            else:
                gates = linear(x, weights[layer], bias)
            if input0 is not None and layer == 0:
                gates.add_(input0)
            gates[:, : 3 * H].sigmoid_()  # i, f, o
            g = gates[:, 3 * H :].tanh_()
            c = self.c[layer]
            c.mul_(gates[:, H : 2 * H]).addcmul_(gates[:, :H], g)
            torch.tanh(c, out=self.tanh_c)
            torch.mul(gates[:, 2 * H : 3 * H], self.tanh_c, out=self._outputs[layer])
        return s._head(self._outputs[-1])

    def state(self) -> State:
        """The current state as (h, c), each (L, B, H)."""
        L, H = self.s.num_layers, self.s.hidden_size
        B = self.h.shape[0]
        h = self.h.reshape(B, L, H).permute(1, 0, 2).contiguous()
        return h, torch.stack(self.c).contiguous()
