"""The defaults a person asking gets are stated once (charlm.inference.defaults and
SampleConfig), and both doors, the command line and the HTTP service, take them from there."""

from dataclasses import fields

import pytest

from charlm.cli.parser import build_parser
from charlm.inference import PredictConfig, SampleConfig, ScoreConfig
from charlm.inference.defaults import default_and_help
from charlm_service.schemas import GenerateRequest, PredictRequest, ReportRequest, ScoreRequest


def test_predict_and_score_defaults_are_the_configs_at_both_doors() -> None:
    parser = build_parser()
    predict = parser.parse_args(["predict", "m", "abc"])
    score = parser.parse_args(["score", "m", "abc"])
    asked = PredictRequest(text="abc")
    for f in fields(PredictConfig):
        assert getattr(predict, f.name) == getattr(asked, f.name) == f.default, f.name
    for request in (ScoreRequest(text="abc"), ReportRequest(text="abc")):
        assert score.alternatives == request.alternatives == ScoreConfig().alternatives
    assert (PredictConfig().top_k, PredictConfig().alternatives, ScoreConfig().alternatives) == (
        5,
        3,
        3,
    )


def test_the_service_describes_each_field_with_the_configs_help() -> None:
    schema = PredictRequest.model_json_schema()["properties"]
    for f in fields(PredictConfig):
        _, about = default_and_help(PredictConfig, f.name)
        assert schema[f.name]["description"].lower().startswith(about.lower())
    generate = GenerateRequest(prompt="a")
    for f in fields(SampleConfig):
        assert getattr(generate, f.name) == f.default, f.name
    assert GenerateRequest.model_json_schema()["properties"]["seed"]["maximum"] == 2**63 - 1


@pytest.mark.parametrize("bad", [{"top_k": -1}, {"alternatives": -2}])
def test_a_config_refuses_a_negative_count(bad: dict[str, int]) -> None:
    from charlm import ConfigError

    with pytest.raises(ConfigError, match=next(iter(bad))):
        PredictConfig(**bad)
