"""charlm: character-level LSTM language models you can train, inspect and serve.

The public names, for programs and for the HTTP service:

    fit(corpus, directory, ...)            train (or resume) a model on a corpus file
    Predictor.from_checkpoint(path)        load a model for inference
    Prediction, ScoreResult, Generation,   what a Predictor answers (pydantic models:
    EvalResult, ModelCard                  the CLI's --json and the HTTP answers too)
    SampleConfig                           how to sample text
    ModelConfig, TrainConfig, CharRNN      the model and training settings
    Runtime                                device, threads and precision of a run
    Vocabulary                             characters <-> ids
    load_checkpoint, resolve_checkpoint    read checkpoints
    CharLMError and its subclasses         every error charlm raises on purpose

Subpackages: `charlm.training` (presets, the run's plan, the trainer), `charlm.inference`
(the predictor, its results, sampling, fast stepping), `charlm.checkpoint` (the only
reader and writer of checkpoint files), `charlm.runlog` (the training log's rows, typed),
`charlm.diagnostics` (why a run is not learning), `charlm.tasks` (task corpora with known
answers, and answer accuracy).
"""

__version__ = "0.1.0"

from charlm.checkpoint import Checkpoint
from charlm.checkpoint import load as load_checkpoint
from charlm.checkpoint import resolve as resolve_checkpoint
from charlm.errors import (
    AmbiguousModelError,
    CharLMError,
    CheckpointError,
    CheckpointExistsError,
    CheckpointLockedError,
    CheckpointNotFoundError,
    ConfigError,
    CorpusDownloadError,
    CorpusError,
    IncompatibleCheckpointError,
    InputError,
    LimitExceededError,
    ModelNameError,
    NoModelError,
    OverloadedError,
    TextTooLongError,
    TooManyItemsError,
    TrainingError,
    UnknownCharacterError,
    UnknownModelError,
)
from charlm.inference import (
    CharProb,
    ContinuationStep,
    EvalResult,
    Generation,
    ModelCard,
    Prediction,
    Predictor,
    PredictQuery,
    SampleConfig,
    ScoreResult,
    ScoreStep,
)
from charlm.model import CharRNN, ModelConfig
from charlm.runtime import Runtime
from charlm.training import TrainConfig, TrainResult, fit
from charlm.vocab import Vocabulary
from charlm.watcher import Watcher, watch

__all__ = [
    "AmbiguousModelError",
    "CharLMError",
    "CharProb",
    "CharRNN",
    "Checkpoint",
    "CheckpointError",
    "CheckpointExistsError",
    "CheckpointLockedError",
    "CheckpointNotFoundError",
    "ConfigError",
    "ContinuationStep",
    "CorpusDownloadError",
    "CorpusError",
    "EvalResult",
    "Generation",
    "IncompatibleCheckpointError",
    "InputError",
    "LimitExceededError",
    "ModelCard",
    "ModelConfig",
    "ModelNameError",
    "NoModelError",
    "OverloadedError",
    "PredictQuery",
    "Prediction",
    "Predictor",
    "Runtime",
    "SampleConfig",
    "ScoreResult",
    "ScoreStep",
    "TextTooLongError",
    "TooManyItemsError",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "UnknownCharacterError",
    "UnknownModelError",
    "Vocabulary",
    "Watcher",
    "__version__",
    "fit",
    "load_checkpoint",
    "resolve_checkpoint",
    "watch",
]
