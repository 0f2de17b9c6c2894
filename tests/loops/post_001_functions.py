"""Post 001: an LSTM telling a line, a parabola and a square root apart from points (x, y).

A PyTorch translation of the posted Lua loop: each sample is one function (k and b drawn
anew for every sample) and 8 of its points in order; an LSTM of 100 units reads them, a
linear layer and a log-softmax classify every step, NLL loss, SGD at 0.001. As posted,
the loop never calls backward (Lua's `updateParameters` with no `backward`): the
optimizer steps with no gradient. `--fixed` adds the backward pass and draws k and b once,
at the start (the poster's fix). Prints "Epoch E Iteration I Error = X" every step, and a
test accuracy on 4 points at the end of each epoch of 1,000 iterations.
"""

import math
import random

import torch
from authorlog import Logs, flags, grad_norm
from torch import nn

args = flags(__doc__.splitlines()[0], steps=2000).parse_args()
random.seed(args.seed)
torch.manual_seed(args.seed)

batch_size = 8  # points per sample: the "batch" of the post is a time series
test_size = 4
hidden_size = 100
output_size = 3
learning_rate = 0.001
K, B = random.random(), random.random() * 5


def sample(points=batch_size):
    cls = random.randint(1, 3)
    k, b = (K, B) if args.fixed else (random.random(), random.random() * 5)
    inputs = []
    for _ in range(points):
        if cls == 1:
            x = random.random() * 10 + 5
            y = k * x + b
        elif cls == 2:
            x = random.random() * 10 + 5
            y = k * x * x + b
        else:
            x = random.random() * 5 + 5
            y = k * math.sqrt(x) + b
        inputs.append([x, y])
    return torch.tensor(inputs).unsqueeze(0), torch.full((points,), cls - 1)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        h, _ = self.lstm(x)
        return torch.log_softmax(self.out(h[0]), dim=-1)


model = Model()
criterion = nn.NLLLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
log = Logs(args.log)
if args.watch:
    import charlm

    w = charlm.watch(model, optimizer)

for iteration in range(1, args.steps + 1):
    epoch = (iteration - 1) // 1000 + 1
    inputs, targets = sample()
    outputs = model(inputs)
    err = criterion(outputs, targets)
    print(f"Epoch {epoch} Iteration {iteration} Error = {err.item():f}")
    if args.fixed:
        optimizer.zero_grad()
        err.backward()
    optimizer.step()
    log.write(iteration, err.item(), grad_norm=grad_norm(model.parameters()), lr=learning_rate)
    if args.watch:
        w.step(err)
    if iteration % 1000 == 0:
        with torch.no_grad():
            right = 0.0
            for _ in range(100):
                inputs, targets = sample(test_size)
                right += (model(inputs).argmax(-1) == targets).float().mean().item()
        print(f"Epoch {epoch} testing results: pos={right / 100:f}")

log.close()
if args.watch:
    print(w.report())
