"""One declaration per result: the library's result objects, the CLI's --json, the HTML
report and the HTTP answers are the same JSON, field for field."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from charlm import (
    EvalResult,
    Generation,
    ModelCard,
    Prediction,
    Predictor,
    SampleConfig,
    ScoreResult,
)
from charlm.cli import main

from .conftest import CORPORA

TEXT = "the rain came"


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def fields_of(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_score_is_one_shape_everywhere(
    served: TestClient, served_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.html"
    cli = cli_json(
        capsys, "score", str(served_dir / "notes"), TEXT, "--json", "--html", str(report)
    )
    page = report.read_text(encoding="utf-8")
    embedded = re.search(r'<script id="score-data" type="application/json">(.*?)</script>', page)
    assert embedded is not None
    in_report = json.loads(embedded.group(1))  # <, > and & are JSON escapes in there
    http = served.post("/score", json={"model": "notes", "text": TEXT}).json()
    library = json.loads(
        Predictor.from_checkpoint(served_dir / "notes").score(TEXT).model_dump_json()
    )
    assert cli == in_report == http == library
    assert set(cli) == fields_of(ScoreResult) and cli["model"] == "notes" and cli["text"] == TEXT
    assert set(cli["steps"][0]) == {
        "position",
        "char",
        "prob",
        "rank",
        "top_char",
        "top_prob",
        "entropy_bits",
        "top",
    }


def test_prediction_is_one_shape_everywhere(
    served: TestClient, served_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("predict", str(served_dir / "notes"), TEXT, "--continue", "12", "--json")
    cli = cli_json(capsys, *args)
    body = {"model": "notes", "text": TEXT, "continuation_length": 12}
    http = served.post("/predict", json=body).json()
    library = Predictor.from_checkpoint(served_dir / "notes").predict(TEXT, 5, 12, 3)
    assert cli == http == json.loads(library.model_dump_json())
    assert (
        set(cli) == fields_of(Prediction) == {"model", "next", "continuation", "steps", "unknown"}
    )
    assert set(cli["steps"][0]) == {"char", "prob", "top"}


def test_generation_is_one_shape_everywhere(
    served: TestClient, served_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("generate", str(served_dir / "notes"), "--prompt", "The ", "--length", "40")
    cli = cli_json(capsys, *args, "--seed", "5", "--json")
    body = {"model": "notes", "prompt": "The ", "length": 40, "seed": 5}
    http = served.post("/generate", json=body).json()
    with served.stream("POST", "/generate", json={**body, "stream": True}) as r:
        done = "".join(r.iter_text()).rsplit("event: done\ndata: ", 1)[1]
    config = SampleConfig(length=40, seed=5)
    library = Predictor.from_checkpoint(served_dir / "notes").generate("The ", config)
    assert cli == http == json.loads(done) == json.loads(library.model_dump_json())
    assert set(cli) == fields_of(Generation)


def test_model_card_and_evaluation(
    served: TestClient, served_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = cli_json(capsys, "info", str(served_dir / "notes"), "--json")
    listed = {m["name"]: m for m in served.get("/models").json()["models"]}["notes"]
    assert listed.pop("loaded_at") > 0
    assert cli == listed and set(cli) == fields_of(ModelCard)
    assert cli["training"]["corpus"] == "notes.txt"  # a file name, never a server path
    result = cli_json(
        capsys, "eval", str(served_dir / "notes"), str(CORPORA / "notes.txt"), "--json"
    )
    assert set(result) == fields_of(EvalResult) and result["model"] == "notes"


def test_openapi_answers_are_the_library_declarations(served: TestClient) -> None:
    spec = served.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for model in (Prediction, ScoreResult, Generation):
        assert set(schemas[model.__name__]["properties"]) == fields_of(model)
    for path, model in (
        ("/predict", Prediction),
        ("/score", ScoreResult),
        ("/generate", Generation),
    ):
        ok = spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]
        assert ok["schema"]["$ref"].endswith("/" + model.__name__)
