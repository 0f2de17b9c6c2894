"""Post 002: information latching with a single-unit LSTM (or simple RNN), as in Bengio
et al. (1994): a sequence that starts near +1 is class 1, near -1 class 0, the rest noise.

A PyTorch translation of the posted Keras experiment: one recurrent unit, a dense layer
of 2 with softmax, Adam at 1e-3, batches of 16, 5 epochs, and Keras's
`validation_split=0.2`, which takes the last fifth of the data as it is given, before
any shuffling. The data are built positives first, so the validation set is all class 0
and the training set 62.5% class 1. `--fixed` shuffles the data before the split.
`--keras-log FILE` writes what Keras's CSVLogger writes (epoch, accuracy, loss,
val_accuracy, val_loss, one row an epoch).
"""

import csv

import numpy as np
import torch
from authorlog import Logs, flags, grad_norm
from torch import nn

parser = flags(__doc__.splitlines()[0], steps=0)
parser.add_argument("--cell", choices=("lstm", "rnn"), default="lstm")
parser.add_argument("--length", type=int, default=20)
parser.add_argument("--n", type=int, default=2000)
parser.add_argument("--units", type=int, default=1)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--keras-log")
args = parser.parse_args()
np.random.seed(args.seed)
torch.manual_seed(args.seed)

N, seq_len = args.n, args.length
xs = np.zeros((N, seq_len))
ys = np.zeros(N)
xs[: N // 2, 0] = 1
ys[: N // 2] = 1
xs[N // 2 :, 0] = -1
ys[N // 2 :] = 0
xs = xs + np.random.normal(loc=0, scale=0.1, size=(N, seq_len))
if args.fixed:
    order = np.random.permutation(N)
    xs, ys = xs[order], ys[order]
split = int(N * (1 - 0.2))  # Keras's validation_split: the last 20%, unshuffled
train_x = torch.tensor(xs[:split], dtype=torch.float32).unsqueeze(2)
train_y = torch.tensor(ys[:split], dtype=torch.long)
val_x = torch.tensor(xs[split:], dtype=torch.float32).unsqueeze(2)
val_y = torch.tensor(ys[split:], dtype=torch.long)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        cell = nn.LSTM if args.cell == "lstm" else nn.RNN
        self.rnn = cell(1, args.units, batch_first=True)
        self.out = nn.Linear(args.units, 2)

    def forward(self, x):
        _, state = self.rnn(x)
        h = state[0] if isinstance(state, tuple) else state
        return self.out(h[-1])


model = Model()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
criterion = nn.CrossEntropyLoss()
log = Logs(args.log)
history = open(args.keras_log, "w", newline="") if args.keras_log else None  # noqa: SIM115
writer = csv.writer(history) if history else None
if writer:
    writer.writerow(["epoch", "accuracy", "loss", "val_accuracy", "val_loss"])
if args.watch:
    import charlm

    w = charlm.watch(model, optimizer)
    w.split(train_y, val_y)

step = 0
batches = (split + 15) // 16
for epoch in range(args.epochs):
    order = torch.randperm(split)  # Keras's shuffle=True: the training part only
    seen, right, total = 0, 0, 0.0
    for b in range(batches):
        idx = order[b * 16 : (b + 1) * 16]
        logits = model(train_x[idx])
        loss = criterion(logits, train_y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        seen += len(idx)
        right += (logits.argmax(1) == train_y[idx]).sum().item()
        total += loss.item() * len(idx)
        metrics = {}
        if b == batches - 1:
            with torch.no_grad():
                val_logits = model(val_x)
                metrics = {
                    "val_loss": criterion(val_logits, val_y).item(),
                    "val_accuracy": (val_logits.argmax(1) == val_y).float().mean().item(),
                }
        log.write(step, loss.item(), grad_norm=grad_norm(model.parameters()), lr=args.lr,
                  val_loss=metrics.get("val_loss"))  # fmt: skip
        if args.watch:
            w.step(loss, **metrics)
    print(f"Epoch {epoch + 1}/{args.epochs} - accuracy: {right / seen:.4f} - loss: "
          f"{total / seen:.4f} - val_accuracy: {metrics['val_accuracy']:.4f} - val_loss: "
          f"{metrics['val_loss']:.4f}")  # fmt: skip
    if writer:
        writer.writerow([epoch, right / seen, total / seen, metrics["val_accuracy"],
                         metrics["val_loss"]])  # fmt: skip

log.close()
if history:
    history.close()
if args.watch:
    print(w.report())
