"""Answer accuracy: does a model continue each prompt with its answer, and how sure is it?

For every `AnswerItem`, `answer_accuracy` asks the `Predictor` for the greedy
continuation of the prompt, as long as the answer: the item is correct when it is the
answer exactly. It also reads the probability the model gives the whole answer,
teacher-forced: the product over the answer's characters of P(char | prompt + the answer
characters before it). The continuations come from `Predictor.predict_batch`, in
batches; so do the probabilities, one query per prefix of prompt + answer (answers over 8
characters are read in one pass by `Predictor.score` instead, so that the cost stays
linear in their length). Both are the numbers `predict` gives, up to float32 rounding.
The result is broken down by the items' fields (`points`, `gap`, ...).

Items are checked before the model runs: an empty prompt (the first answer character
would have no context), an empty answer, or a character outside the model's vocabulary is
an error naming the item (its line, when it came from a file).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import Field

from charlm.errors import InputError, UnknownCharacterError
from charlm.inference import Predictor, PredictQuery
from charlm.inference.results import Result
from charlm.slices import Sliced, collect, finish
from charlm.tasks.answers import AnswerItem

__all__ = [
    "MAX_MISTAKES",
    "AccuracyGroup",
    "AccuracyMistake",
    "AccuracyResult",
    "accuracy_pieces",
    "answer_accuracy",
]

MAX_MISTAKES = 20
_BATCH = 64
_PREFIX_QUERIES = 8  # longer answers are scored in one pass


class AccuracyGroup(Result):
    """The items that carry one value of one field."""

    field: str = Field(description="The field, e.g. points.")
    value: str = Field(description="Its value, e.g. 3.")
    items: int
    correct: int
    accuracy: float = Field(description="Share of these items answered exactly.")
    mean_answer_prob: float = Field(description="Mean probability given to their answers.")


class AccuracyMistake(Result):
    """An item whose greedy continuation was not its answer."""

    item: int = Field(description="Its place among the items, from 1.")
    prompt: str
    answer: str
    predicted: str = Field(description="The greedy continuation, as long as the answer.")
    answer_prob: float = Field(description="Probability the model gave the answer.")


class AccuracyResult(Result):
    """How often a model continues prompts with their answers, overall and by field."""

    model: str
    items: int
    correct: int = Field(description="Items whose greedy continuation is the answer exactly.")
    accuracy: float = Field(description="correct / items.")
    mean_answer_prob: float = Field(
        description="Mean over items of the probability of the whole answer, teacher-forced."
    )
    groups: list[AccuracyGroup] = Field(
        description="By field, then value (numerically when every value is a number)."
    )
    mistakes: list[AccuracyMistake] = Field(
        description=f"The first {MAX_MISTAKES} items answered wrongly, in order."
    )


def answer_accuracy(
    predictor: Predictor, items: Sequence[AnswerItem], *, by: Sequence[str] | None = None
) -> AccuracyResult:
    """The accuracy of `predictor` on `items`, broken down by the fields in `by` (None:
    every field the items carry; each named field must be carried by some item)."""
    job = accuracy_pieces(predictor, items, by=by)
    with torch.inference_mode():
        return finish(job)


def accuracy_pieces(
    predictor: Predictor, items: Sequence[AnswerItem], *, by: Sequence[str] | None = None
) -> Sliced[AccuracyResult]:
    """`answer_accuracy` in pieces (`charlm.slices`), the items checked now."""
    names = _check(predictor, items, by)
    return _accuracy(predictor, items, names)


def _accuracy(
    predictor: Predictor, items: Sequence[AnswerItem], names: list[str]
) -> Sliced[AccuracyResult]:
    predicted, probs = yield from _answers(predictor, items)
    right = [p == item.answer for p, item in zip(predicted, items, strict=True)]
    groups = []
    for name in names:
        for value in _in_order({i.fields[name] for i in items if name in i.fields}):
            chosen = [n for n, i in enumerate(items) if i.fields.get(name) == value]
            groups.append(
                _group(name, value, [right[n] for n in chosen], [probs[n] for n in chosen])
            )
    mistakes = [
        AccuracyMistake(
            item=n + 1, prompt=item.prompt, answer=item.answer, predicted=p, answer_prob=prob
        )
        for n, (item, p, prob, ok) in enumerate(zip(items, predicted, probs, right, strict=True))
        if not ok
    ][:MAX_MISTAKES]
    return AccuracyResult(
        model=predictor.name,
        items=len(items),
        correct=sum(right),
        accuracy=sum(right) / len(items),
        mean_answer_prob=math.fsum(probs) / len(items),
        groups=groups,
        mistakes=mistakes,
    )


def _check(
    predictor: Predictor, items: Sequence[AnswerItem], by: Sequence[str] | None
) -> list[str]:
    """Check every item; the fields to break the result down by, sorted."""
    if not items:
        raise InputError("no items to answer; give at least one")
    for n, item in enumerate(items, 1):
        if not isinstance(item, AnswerItem):
            raise InputError(f"item {n} is a {type(item).__name__}, expected an AnswerItem")
        where = f"line {item.line}" if item.line is not None else f"item {n}"
        if not item.prompt:
            raise InputError(
                f"{where}: the prompt is empty; the answer's first character needs at least "
                "one character before it"
            )
        if not item.answer:
            raise InputError(f"{where}: the answer is empty")
        for part, text in (("prompt", item.prompt), ("answer", item.answer)):
            unknown = predictor.vocab.unknown(text)
            if unknown:
                raise UnknownCharacterError(unknown, what=f"{where}: the {part}")
    carried = {name for item in items for name in item.fields}
    if by is None:
        return sorted(carried)
    if isinstance(by, str):
        raise InputError(f"by must be a list of field names, not the string {by!r}")
    for name in by:
        if not isinstance(name, str) or name not in carried:
            have = ", ".join(sorted(carried)) or "none"
            raise InputError(f"no item has the field {name!r} to break down by; fields: {have}")
    return sorted(set(by))


def _answers(
    predictor: Predictor, items: Sequence[AnswerItem]
) -> Sliced[tuple[list[str], list[float]]]:
    """Each item's greedy continuation and the teacher-forced probability of its answer."""
    predicted = [""] * len(items)
    probs = [1.0] * len(items)
    jobs = []  # (item, how many answer characters follow the prompt in the query)
    for n, item in enumerate(items):
        short = len(item.answer) <= _PREFIX_QUERIES
        jobs += [(n, j) for j in range(len(item.answer) if short else 1)]
    for start in range(0, len(jobs), _BATCH):
        batch = jobs[start : start + _BATCH]
        queries = [_query(predictor, items[n], j) for n, j in batch]
        answers = yield from predictor.predict_pieces(queries)
        for (n, j), answer in zip(batch, answers, strict=True):
            if j == 0:
                predicted[n] = answer.continuation
            wanted = items[n].answer[j]
            probs[n] *= next((c.prob for c in answer.next if c.char == wanted), 0.0)
    for n, item in enumerate(items):
        if len(item.answer) > _PREFIX_QUERIES:  # one pass, rather than one per prefix
            text = item.prompt + item.answer
            pieces = predictor.score_pieces(text, alternatives=0, start=len(item.prompt))
            steps, _ = yield from collect(pieces)
            probs[n] = math.prod(s.prob for s in steps)
    return predicted, probs


def _query(predictor: Predictor, item: AnswerItem, j: int) -> PredictQuery:
    """The prompt and the answer's first j characters: the full next-character
    distribution, and for j = 0 the greedy continuation as long as the answer."""
    length = len(item.answer) if j == 0 else 0
    return predictor.query(item.prompt + item.answer[:j], top_k=0, continuation_length=length)


def _group(name: str, value: str, right: list[bool], probs: list[float]) -> AccuracyGroup:
    return AccuracyGroup(
        field=name,
        value=value,
        items=len(right),
        correct=sum(right),
        accuracy=sum(right) / len(right),
        mean_answer_prob=math.fsum(probs) / len(probs),
    )


def _in_order(values: set[str]) -> list[str]:
    """`values` sorted numerically when every one is a finite number, else as text."""
    numbers = [(_number(v), v) for v in values]
    if all(x is not None for x, _ in numbers):
        return [v for _, v in sorted((x, v) for x, v in numbers if x is not None)]
    return sorted(values)


def _number(value: str) -> float | None:
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None
