"""Training diagnostics: signals recorded while a model trains, detectors that read them,
and the report of a run (`charlm diagnose`).

- `references`: the loss levels a model must beat on its training text.
- `signals`: gradient norms per layer, update-to-weight ratios, gate statistics.
- `findings`: what a detector reports, and the facts of a run it reads (what its loss is).
- `detectors`: the rules, each with its thresholds and what it needs; those of the
  gradients are in `gradients`, those of the evaluations in `evaluations`.
- `curve`: the measures of a loss curve, and the rules that read a loop's curve alone.
- `record`: a run's rows (`charlm.runlog`'s typed rows) as the detectors read them.
- `history`: a run's record with the detectors run over it: each once, then each
  finding checked against the rest of the run.
- `logs`: the logs of other loops, in the formats people keep (`fields`: the names of
  their columns; `printed`: printed lines; `log_rows`: from a line's values to typed rows).
- `diagnosis`: a run's diagnosis from its checkpoint or from the log of another loop.
"""

from charlm.diagnostics.detectors import DETECTORS
from charlm.diagnostics.findings import Finding, RunFacts
from charlm.diagnostics.history import History
from charlm.diagnostics.references import ReferenceLevels

__all__ = ["DETECTORS", "Finding", "History", "ReferenceLevels", "RunFacts"]
