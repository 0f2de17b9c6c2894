"""charlm: character-level LSTM language models you can train, inspect and serve.

The public names, for programs and for the HTTP service:

    fit(corpus, directory, ...)            train (or resume) a model on a corpus file
    Predictor.from_checkpoint(path)        load a model for inference
    SampleConfig                           how to sample text
    ModelConfig, TrainConfig, CharLSTM     the model and training settings
    Vocabulary                             characters <-> ids
    load_checkpoint, resolve_checkpoint    read checkpoints
    CharLMError and its subclasses         every error charlm raises on purpose
"""

from charlm.checkpoint import Checkpoint
from charlm.checkpoint import load as load_checkpoint
from charlm.checkpoint import resolve as resolve_checkpoint
from charlm.errors import (
    AmbiguousModelError,
    CharLMError,
    CheckpointError,
    CheckpointExistsError,
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
    TrainingError,
    UnknownCharacterError,
    UnknownModelError,
)
from charlm.fit import fit
from charlm.inference import (
    CharProb,
    Continuation,
    ContinuationStep,
    EvalResult,
    Prediction,
    Predictor,
    PredictQuery,
    SampleConfig,
    ScoreResult,
    ScoreStep,
)
from charlm.model import CharLSTM, ModelConfig
from charlm.train import TrainConfig, TrainResult
from charlm.vocab import Vocabulary

__all__ = [
    "AmbiguousModelError",
    "CharLMError",
    "CharLSTM",
    "CharProb",
    "Checkpoint",
    "CheckpointError",
    "CheckpointExistsError",
    "CheckpointNotFoundError",
    "ConfigError",
    "Continuation",
    "ContinuationStep",
    "CorpusDownloadError",
    "CorpusError",
    "EvalResult",
    "IncompatibleCheckpointError",
    "InputError",
    "LimitExceededError",
    "ModelConfig",
    "ModelNameError",
    "NoModelError",
    "OverloadedError",
    "PredictQuery",
    "Prediction",
    "Predictor",
    "SampleConfig",
    "ScoreResult",
    "ScoreStep",
    "TextTooLongError",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "UnknownCharacterError",
    "UnknownModelError",
    "Vocabulary",
    "fit",
    "load_checkpoint",
    "resolve_checkpoint",
]
