"""Deployment bundles: build from the registry, the files and manifests, load back, refuse
tampering; and the Grafana dashboard shipped in deploy/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ratchet.config import Settings
from ratchet.errors import IntegrityError, InvalidInput, NotFound, Untrusted
from ratchet.packaging import Manifest
from ratchet.registry.client import RegistryClient
from ratchet.serving.bundle import (
    BundleInfo,
    build_bundle,
    load_bundle,
    read_bundle_info,
    requirements_text,
)
from ratchet.workspace import Workspace

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ratchet-serving.json"
# The metric names of the serving contract (ratchet.serving.serving_metrics).
CONTRACT_METRICS = {
    "ratchet_requests_total": "counter",
    "ratchet_request_latency_seconds": "histogram",
    "ratchet_validation_failures_total": "counter",
    "ratchet_validation_flags_total": "counter",
    "ratchet_predictions_total": "counter",
    "ratchet_prediction_value": "histogram",
    "ratchet_inflight_requests": "gauge",
    "ratchet_model_load_seconds": "gauge",
    "ratchet_model_info": "gauge",
    "ratchet_prediction_log_dropped_total": "counter",
    "ratchet_prediction_log_rows_total": "counter",
    "ratchet_shadow_disagreements_total": "counter",
    # The newest monitor result, exported by the server (ratchet.monitoring).
    "ratchet_drift_score": "gauge",
    "ratchet_drift_share": "gauge",
    "ratchet_drift_detected": "gauge",
    "ratchet_model_performance": "gauge",
}


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    return X.assign(target=y)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, iris: pd.DataFrame) -> RegistryClient:
    """An embedded store holding Iris_Model v1 (C=0.1, @champion) and v2 (C=1.0)."""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("store")
    settings = Settings(home=root / ".ratchet", db_url=f"sqlite:///{root / 'ratchet.db'}",
                        artifacts_uri=str(root / "artifacts"))
    client = RegistryClient(Workspace(settings))
    X, y = iris.drop(columns="target"), iris["target"]
    for C in (0.1, 1.0):
        run = client.tracking.create_run("iris")
        model = LogisticRegression(C=C, max_iter=500).fit(X, y)
        client.log_model(run.run_id, model, name="Iris_Model", input_example=X.head(20))
        client.tracking.end_run(run.run_id)
    client.set_alias("Iris_Model", "champion", 1)
    return client


@pytest.fixture
def bundle_dir(tmp_path: Path, registry: RegistryClient) -> Path:
    return build_bundle("Iris_Model@champion", tmp_path / "dist" / "iris", workspace=registry.workspace,
                        port=9000, replicas=3).directory


def _docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)
    return docs


# ---------------------------------------------------------------- building
def test_build_writes_a_complete_bundle(tmp_path: Path, registry: RegistryClient) -> None:
    from importlib.metadata import version

    out = tmp_path / "dist" / "iris"
    bundle = build_bundle("Iris_Model@champion", out, workspace=registry.workspace)
    assert bundle.directory == out
    mv = registry.get_version("Iris_Model", 1)
    for name in ("bundle.json", "requirements.txt", "Dockerfile", "model/ratchet-model.json",
                 "model/model.skops", "k8s/deployment.yaml", "k8s/service.yaml", "k8s/hpa.yaml"):
        assert (out / name).is_file(), name
        assert name in bundle.files
    assert set(bundle.files) == {p.relative_to(out).as_posix() for p in out.rglob("*")
                                 if p.is_file()}
    assert [p.name for p in out.parent.iterdir()] == ["iris"]  # no staging left behind

    data = json.loads((out / "bundle.json").read_text())
    assert data == bundle.info.to_dict()
    assert data["format_version"] == 1
    assert (data["model_name"], data["model_version"]) == ("Iris_Model", 1)  # the alias, resolved
    assert data["resolved_from"] == "Iris_Model@champion"
    assert data["content_hash"] == mv.content_hash and data["run_id"] == mv.run_id
    assert data["flavor"] == "sklearn"
    assert data["signature"] == mv.manifest["signature"]
    assert data["ratchet_version"] == version("ratchet-mlops")
    assert data["deployment"] == "Iris_Model" and data["port"] == 8080
    assert data["image"] == "iris-model:v1"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", data["created_at"])

    lines = [ln for ln in (out / "requirements.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    pins = dict(ln.split("==") for ln in lines)
    assert len(pins) == len(lines) and all(pins.values())
    libraries = mv.manifest["library_versions"]
    assert pins["ratchet-mlops"] == version("ratchet-mlops")
    assert pins["fastapi"] == version("fastapi")
    assert pins["uvicorn[standard]"] == version("uvicorn")
    assert pins["prometheus-client"] == version("prometheus-client")
    assert pins["scikit-learn"] == libraries["scikit-learn"]
    assert pins["skops"] == libraries["skops"]
    assert "python" not in pins

    dockerfile = (out / "Dockerfile").read_text()
    python = ".".join(libraries["python"].split(".")[:2])
    assert f"FROM python:{python}-slim" in dockerfile
    assert "pip install --no-cache-dir" in dockerfile and "-r /app/requirements.txt" in dockerfile
    assert re.search(r"^USER 10001$", dockerfile, re.M)
    assert re.search(r"^EXPOSE 8080$", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/v2/health/ready" in dockerfile
    cmd = next(ln for ln in dockerfile.splitlines() if ln.startswith("CMD "))
    assert json.loads(cmd[4:]) == ["ratchet", "serve", "--bundle", "/app/bundle",
                                   "--host", "0.0.0.0", "--port", "8080"]


def test_kubernetes_manifests_parse_and_reference_the_probes(bundle_dir: Path) -> None:
    (deployment,) = _docs(bundle_dir / "k8s" / "deployment.yaml")
    (service,) = _docs(bundle_dir / "k8s" / "service.yaml")
    (hpa,) = _docs(bundle_dir / "k8s" / "hpa.yaml")
    for doc in (deployment, service, hpa):
        assert DNS_LABEL.match(doc["metadata"]["name"])
        assert doc["metadata"]["name"] == "iris-model"
    for path in (bundle_dir / "k8s").iterdir():
        assert "&id" not in path.read_text()  # plain YAML, no anchors
    for directory in (bundle_dir, bundle_dir / "model", bundle_dir / "k8s"):
        assert directory.stat().st_mode & 0o755 == 0o755  # readable when shipped

    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    (port,) = container["ports"]
    assert port["containerPort"] == 9000
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready == {"path": "/v2/health/ready", "port": 9000}
    assert live == {"path": "/v2/health/live", "port": 9000}
    assert {"name": "RATCHET_HOME", "value": "/var/lib/ratchet"} in container["env"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["image"] == "iris-model:v1"

    assert (service["kind"], service["spec"]["type"]) == ("Service", "ClusterIP")
    assert service["spec"]["selector"] == selector
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [9000]

    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] == 3 < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_manifests_narrow_hosts_and_need_a_token_secret(bundle_dir: Path, tmp_path: Path,
                                                         registry: RegistryClient) -> None:
    """The container binds 0.0.0.0, so the Deployment's args answer only the Service's
    names and guard /feedback with the Secret's token; run those very args here (on
    127.0.0.1) and check what they allow and refuse."""
    import httpx

    from tests.serving.conftest import running_server

    (deployment,) = _docs(bundle_dir / "k8s" / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[:8] == ["ratchet", "serve", "--bundle", "/app/bundle", "--host", "0.0.0.0",
                        "--port", "9000"]
    hosts = [args[i + 1] for i, a in enumerate(args) if a == "--allowed-host"]
    assert hosts == ["iris-model", "iris-model.$(POD_NAMESPACE)",
                     "iris-model.$(POD_NAMESPACE).svc",
                     "iris-model.$(POD_NAMESPACE).svc.cluster.local"]
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.namespace"}}} in container["env"]
    token_path = args[args.index("--token-file") + 1]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "token"]
    assert token_path == f"{mount['mountPath']}/token" and mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == "token"]
    assert volume["secret"]["secretName"] == "iris-model-token"
    assert "optional" not in volume["secret"]  # no Secret, no pod: never open by mistake
    readme = (bundle_dir / "k8s" / "README.md").read_text()
    assert "kubectl create secret generic iris-model-token" in readme
    assert "Authorization: Bearer" in readme and "--allowed-host" in readme
    dockerfile = (bundle_dir / "Dockerfile").read_text()
    assert "--allowed-host" in dockerfile and "--token-file" in dockerfile

    token = tmp_path / "token"
    token.write_text("k8s-secret-token\n")
    local = [a.replace("$(POD_NAMESPACE)", "default") for a in args[2:]]
    local[local.index("--bundle") + 1] = str(bundle_dir)
    local[local.index("--host") + 1] = "127.0.0.1"
    local[local.index("--token-file") + 1] = str(token)
    settings = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'r.db'}",
                        artifacts_uri=str(tmp_path / "artifacts"))
    row = {"inputs": [{"sepal length (cm)": 5.1, "sepal width (cm)": 3.5,
                       "petal length (cm)": 1.4, "petal width (cm)": 0.2}]}
    with running_server(settings, tmp_path, *local) as url, httpx.Client(base_url=url) as c:
        service = {"Host": "iris-model.default.svc.cluster.local:9000"}
        assert c.post("/predict", json=row, headers=service).status_code == 200
        assert c.post("/predict", json=row, headers={"Host": "evil.example"}).status_code == 421
        assert c.get("/v2/health/ready", headers={"Host": "10.1.2.3:9000"}).status_code == 200
        feedback = {"request_id": "x", "row": 0, "value": 1}
        assert c.post("/feedback", json=feedback, headers=service).status_code == 401


def test_options_name_the_deployment_and_image(tmp_path: Path, registry: RegistryClient) -> None:
    bundle = build_bundle("models:/Iris_Model/2", tmp_path / "b", workspace=registry.workspace,
                          deployment="Iris.API_v2", image="registry.example.com/iris:2")
    assert (bundle.info.deployment, bundle.info.model_version) == ("Iris.API_v2", 2)
    (deployment,) = _docs(bundle.directory / "k8s" / "deployment.yaml")
    assert deployment["metadata"]["name"] == "iris-api-v2"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.example.com/iris:2"
    with pytest.raises(InvalidInput, match="deployment name"):
        build_bundle("Iris_Model/2", tmp_path / "c", workspace=registry.workspace, deployment="a/b")
    with pytest.raises(InvalidInput, match="image"):
        build_bundle("Iris_Model/2", tmp_path / "c", workspace=registry.workspace, image="Not An Image")
    with pytest.raises(InvalidInput, match="port"):
        build_bundle("Iris_Model/2", tmp_path / "c", workspace=registry.workspace, port=0)
    assert not (tmp_path / "c").exists()


def test_only_registered_models_are_bundled(tmp_path: Path, registry: RegistryClient) -> None:
    with pytest.raises(NotFound):
        build_bundle("nope@champion", tmp_path / "x", workspace=registry.workspace)
    run_id = registry.get_version("Iris_Model", 1).run_id
    with pytest.raises(InvalidInput, match="registered model version"):
        build_bundle(f"runs:/{run_id}/model", tmp_path / "x", workspace=registry.workspace)
    assert not (tmp_path / "x").exists()


def test_existing_output_is_refused_unless_overwrite(
    tmp_path: Path, registry: RegistryClient
) -> None:
    out = tmp_path / "dist"
    out.mkdir()  # an existing empty directory is fine
    build_bundle("Iris_Model/1", out, workspace=registry.workspace)
    with pytest.raises(InvalidInput, match="not empty"):
        build_bundle("Iris_Model/2", out, workspace=registry.workspace)
    assert read_bundle_info(out).model_version == 1
    build_bundle("Iris_Model/2", out, workspace=registry.workspace, overwrite=True)
    assert read_bundle_info(out).model_version == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist"]

    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('mine')\n")
    with pytest.raises(InvalidInput, match="not a ratchet bundle"):
        build_bundle("Iris_Model/1", project, workspace=registry.workspace, overwrite=True)
    assert [p.name for p in project.iterdir()] == ["train.py"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="not a directory"):
        build_bundle("Iris_Model/1", tmp_path / "file", workspace=registry.workspace)


def test_manifest_cannot_smuggle_pip_options() -> None:
    info = BundleInfo(1, "d", "m", 1, "m/1", "0" * 64, "sklearn", None, None, "0.1.0",
                      "2024-01-01T00:00:00.000Z", 8080, "m:v1")
    manifest = Manifest(flavor="sklearn", model_file="model.skops",
                        library_versions={"numpy": "1.0\n--index-url https://evil.example"},
                        signature=None, input_example=None, metrics={}, safe=True,
                        has_predict_proba=False)
    with pytest.raises(InvalidInput, match="numpy"):
        requirements_text(manifest, info)


# ---------------------------------------------------------------- loading
def test_load_bundle_predicts_like_the_registry(
    bundle_dir: Path, registry: RegistryClient, iris: pd.DataFrame
) -> None:
    X = iris.drop(columns="target")
    info, model = load_bundle(bundle_dir)
    assert (info.model_name, info.model_version, info.port) == ("Iris_Model", 1, 9000)
    assert info.model_uri == "models:/Iris_Model/1"
    expected = registry.load("Iris_Model/1")
    np.testing.assert_array_equal(model.predict(X), expected.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), expected.predict_proba(X))


@pytest.mark.parametrize("tamper", ["flip a byte", "add a file", "remove the manifest"])
def test_tampered_model_is_refused(bundle_dir: Path, tamper: str) -> None:
    model_file = bundle_dir / "model" / "model.skops"
    if tamper == "flip a byte":
        model_file.chmod(0o644)
        data = bytearray(model_file.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model_file.write_bytes(bytes(data))
    elif tamper == "add a file":
        (bundle_dir / "model" / "extra.py").write_text("import os\n")
    else:
        (bundle_dir / "model" / "ratchet-model.json").unlink()
    with pytest.raises(IntegrityError, match="rebuild"):
        load_bundle(bundle_dir)


def _edit(path: Path, change: dict[str, Any]) -> None:
    data = json.loads(path.read_text())
    for key, value in change.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"format_version": 99}, "'format_version'"),
        ({"format_version": "1"}, "'format_version'"),
        ({"model_version": ...}, "'model_version' is missing"),
        ({"port": "8080"}, "'port' has the wrong type"),
        ({"port": 70000}, "'port' is out of range"),
        ({"content_hash": "abc"}, "'content_hash'"),
        ({"deployment": "a/b"}, "'deployment'"),
        ({"signature": True}, "'signature'"),
        ({"trust": "yes"}, "'trust'"),
    ],
)
def test_bad_bundle_json_is_invalid_input(
    bundle_dir: Path, change: dict[str, Any], fragment: str
) -> None:
    _edit(bundle_dir / "bundle.json", change)
    with pytest.raises(InvalidInput, match=re.escape(fragment)) as caught:
        load_bundle(bundle_dir)
    assert "bundle.json" in str(caught.value)


def test_unreadable_or_incomplete_bundles(bundle_dir: Path, tmp_path: Path) -> None:
    import shutil

    with pytest.raises(NotFound):
        load_bundle(tmp_path / "missing")
    with pytest.raises(InvalidInput, match=r"no bundle\.json"):
        load_bundle(tmp_path)
    shutil.rmtree(bundle_dir / "model")
    with pytest.raises(InvalidInput, match="model directory"):
        load_bundle(bundle_dir)
    (bundle_dir / "bundle.json").write_text("{not json")
    with pytest.raises(InvalidInput, match=r"bundle\.json: not valid JSON"):
        load_bundle(bundle_dir)
    (bundle_dir / "bundle.json").write_text("[1, 2]")
    with pytest.raises(InvalidInput, match="JSON object"):
        load_bundle(bundle_dir)


# ---------------------------------------------------------------- Grafana dashboard
def _targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = list(dashboard["panels"])
    for panel in list(panels):
        panels.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return [t for p in panels for t in p.get("targets", [])]


def test_grafana_dashboard_uses_only_contract_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert {"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}.items() <= \
        dashboard["__inputs"][0].items()
    expressions = [t["expr"] for t in _targets(dashboard)]
    expressions += [v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                    for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(expressions) >= 12
    used: set[str] = set()
    for expr in expressions:
        names = set(re.findall(r"\bratchet_[a-z0-9_]+", expr))
        assert names, f"no ratchet metric in {expr!r}"
        for name in names:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in CONTRACT_METRICS and CONTRACT_METRICS.get(base) == "histogram":
                name = base
            assert name in CONTRACT_METRICS, f"{name} (in {expr!r}) is not a contract metric"
            used.add(name)
    assert used == set(CONTRACT_METRICS)  # every metric has a panel
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    latency = " ".join(e for e in expressions if "histogram_quantile" in e)
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}," in latency
    assert "ratchet_request_latency_seconds_bucket" in latency


def test_grafana_expressions_are_valid_promql(tmp_path: Path) -> None:
    """promtool (Debian package ``prometheus``) parses each query as a recording rule, with
    Grafana's variables replaced by values PromQL accepts."""
    import subprocess

    dashboard = json.loads(DASHBOARD.read_text())
    grafana_vars = {"$__rate_interval": "1m", "$__range": "1h", "$deployment": ".*"}
    rules = []
    for i, target in enumerate(_targets(dashboard)):
        expr = target["expr"]
        for var, value in grafana_vars.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bundles_without_a_trust_field_still_load(bundle_dir: Path) -> None:
    assert json.loads((bundle_dir / "bundle.json").read_text())["trust"] is False
    _edit(bundle_dir / "bundle.json", {"trust": ...})  # as written before the field existed
    info, _ = load_bundle(bundle_dir)
    assert info.trust is False


