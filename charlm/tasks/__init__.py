"""Task corpora and answer accuracy: text whose answers are known, and how often a
model gets them.

answers.py   the held-out answer file (`AnswerItem`, `read_answers`, `write_answers`)
configs.py   the settings of each kind of task corpus, one dataclass per kind
corpora.py   `make_task` / `write_task`: deterministic training text and held-out items
accuracy.py  `answer_accuracy`: exact greedy answers and answer probabilities, by field
"""

from charlm.tasks.accuracy import (
    AccuracyGroup,
    AccuracyMistake,
    AccuracyResult,
    accuracy_pieces,
    answer_accuracy,
)
from charlm.tasks.answers import AnswerItem, read_answers, write_answers
from charlm.tasks.configs import (
    CountingConfig,
    CycleConfig,
    FunctionsConfig,
    LatchConfig,
    TaskConfig,
)
from charlm.tasks.corpora import (
    FUNCTIONS,
    TASK_KINDS,
    TaskCorpus,
    heldout_path,
    make_task,
    write_task,
)

__all__ = [
    "FUNCTIONS",
    "TASK_KINDS",
    "AccuracyGroup",
    "AccuracyMistake",
    "AccuracyResult",
    "AnswerItem",
    "CountingConfig",
    "CycleConfig",
    "FunctionsConfig",
    "LatchConfig",
    "TaskConfig",
    "TaskCorpus",
    "accuracy_pieces",
    "answer_accuracy",
    "heldout_path",
    "make_task",
    "read_answers",
    "write_answers",
    "write_task",
]
