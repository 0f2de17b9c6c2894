"""How fast each initialisation of the model learns, with everything else held fixed.

    python bench/init.py [--steps 400] [--seeds 0 1 2]

Trains `CharRNN` (2 x 256, embedding 64) on tiny Shakespeare's first 90% with the
plainest loop there is: Adam at 3e-3, gradient clipping at 5, float32, random 64-character
windows from a zero state, batch 32; then scores the last 10% on the windowed metric of
bench/quality.py. Only the initialisation differs between rows: PyTorch's defaults (what
`CharRNN` uses), a forget-gate bias of 1, a head drawn with std 0.02 and zero bias, and
both. Steps, not seconds, are the budget, so the comparison does not depend on the
machine's speed. Needs ../shared/corpora/tinyshakespeare.txt or a downloaded copy.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import report
from quality import find_corpus, windowed_loss
from torch import nn

from charlm.model import CharRNN, ModelConfig
from charlm.vocab import Vocabulary

WINDOW, BATCH, LR, CLIP = 64, 32, 3e-3, 5.0


def forget_bias_one(model: CharRNN) -> None:
    h = model.config.hidden_size
    with torch.no_grad():
        for name, p in model.recurrent.named_parameters():
            if name.startswith("bias_ih"):
                p[h : 2 * h].fill_(1.0)  # gate order i, f, g, o
            elif name.startswith("bias_hh"):
                p[h : 2 * h].zero_()


def small_head(model: CharRNN) -> None:
    with torch.no_grad():
        nn.init.normal_(model.head.weight, std=0.02)
        nn.init.zeros_(model.head.bias)


def both(model: CharRNN) -> None:
    forget_bias_one(model)
    small_head(model)


INITS: dict[str, Callable[[CharRNN], None]] = {
    "PyTorch defaults (charlm)": lambda model: None,
    "forget-gate bias 1": forget_bias_one,
    "head std 0.02, zero bias": small_head,
    "both": both,
}


def train_and_score(
    train: torch.Tensor, val: torch.Tensor, vocab: int, steps: int, seed: int, init: str
) -> float:
    torch.manual_seed(seed)
    model = CharRNN(ModelConfig(vocab_size=vocab))
    INITS[init](model)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, train.numel() - WINDOW - 1, (BATCH,), generator=gen)
        x = torch.stack([train[s : s + WINDOW] for s in starts])
        y = torch.stack([train[s + 1 : s + WINDOW + 1] for s in starts])
        opt.zero_grad()
        logits, _ = model(x)
        F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1)).backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
    model.eval()
    return windowed_loss(model, val, vocab)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    corpus = find_corpus()
    if corpus is None:
        print("tiny Shakespeare not found (../shared/corpora or `charlm corpus download`)")
        return
    text = corpus.read_text(encoding="utf-8")
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    cut = int(len(text) * 0.9)
    train, val = ids[:cut], ids[cut:]
    losses: dict[str, list[float]] = {name: [] for name in INITS}
    for seed in args.seeds:
        for name in INITS:
            loss = train_and_score(train, val, len(vocab), args.steps, seed, name)
            losses[name].append(loss)
            print(f"seed {seed}: {name}: {loss:.4f}", flush=True)
    rows = [
        f"| {name} | {statistics.median(v):.4f} | {', '.join(f'{x:.4f}' for x in v)} |"
        for name, v in losses.items()
    ]
    table = (
        "| initialisation | val loss, 256-char windows (median) | per seed |\n"
        "|---|---|---|\n" + "\n".join(rows)
    )
    notes = (
        f"2 x 256 LSTM, {args.steps} steps of Adam ({LR:g}, clip {CLIP:g}, float32), "
        f"batch {BATCH}, random {WINDOW}-character windows from a zero state; seeds "
        f"{', '.join(map(str, args.seeds))}, each seed giving every row the same data order."
    )
    report(
        "Initialisation against learning speed (tiny Shakespeare)",
        table,
        notes,
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
