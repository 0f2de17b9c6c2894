"""Property-based fuzzing of every route of a running server, generated from its OpenAPI
schema with schemathesis: valid requests (positive) and invalid ones (negative).

Every answer must be no 5xx, have a status the schema documents, the content type it
documents, and a body valid against the schema. Used by tests/test_fuzz.py (a few hundred
cases) and tests/reliability/fuzz_campaign.py (thousands).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.meta import TestPhase

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(url: str, examples: int, seed: int = 0) -> Counter[tuple[str, int]]:
    """Run `examples` generated requests per route and mode against the server at `url`;
    raise on the first answer that fails a check. Returns (route, status) counts."""
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    seen: Counter[tuple[str, int]] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        runs = [
            (GenerationMode.POSITIVE, TestPhase.EXAMPLES),  # the schema's own examples first
            (GenerationMode.POSITIVE, TestPhase.FUZZING),
            (GenerationMode.NEGATIVE, TestPhase.FUZZING),
        ]
        for mode, phase in runs:
            test = _test(url, operation, mode, phase, examples, seed, seen)
            try:
                test()
            except hypothesis.errors.Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise  # (a route without inputs has no invalid requests to make)
    return seen


def _test(
    url: str,
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    phase: TestPhase,
    examples: int,
    seed: int,
    seen: Counter[tuple[str, int]],
) -> Callable[[], None]:
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @hypothesis.seed(seed)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode, phase=phase))
    def call(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, timeout=60)
        case.validate_response(response, checks=CHECKS)
        seen[(operation.label, response.status_code)] += 1

    return call  # type: ignore[no-any-return]
