"""Why isn't my net learning? A watcher inside a training loop of one's own.

    w = charlm.watch(model, optimizer)      # before the loop
    ...                                     # the loop's own forward, backward and step
    w.step(loss, **metrics)                 # once per step: val_loss=, val_accuracy=, ...
    w.split(train_targets, val_targets)     # optional: the labels of both sets
    w.findings                              # what fired: each with .detector and .message
    w.passed                                # what fired and the run got past since
    print(w.report())                       # the same words `charlm diagnose` prints

It measures causes directly, through hooks on the model's parameters, its optimizers,
its recurrent layers and every softmax the loop computes: gradients that carry over
from one step to the next (no `zero_grad`), an optimizer stepping with no gradient (no
`backward`), parameters no gradient reaches or no optimizer holds, a softmax fed a
bounded tensor (an LSTM's output), gradient norms per layer from the first step, an LSTM's
gates and forget-gate bias, and, given the labels, a validation set unlike the training
set. `charlm watch SCRIPT` runs a training script unchanged under a watcher.

- `probes`: what is measured, through which hooks (`softmaxes`: of every softmax).
- `record`: what the watcher has seen of a run, as the rules read it.
- `rules`: what each measurement means, with its thresholds, in words (`labels`: the
  rules that read class labels).
- `watcher`: `watch` and `Watcher`: the hooks, the record of the run, the report, the log.
- `script`: `charlm watch SCRIPT`.
- `keras`: `WatchCallback`, a watcher fed by Keras's `model.fit` on its torch backend
  (imported only when asked for: nothing else in charlm imports Keras).
"""

from charlm.watcher.watcher import Watcher, watch

__all__ = ["Watcher", "watch"]
