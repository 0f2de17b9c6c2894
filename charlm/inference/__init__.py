"""Inference: what a trained model says about text.

results.py    the answers' shapes (pydantic), shared by the library, CLI, report and HTTP
sampling.py   SampleConfig and the NaN-free sampler
predictor.py  Predictor: distributions, continuations, scores, samples, evaluation
decoding.py   Decoding: many sampled continuations of one model, stepped together
stepper.py    fast one-character steps (fused gates, prepacked weights) for generation
scoring.py    per-step confidence over a text (Predictor.score)
prefixes.py   the states part-way through recent texts, where re-scoring an edit resumes
activations.py  inside a layer: its units' activations over a text (Predictor.activations)
features.py   simple features of a text, to find the units that follow them
logprobs.py   per-character logprobs in the completions APIs' shape, and stop texts
unknown.py    characters outside the vocabulary: refused, skipped or replaced (on_unknown)
greedy.py     greedy continuations of many texts, stepped together (predict_batch)
defaults.py   PredictConfig, ScoreConfig: the defaults the CLI and the service share
"""

from charlm.inference.decoding import Decoding, Sequence
from charlm.inference.defaults import PredictConfig, ScoreConfig
from charlm.inference.predictor import Predictor, PredictQuery
from charlm.inference.results import (
    ActivationResult,
    CellCorrelation,
    CellSeries,
    CharProb,
    ContinuationStep,
    EvalResult,
    FeatureCells,
    Generation,
    ModelCard,
    Prediction,
    ScoreResult,
    ScoreStep,
    TrainingSummary,
)
from charlm.inference.sampling import SampleConfig, choose
from charlm.inference.stepper import Stepper

__all__ = [
    "ActivationResult",
    "CellCorrelation",
    "CellSeries",
    "CharProb",
    "ContinuationStep",
    "Decoding",
    "EvalResult",
    "FeatureCells",
    "Generation",
    "ModelCard",
    "PredictConfig",
    "PredictQuery",
    "Prediction",
    "Predictor",
    "SampleConfig",
    "ScoreConfig",
    "ScoreResult",
    "ScoreStep",
    "Sequence",
    "Stepper",
    "TrainingSummary",
    "choose",
]
