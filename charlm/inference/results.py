"""The shape of every answer charlm gives about text, declared once.

These pydantic models are what `Predictor` returns, what `charlm ... --json` prints
(`model_dump_json`), what the HTML report embeds, and what the HTTP service answers
(they are its response models, so the OpenAPI schema is generated from them too). A
field added here appears in all four at once.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from charlm.diagnostics import Finding, ReferenceLevels

__all__ = [
    "ActivationResult",
    "CellCorrelation",
    "CellSeries",
    "CharProb",
    "ContinuationStep",
    "EvalResult",
    "FeatureCells",
    "Generation",
    "ModelCard",
    "Prediction",
    "Result",
    "ScoreResult",
    "ScoreStep",
    "TrainingSummary",
    "UnknownChar",
]


class Result(BaseModel):
    """The base of every result: frozen, and NaN or infinity written as JSON null."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="null")


class CharProb(Result):
    char: str
    prob: float = Field(description="Probability the model gives this character.")


class UnknownChar(Result):
    """A character outside the model's vocabulary, skipped or replaced in a reading
    (`charlm.inference.unknown`)."""

    char: str
    position: int = Field(description="Where it is in the text as given (code points).")


_UNKNOWN: Any = Field(
    default_factory=list,
    description="Characters outside the model's vocabulary that were skipped or replaced "
    "(on_unknown), in order; empty when the text had none.",
)


class ContinuationStep(Result):
    """One greedily chosen character, its probability and the runners-up."""

    char: str
    prob: float
    top: list[CharProb] = Field(description="The likeliest characters at this step.")


class Prediction(Result):
    """The next-character distribution after a text, and its greedy continuation."""

    model: str
    next: list[CharProb] = Field(description="Next-character distribution, likeliest first.")
    continuation: str = Field(description="The greedy continuation.")
    steps: list[ContinuationStep] = Field(description="Each continued character's confidence.")
    unknown: list[UnknownChar] = _UNKNOWN


class ScoreStep(Result):
    """How the model saw the character at `position`, given everything before it."""

    position: int
    char: str
    prob: float = Field(description="Probability the model gave this character.")
    rank: int = Field(description="1 when it was the model's top choice.")
    top_char: str
    top_prob: float
    entropy_bits: float = Field(description="Entropy of the prediction, in bits.")
    top: list[CharProb] = Field(description="The runners-up.")


class ScoreResult(Result):
    """Per-step confidence over a text."""

    model: str
    text: str = Field(description="The text scored; its first character is context only.")
    steps: list[ScoreStep]
    bits_per_char: float
    min_prob: float
    min_position: int
    next: list[CharProb] = Field(
        default_factory=list,
        description="The likeliest characters to follow the text, when asked for.",
    )
    unknown: list[UnknownChar] = _UNKNOWN


class CellSeries(Result):
    """One unit's activation after each character of the text."""

    cell: int = Field(description="The unit's index in its layer.")
    values: list[float] = Field(description="One value per character, after reading it.")


class CellCorrelation(Result):
    cell: int
    r: float = Field(description="Pearson correlation of its activation with the feature.")


class FeatureCells(Result):
    """The units whose activation follows a feature of the text most closely."""

    feature: str = Field(examples=["in_double_quotes"])
    description: str
    cells: list[CellCorrelation] = Field(
        description="Strongest |r| first; empty when the feature is constant over the text."
    )


class ActivationResult(Result):
    """Inside a recurrent layer: its units' activations over a text (see
    `charlm.inference.activations`)."""

    model: str
    text: str
    layer: int = Field(description="The layer, counted from 0 at the input.")
    kind: str = Field(description="cell (tanh of the cell state), hidden, or a gate.")
    size: int = Field(description="Units in the layer.")
    low: float = Field(description="The lowest value this kind can take.")
    high: float = Field(description="The highest.")
    series: list[CellSeries] = Field(description="The units asked for.")
    features: list[FeatureCells]


class Generation(Result):
    """Sampled text."""

    model: str
    prompt: str
    text: str = Field(description="The generated characters, without the prompt.")


class EvalResult(Result):
    """The model's mean loss on a text read as one stream."""

    model: str
    loss: float = Field(description="Nats per predicted character.")
    bits_per_char: float
    chars: int = Field(description="Characters predicted (the first one is context only).")


class FindingResult(Result):
    """What a training detector saw (see `charlm.diagnostics.detectors`)."""

    name: str = Field(description="The detector, e.g. overfitting.")
    step: int = Field(description="The step at which it fired.")
    seen: str = Field(description="What was seen, with figures.")
    causes: str = Field(description="The likely causes.")
    advice: str = Field(description="What to try, with the flag to change.")


class RunDiagnosis(Result):
    """The diagnosis the trainer made while the model trained."""

    healthy: bool = Field(description="True when no detector fired.")
    unigram_level: float | None = Field(
        None, description="Entropy of the training text's character frequencies (nats)."
    )
    repeat_level: float | None = Field(
        None, description="Loss of predicting the last character again (nats)."
    )
    findings: list[FindingResult]

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> RunDiagnosis | None:
        """From a checkpoint's summary; None for one written before diagnostics. Values
        of the wrong type are left out, texts cut to 1,000 characters, findings to 20."""
        raw = summary.get("diagnoses")
        if not isinstance(raw, list):
            return None
        found = [f for f in (Finding.from_dict(d) for d in raw[:20]) if f is not None]
        ref = ReferenceLevels.from_dict(summary.get("references"))
        return cls(
            healthy=not found,
            unigram_level=ref.unigram if ref else None,
            repeat_level=ref.repeat if ref else None,
            findings=[
                FindingResult(
                    name=f.name[:100],
                    step=f.step,
                    seen=f.seen[:1000],
                    causes=f.causes[:1000],
                    advice=f.advice[:1000],
                )
                for f in found
            ],
        )


class TrainingSummary(Result):
    """How the model was trained, from its checkpoint (absent values are null)."""

    step: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    best_val_loss: float | None = None
    best_step: int | None = None
    val_held_out: bool | None = None
    elapsed_s: float | None = None
    stop_reason: str | None = None
    corpus: str | None = Field(None, description="The corpus file's name (no directories).")
    preset: str | None = None
    diagnosis: RunDiagnosis | None = Field(
        None, description="What the training detectors found (null: trained before them)."
    )

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> TrainingSummary:
        """The known fields of a checkpoint's summary, each kept only if well typed."""
        values: dict[str, Any] = {}
        for name, kinds in _SUMMARY_TYPES.items():
            value = summary.get(name)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                continue
            if name == "corpus":
                value = PurePath(str(value).replace("\\", "/")).name
            if isinstance(value, str):
                value = value[:200]
            values[name] = value
        return cls(**values, diagnosis=RunDiagnosis.from_summary(summary))


_SUMMARY_TYPES: dict[str, tuple[type, ...]] = {
    "step": (int,),
    "train_loss": (int, float),
    "val_loss": (int, float),
    "best_val_loss": (int, float),
    "best_step": (int,),
    "val_held_out": (bool,),
    "elapsed_s": (int, float),
    "stop_reason": (str,),
    "corpus": (str,),
    "preset": (str,),
}


class ModelCard(Result):
    """What a loaded model is: kept in memory instead of its checkpoint."""

    name: str
    vocab_size: int
    vocab: list[str]
    parameters: int
    architecture: dict[str, Any] = Field(description="The model config.")
    training: TrainingSummary
