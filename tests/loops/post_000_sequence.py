"""Post 000: an `nn.LSTM` and a `Linear` layer learning y = x + 0.1 on 21 points with MSE.

As its author wrote it: the loss summed over the 21 positions, Adam at 1e-3, and
`optimizer.zero_grad()` missing, so every step adds its gradient to all the ones before.
`--fixed` adds that line. The loss is printed every step, as the post printed it.
"""

import numpy as np
import torch
from authorlog import Logs, flags, grad_norm

args = flags(__doc__.splitlines()[0], steps=300).parse_args()
torch.manual_seed(args.seed)

lstm = torch.nn.LSTM(input_size=1, hidden_size=100, num_layers=1, batch_first=True).to(torch.double)
linear = torch.nn.Linear(100, 1).to(torch.double)
criterion = torch.nn.MSELoss()
params = list(lstm.parameters()) + list(linear.parameters())
optimizer = torch.optim.Adam(params, lr=1e-3)
log = Logs(args.log)
if args.watch:
    import charlm

    w = charlm.watch([lstm, linear], optimizer)

L = 21

x = torch.tensor(np.arange(L) / 20, dtype=torch.double).unsqueeze(0).unsqueeze(2)
y = torch.tensor(np.arange(2, L + 2) / 20, dtype=torch.double)

for j in range(args.steps):
    if args.fixed:
        optimizer.zero_grad()
    hidden = (
        torch.zeros((1, 1, 100), dtype=torch.double),
        torch.zeros((1, 1, 100), dtype=torch.double),
    )
    output, hidden = lstm(x, hidden)
    loss = 0.0
    for i in range(L):
        o = linear(output[:, i, :].squeeze())
        loss += criterion(o, y.squeeze()[i])
    print(loss)
    loss.backward()
    optimizer.step()
    log.write(j + 1, loss.item(), grad_norm=grad_norm(params), lr=1e-3)
    if args.watch:
        w.step(loss)

log.close()
if args.watch:
    print(w.report())
