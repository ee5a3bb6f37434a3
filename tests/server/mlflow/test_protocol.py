"""MLflow's wire: proto3-JSON encoding, error codes and statuses, typed request fields,
artifact locations (pure functions, no server)."""

from __future__ import annotations

import math

import pytest

from ratchet.errors import AlreadyExists, Conflict, Forbidden, InvalidInput, NotFound
from ratchet.server.mlflow.locations import (
    logged_model_artifact_uri,
    parse_artifact_uri,
    parse_location,
    run_artifact_uri,
)
from ratchet.server.mlflow.protocol import (
    Fields,
    MlflowError,
    double,
    error_body,
    message,
    parse_double,
)


def test_message_leaves_out_default_values_but_keeps_numbers() -> None:
    assert message(a="", b=None, c=[], d={}, e=False, f=0, g="x", h=[1], i=True) == \
        {"f": 0, "g": "x", "h": [1], "i": True}


@pytest.mark.parametrize(("value", "wire"), [(math.nan, "NaN"), (math.inf, "Infinity"),
                                             (-math.inf, "-Infinity"), (1.5, 1.5)])
def test_doubles_travel_as_proto3_json(value: float, wire: object) -> None:
    assert double(value) == wire
    back = parse_double(wire, "value")
    assert (math.isnan(back) and math.isnan(value)) or back == value


@pytest.mark.parametrize("bad", ["abc", True, None, [1], {"a": 1}])
def test_a_double_that_is_not_one_is_invalid(bad: object) -> None:
    with pytest.raises(MlflowError) as caught:
        parse_double(bad, "value")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "'value'" in str(caught.value)


@pytest.mark.parametrize(("error", "code", "status"), [
    (NotFound("x"), "RESOURCE_DOES_NOT_EXIST", 404),
    (AlreadyExists("x"), "RESOURCE_ALREADY_EXISTS", 400),
    (Conflict("x"), "INVALID_PARAMETER_VALUE", 400),
    (InvalidInput("x"), "INVALID_PARAMETER_VALUE", 400),
    (Forbidden("x"), "PERMISSION_DENIED", 403),
    (MlflowError("ENDPOINT_NOT_FOUND", "x"), "ENDPOINT_NOT_FOUND", 404),
])
def test_ratchet_errors_answer_with_mlflows_codes_and_statuses(
        error: Exception, code: str, status: int) -> None:
    assert error_body(error) == (status, {"error_code": code, "message": "x"})


def test_an_unexpected_error_hides_its_message() -> None:
    status, body = error_body(RuntimeError("/secret/path"))
    assert status == 500 and body["error_code"] == "INTERNAL_ERROR"
    assert "secret" not in body["message"]


def test_fields_read_typed_values_from_json_or_query_strings() -> None:
    fields = Fields({"s": "x", "i": "42", "n": "NaN", "b": "true", "l": ["a", "b"]},
                    multi={"m": ["1", "2"]})
    assert fields.string("s") == "x" and fields.integer("i") == 42
    assert math.isnan(fields.number("n") or 0.0) and fields.boolean("b") is True
    assert fields.strings("l") == ["a", "b"] and fields.strings("m") == ["1", "2"]
    assert fields.strings("absent") == [] and fields.integer("absent", default=7) == 7
    with pytest.raises(MlflowError, match="required parameter 'run_id'"):
        fields.required("run_id")
    with pytest.raises(MlflowError, match="'s'"):
        fields.integer("s")
    with pytest.raises(MlflowError, match="'i'"):
        Fields({"i": 3}).string("i")


def test_artifact_uris_round_trip_to_locations() -> None:
    run = parse_artifact_uri(run_artifact_uri("0", "abc123") + "/model/MLmodel")
    assert (run.experiment_id, run.run_id, run.model_id, run.relpath) == \
        ("0", "abc123", None, "model/MLmodel")
    model = parse_artifact_uri(logged_model_artifact_uri("7", "m-ff00"))
    assert (model.experiment_id, model.run_id, model.model_id, model.relpath) == \
        ("7", None, "m-ff00", "")
    assert parse_artifact_uri("mlflow-artifacts://host:5000/0/r1/artifacts/x").run_id == "r1"


@pytest.mark.parametrize("hostile", [
    "0/r/artifacts/../x", "0/r/artifacts/a/../../x", "0/r/artifacts//etc/passwd",
    "0/r/artifacts/%2e%2e/x", "0/r/artifacts/%252e%252e/x", "0/r/artifacts/a\\..\\b",
    "0/r/artifacts/C:/x", "0/../artifacts/x", "../0/r/artifacts/x", "0/r/other/x", "0",
    "0/r/artifacts/x#y", "0/models/../artifacts/x",
])
def test_hostile_artifact_paths_are_refused(hostile: str) -> None:
    with pytest.raises(MlflowError) as caught:
        parse_location(hostile)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
