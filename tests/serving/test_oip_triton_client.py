"""The Open Inference Protocol as the official client speaks it: ``tritonclient.http``
against a real ``ratchet serve`` on 127.0.0.1, in JSON mode and with the binary tensor data
extension, with and without a model version, for a model with a string column and a
numeric one (integer, string and float predictions)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ratchet.config import Settings
from ratchet.registry import RegistryClient
from ratchet.workspace import Workspace
from tests.serving.conftest import churn_frame, register_churn, running_server

httpclient = pytest.importorskip("tritonclient.http")
InferenceServerException = pytest.importorskip("tritonclient.utils").InferenceServerException

N = 5

# One worker runs the module under `make test` (--dist loadgroup): its three servers start
# once, not on both workers (70 s of setup each under load).
pytestmark = pytest.mark.xdist_group("oip-triton")


def _settings(home: Path) -> Settings:
    return Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                    artifacts_uri=str(home / "artifacts"))


def _register_numeric(settings: Settings) -> None:
    """``labels``: numeric inputs, string labels; ``amount``: numeric inputs, a regressor."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    registry = RegistryClient(Workspace(settings))
    X, y = churn_frame()
    X = X[["age", "income"]]
    labelled = LogisticRegression(max_iter=1000).fit(X, np.where(y == 1, "yes", "no"))
    regressor = LinearRegression().fit(X, X.income * 2 + X.age)
    for name, model in (("labels", labelled), ("amount", regressor)):
        with registry.tracking.start_run(experiment=name) as run:
            registry.log_model(run.id, model, name=name, input_example=X)
        registry.set_alias(name, "champion", 1)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """churn (a string column, integer labels) at version 2; labels and amount at 1."""
    tmp = tmp_path_factory.mktemp("oip")
    settings = _settings(tmp / "home")
    registry = register_churn(settings)
    registry.set_alias("churn", "champion", 2)
    _register_numeric(settings)
    with (running_server(settings, tmp, "churn@champion") as churn,
          running_server(settings, tmp, "labels@champion") as labels,
          running_server(settings, tmp, "amount@champion") as amount):
        yield {"churn": churn, "labels": labels, "amount": amount}


VERSIONS = {"churn": "2", "labels": "1", "amount": "1"}
PREDICTION_TYPES = {"churn": "INT64", "labels": "BYTES", "amount": "FP64"}


def _rows(name: str) -> list[dict[str, Any]]:
    X, _ = churn_frame(N, seed=3)
    if name != "churn":
        X = X[["age", "income"]]
    return X.to_dict(orient="records")


