"""Post 003: a hand-written LSTM predicting the next letter of the alphabet (or of "ab"),
its softmax taken straight of the LSTM's output.

As its author built it (in C++ there, plain tensors here): one LSTM layer written gate by
gate, with as many units as letters, Xavier-uniform weights (4x for the sigmoid gates),
the whole text (26 steps) read before each update, the cross-entropy of the softmax of
`h` averaged over the steps, SGD with momentum 0.2. `h = o * tanh(c)` lies in [-1, 1],
so no letter can get more than e / (e + (V - 1) / e) of the probability: 23% of 26, 88%
of 2. `--fixed` puts a linear layer between the LSTM and the softmax (the poster's fix).
`--text ab` learns "ab" instead. Prints the step and the cost every step.
"""

import torch
from authorlog import Logs, flags, grad_norm

parser = flags(__doc__.splitlines()[0], steps=400)
parser.add_argument("--text", default="abcdefghijklmnopqrstuvwxyz")
parser.add_argument("--lr", type=float, default=0.3)
args = parser.parse_args()
torch.manual_seed(args.seed)

text = args.text
chars = sorted(set(text))
V = len(chars)
N = V  # units: the softmax is taken of the LSTM's own output
idx = {c: i for i, c in enumerate(chars)}


def xavier(rows, cols, gain=1.0):
    bound = gain * (6.0 / (rows + cols)) ** 0.5
    return ((torch.rand(rows, cols) * 2 - 1) * bound).requires_grad_()


W = {g: xavier(V, N, 4.0 if g != "data" else 1.0) for g in ("input", "forget", "output", "data")}
U = {g: xavier(N, N, 4.0 if g != "data" else 1.0) for g in ("input", "forget", "output", "data")}
bias = {g: torch.zeros(N, requires_grad=True) for g in ("input", "forget", "output", "data")}
params = [*W.values(), *U.values(), *bias.values()]
if args.fixed:
    W_out = xavier(N, V)
    b_out = torch.zeros(V, requires_grad=True)
    params += [W_out, b_out]

optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.2)
log = Logs(args.log)
if args.watch:
    import charlm

    w = charlm.watch([], optimizer)  # a model of plain tensors: the optimizer holds them

sequence = [idx[c] for c in text + text[0]]
h = torch.zeros(N)
c = torch.zeros(N)
for step in range(1, args.steps + 1):
    optimizer.zero_grad()
    h, c = h.detach(), c.detach()  # the cell and result carry over to the next pass
    cost = 0.0
    for t in range(len(text)):
        x = torch.zeros(V)
        x[sequence[t]] = 1.0
        i = torch.sigmoid(x @ W["input"] + h @ U["input"] + bias["input"])
        f = torch.sigmoid(x @ W["forget"] + h @ U["forget"] + bias["forget"])
        o = torch.sigmoid(x @ W["output"] + h @ U["output"] + bias["output"])
        d = torch.tanh(x @ W["data"] + h @ U["data"] + bias["data"])
        c = f * c + i * d
        h = o * torch.tanh(c)
        predicted = torch.softmax(h @ W_out + b_out if args.fixed else h, dim=0)
        cost = cost - torch.log(predicted[sequence[t + 1]])
    cost = cost / len(text)
    cost.backward()
    optimizer.step()
    print(step, cost.item())
    log.write(step, cost.item(), grad_norm=grad_norm(params), lr=args.lr)
    if args.watch:
        w.step(cost)

log.close()
if args.watch:
    print(w.report())
