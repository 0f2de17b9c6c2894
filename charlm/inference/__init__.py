"""Inference: what a trained model says about text.

results.py    the answers' shapes (pydantic), shared by the library, CLI, report and HTTP
sampling.py   SampleConfig and the NaN-free sampler
predictor.py  Predictor: distributions, continuations, scores, samples, evaluation
decoding.py   Decoding: many sampled continuations of one model, stepped together
stepper.py    fast one-character steps (fused gates, prepacked weights) for generation
"""

from charlm.inference.decoding import Decoding, Sequence
from charlm.inference.predictor import Predictor, PredictQuery
from charlm.inference.results import (
    CharProb,
    ContinuationStep,
    EvalResult,
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
    "CharProb",
    "ContinuationStep",
    "Decoding",
    "EvalResult",
    "Generation",
    "ModelCard",
    "PredictQuery",
    "Prediction",
    "Predictor",
    "SampleConfig",
    "ScoreResult",
    "ScoreStep",
    "Sequence",
    "Stepper",
    "TrainingSummary",
    "choose",
]