def test_an_untrusted_model_is_bundled_only_with_trust(
    tmp_path: Path, churn_registry: RegistryClient, serving_settings: Settings
) -> None:
    from fastapi.testclient import TestClient

    from ratchet.serving.app import ServingConfig, create_app
    from tests.serving.conftest import ROW, _pipeline, churn_frame

    X, y = churn_frame()
    with churn_registry.tracking.start_run(experiment="churn") as run:
        churn_registry.log_model(run.id, _pipeline(1.0, "ignore").fit(X, y), name="churnpy",
                                 input_example=X, flavor="python")
    out = tmp_path / "dist" / "churnpy"
    with pytest.raises(Untrusted, match="--trust"):
        build_bundle("churnpy/1", out, workspace=churn_registry.workspace)
    assert not out.exists()
    bundle = build_bundle("churnpy/1", out, workspace=churn_registry.workspace, trust=True)
    assert bundle.info.trust is True
    info, model = load_bundle(out)  # the bundle records the builder's trust
    assert info.trust and model.flavor == "python"
    app = create_app(bundle=str(out), workspace=Workspace(serving_settings),
                     config=ServingConfig(poll_interval_s=0.05, log_predictions=False))
    with TestClient(app) as client:
        r = client.post("/predict", json={"inputs": [ROW]})
        assert r.status_code == 200 and r.json()["model_name"] == "churnpy"
    _edit(out / "bundle.json", {"trust": False})
    with pytest.raises(Untrusted):
        load_bundle(out)
    # A safe model's bundle never claims trust, even when built with it.
    safe = build_bundle("churn/1", tmp_path / "dist" / "churn", workspace=churn_registry.workspace,
                        trust=True)
    assert safe.info.trust is False