def _inputs(name: str, binary: bool) -> list[Any]:
    rows = _rows(name)
    arrays = {"age": np.array([r["age"] for r in rows], dtype=np.int64),
              "income": np.array([r["income"] for r in rows], dtype=np.float64)}
    if name == "churn":
        arrays["plan"] = np.array([r["plan"] for r in rows], dtype=np.object_)
    types = {"age": "INT64", "income": "FP64", "plan": "BYTES"}
    inputs = []
    for column, array in arrays.items():
        tensor = httpclient.InferInput(column, [N], types[column])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def _expected(url: str, name: str) -> dict[str, Any]:
    reply = httpx.post(f"{url}/predict", json={"inputs": _rows(name)}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.mark.parametrize("name", ["churn", "labels", "amount"])
@pytest.mark.parametrize("version", ["", "served"])
@pytest.mark.parametrize("mode", ["json", "binary", "client-default"])
def test_official_client(servers: dict[str, str], name: str, version: str,
                         mode: str) -> None:
    url = servers[name]
    model_version = VERSIONS[name] if version else ""
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(name, model_version)
        metadata = client.get_model_metadata(name, model_version)
        declared = {o["name"]: o["datatype"] for o in metadata["outputs"]}
        assert declared["prediction"] == PREDICTION_TYPES[name]
        assert metadata["versions"] == [VERSIONS[name]]
        classifier = name != "amount"
        assert ("probabilities" in declared) is classifier
        if mode == "client-default":  # JSON inputs, no outputs named: binary outputs
            result = client.infer(name, _inputs(name, False), model_version=model_version)
        else:
            binary = mode == "binary"
            outputs = [httpclient.InferRequestedOutput(o, binary_data=binary)
                       for o in declared]
            result = client.infer(name, _inputs(name, binary), model_version=model_version,
                                  outputs=outputs)
        response = result.get_response()
        assert response["model_version"] == VERSIONS[name]
        for output in response["outputs"]:  # what infer says is what metadata declared
            assert output["datatype"] == declared[output["name"]]
            assert ("binary_data_size" in output.get("parameters", {})) is (mode != "json")
        expected = _expected(url, name)
        prediction = result.as_numpy("prediction")
        assert prediction.shape == (N,)
        if name == "labels":
            got = [p.decode() if isinstance(p, bytes) else p for p in prediction.tolist()]
            assert got == expected["predictions"]
        else:
            np.testing.assert_allclose(prediction, expected["predictions"])
        if classifier:
            proba = result.as_numpy("probabilities")
            assert proba.dtype == np.float64 and proba.shape == (N, 2)
            np.testing.assert_allclose(proba, expected["probabilities"])
    finally:
        client.close()


def test_an_unknown_version_is_404_with_the_versions_served(servers: dict[str, str]) -> None:
    url = servers["churn"]
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    try:
        with pytest.raises(InferenceServerException) as caught:
            client.infer("churn", _inputs("churn", True), model_version="1")
        assert "no version '1'" in str(caught.value) and "versions served: 2" in str(
            caught.value)
        assert not client.is_model_ready("churn", "7")
        with pytest.raises(InferenceServerException, match="versions served: 2"):
            client.get_model_metadata("churn", "7")
    finally:
        client.close()
    for method, path in (("GET", "/v2/models/churn/versions/1"),
                         ("GET", "/v2/models/churn/versions/1/ready"),
                         ("POST", "/v2/models/churn/versions/1/infer"),
                         ("POST", "/v2/models/churn/versions/x/y/infer")):
        reply = httpx.request(method, url + path, json={"inputs": []}, timeout=30)
        assert reply.status_code == 404, (path, reply.text)


def _binary_body(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, int]:
    text = json.dumps(header).encode()
    return b"".join([text, *chunks]), len(text)


def _age(size: int, n: int = 2) -> dict[str, Any]:
    return {"name": "age", "shape": [n], "datatype": "INT64",
            "parameters": {"binary_data_size": size}}


def _plan(size: int, n: int = 2) -> dict[str, Any]:
    return {"name": "plan", "shape": [n], "datatype": "BYTES",
            "parameters": {"binary_data_size": size}}


AGES = np.array([30, 40], dtype="<i8").tobytes()
INCOME = {"name": "income", "shape": [2], "datatype": "FP64", "data": [50.0, 60.0]}


def _bytes(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


@pytest.mark.parametrize("header, chunks, length, fragment", [
    # the header length is past the end of the body
    ({"inputs": [_age(16)]}, [AGES], 10_000, "Inference-Header-Content-Length is 10000"),
    ({"inputs": [_age(16)]}, [AGES], "-1", "expected a byte count"),
    # the JSON header cut short by a wrong length
    ({"inputs": [_age(16)]}, [AGES], 5, "not valid JSON"),
    # sizes that do not match shape x 8 bytes, or the body
    ({"inputs": [_age(8)]}, [AGES[:8]], None, "inputs[0] ('age'): shape needs 2 INT64"),
    ({"inputs": [_age(24)]}, [AGES], None, "inputs[0] ('age'): binary_data_size is 24"),
    ({"inputs": [_age(16)]}, [AGES, b"extra"], None, "5 bytes after the binary data"),
    ({"inputs": [_age(-1)]}, [AGES], None, "expected a non-negative integer"),
    # BYTES: a length prefix that runs past the data, too many elements, not UTF-8
    ({"inputs": [_age(16), INCOME, _plan(9)]}, [AGES, struct.pack("<I", 99) + b"abcde"],
     None, "inputs[2] ('plan'): BYTES element 0 says 99 bytes"),
    ({"inputs": [_age(16), INCOME, _plan(21)]}, [AGES, _bytes(b"pro", b"pro", b"pro")],
     None, "more than the 2 elements"),
    ({"inputs": [_age(16), INCOME, _plan(13)]}, [AGES, _bytes(b"\xff\xfe", b"pro")],
     None, "inputs[2] ('plan'): BYTES element 0 is not UTF-8"),
    ({"inputs": [{**_age(16), "datatype": "BF16"}]}, [AGES], None, "unknown datatype 'BF16'"),
    ({"inputs": [{**_age(16), "data": [1, 2]}]}, [AGES], None, "both 'data' and"),
    # a huge shape with a small size: refused before any allocation
    ({"inputs": [_age(16, n=5_000)]}, [AGES], None, "binary_data_size is 16"),
])
def test_malformed_binary_bodies_are_422_naming_the_input(
        servers: dict[str, str], header: dict[str, Any], chunks: list[bytes],
        length: int | str | None, fragment: str) -> None:
    body, header_length = _binary_body(header, *chunks)
    reply = httpx.post(f"{servers['churn']}/v2/models/churn/infer", content=body, timeout=30,
                       headers={"Inference-Header-Content-Length": str(
                           header_length if length is None else length),
                           "Content-Type": "application/octet-stream"})
    assert reply.status_code == 422, reply.text
    assert fragment in reply.json()["error"], reply.json()["error"]


def test_binary_inputs_mixed_with_json_inputs(servers: dict[str, str]) -> None:
    body, length = _binary_body({"inputs": [_age(16), INCOME, _plan(16)],
                                 "outputs": [{"name": "prediction"}]},
                                AGES, _bytes(b"pro", b"basic"))
    url = servers["churn"]
    reply = httpx.post(f"{url}/v2/models/churn/versions/2/infer", content=body, timeout=30,
                       headers={"Inference-Header-Content-Length": str(length)})
    assert reply.status_code == 200, reply.text
    assert "inference-header-content-length" not in reply.headers  # JSON outputs
    outputs = reply.json()["outputs"]
    assert [o["name"] for o in outputs] == ["prediction"]
    rows = [{"age": 30, "income": 50.0, "plan": "pro"},
            {"age": 40, "income": 60.0, "plan": "basic"}]
    expected = httpx.post(f"{url}/predict", json={"inputs": rows}, timeout=30).json()
    assert outputs[0]["data"] == expected["predictions"]
    unknown = httpx.post(f"{url}/v2/models/churn/infer", content=body.replace(
        b'"prediction"', b'"predictionX"'), timeout=30,
        headers={"Inference-Header-Content-Length": str(length + 1)})
    assert unknown.status_code == 422
    assert "no output named 'predictionX'" in unknown.json()["error"]


def test_a_browser_post_without_content_type_is_still_refused(
        servers: dict[str, str]) -> None:
    """The official client sends no Content-Type; a browser always sends Origin on a POST,
    so a cross-site page without a preflight is still refused (415)."""
    url = servers["churn"]
    payload = json.dumps({"inputs": [{"name": "age", "shape": [1], "datatype": "INT64",
                                      "data": [1]}]}).encode()
    for headers in ({"Origin": "https://evil.example"},
                    {"Content-Type": "text/plain", "Origin": "https://evil.example"},
                    {"Content-Type": "text/plain"}):
        reply = httpx.post(f"{url}/v2/models/churn/infer", content=payload, headers=headers,
                           timeout=30)
        assert reply.status_code == 415, (headers, reply.text)
    reply = httpx.post(f"{url}/predict", content=b'{"inputs": []}', timeout=30)
    assert reply.status_code == 415  # the other routes still need application/json
