"""Deployment bundles: a registered model version as a directory that runs anywhere.

``build_bundle`` writes::

    <out>/bundle.json        what is inside: model name, version, content hash, signature, ...
    <out>/model/             the model directory, byte for byte as registered
    <out>/requirements.txt   every line pinned with ==
    <out>/Dockerfile         non-root image running ``ratchet serve --bundle /app/bundle``
    <out>/wheels/            empty; drop wheels here for packages not on your index
    <out>/k8s/               deployment.yaml, service.yaml, hpa.yaml, README.md

The image binds 0.0.0.0 (a container must), so the manifests narrow who it answers: the
Host allowlist holds the Service's cluster names, and ``/feedback`` needs a bearer token
from the Secret ``<name>-token`` (mounted as a file; the pod does not start without it).

``load_bundle`` reads it back (``ratchet serve --bundle``), refusing a model directory
whose files no longer hash to what ``bundle.json`` records.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.errors import ConfigError, IntegrityError, InvalidInput, NotFound, Untrusted
from ratchet.hashing import hash_file, hash_tree, is_digest
from ratchet.packaging.manifest import MANIFEST_FILENAME, Manifest, ratchet_version, utc_now_iso

if TYPE_CHECKING:
    from ratchet.packaging import LoadedModel
    from ratchet.workspace import Workspace

BUNDLE_FILENAME = "bundle.json"
MODEL_DIRNAME = "model"
# Bumped on incompatible layout changes, so an older ratchet refuses a newer bundle clearly.
FORMAT_VERSION = 1
# Where the Dockerfile puts the bundle and the store inside the image.
IMAGE_BUNDLE_DIR = "/app/bundle"
IMAGE_RATCHET_HOME = "/var/lib/ratchet"
IMAGE_UID = 10001
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
TOKEN_DIR = "/var/run/secrets/ratchet"
TOKEN_KEY = "token"
# Installed at build time and pinned next to what the model's manifest records.
SERVER_REQUIREMENTS = ("fastapi", "uvicorn[standard]", "prometheus-client")
HPA_CPU_UTILIZATION = 70
HPA_MAX_REPLICAS_FACTOR = 4

# Requirement names and versions come from a model's manifest: keep them to what pip reads
# as a name and a version, so a manifest cannot smuggle options (--index-url) into the file.
_DIST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9_,.-]+\])?$")
_DIST_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$")
_DNS_LABEL_MAX = 63


@dataclass(frozen=True)
class BundleInfo:
    """The contents of ``bundle.json``."""

    format_version: int
    deployment: str
    model_name: str
    model_version: int
    resolved_from: str
    content_hash: str
    flavor: str
    signature: dict[str, Any] | None
    run_id: str | None
    ratchet_version: str
    created_at: str
    port: int
    image: str
    # Built with ``--trust``: the model's format runs code (cloudpickle) and the builder
    # vouched for it, so the bundle's server loads it. Absent in older bundles: False.
    trust: bool = False

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Bundle:
    """A bundle written by :func:`build_bundle`: where, what, and its files (sorted)."""

    directory: Path
    info: BundleInfo
    files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), **self.info.to_dict(), "files": list(self.files)}


# ---------------------------------------------------------------- building
def build_bundle(
    model_uri: str,
    output_dir: str | os.PathLike[str],
    *,
    deployment: str | None = None,
    workspace: Workspace | None = None,
    port: int = 8080,
    replicas: int = 2,
    image: str | None = None,
    overwrite: bool = False,
    trust: bool = False,
) -> Bundle:
    """Write a self-contained deployment bundle for a registered model version.

    An alias (``churn@champion``) is resolved now and the bundle records the version it
    pointed at. The bundle is built next to ``output_dir`` and renamed into place, so a
    reader never sees half of one; an existing non-empty ``output_dir`` is refused unless
    ``overwrite=True`` and it is a bundle itself. A model whose format runs code when
    loaded (cloudpickle) is refused (``Untrusted``) unless ``trust=True``, which the bundle
    records so that its server loads the model.
    """
    from ratchet.store.deployment_store import validate_deployment_name

    _check_int("port", port, 1, 65535)
    _check_int("replicas", replicas, 1, 1000)
    out = Path(output_dir).absolute()
    _check_output(out, overwrite)
    from ratchet.registry.client import RegistryClient
    from ratchet.workspace import resolve

    registry = resolve(workspace).client(RegistryClient)
    resolved = registry.resolve(model_uri)
    mv = resolved.version
    if mv is None:
        raise InvalidInput(
            f"{model_uri}: a bundle is built from a registered model version; register it "
            "first (ratchet.models.register) and build from models:/<name>/<version>"
        )
    if deployment is None:  # the model name, or its DNS form where that is not a valid name
        deployment = mv.name if _is_deployment_name(mv.name) else _dns_label(mv.name, "model")
    validate_deployment_name(deployment)
    k8s_name = _dns_label(deployment, "deployment")
    if image is None:
        image = f"{k8s_name}:v{mv.version}"
    elif not _IMAGE.match(image):
        raise InvalidInput(
            f"image {image!r} is not a valid image reference; use e.g. registry.example.com/"
            "churn:v3 (lowercase, no spaces)"
        )
    # The concrete version, not the alias: a move between resolve and download must not
    # put a different model in the bundle than bundle.json names.
    source = registry.download(mv.uri)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model_dir = staging / MODEL_DIRNAME
        shutil.copytree(source, model_dir)
        actual = model_tree_hash(model_dir)
        if actual != mv.content_hash:
            raise IntegrityError(
                f"{mv.uri}: the cached files in {source} hash to {actual[:12]}…, but the "
                f"version records {mv.content_hash[:12]}…; delete that directory and retry"
            )
        manifest = Manifest.from_json(
            (model_dir / MANIFEST_FILENAME).read_text(encoding="utf-8"),
            where=f"{mv.uri}: {MANIFEST_FILENAME}",
        )
        if not _is_safe(manifest) and not trust:
            raise Untrusted(
                f"{mv.uri} is a {manifest.flavor}-flavor model: loading it runs arbitrary code, "
                "so its server would refuse it. Build with --trust (trust=True) only if you "
                "trust its source; the bundle then records that and serves it"
            )
        info = BundleInfo(
            format_version=FORMAT_VERSION,
            deployment=deployment,
            model_name=mv.name,
            model_version=mv.version,
            resolved_from=model_uri,
            content_hash=mv.content_hash,
            flavor=manifest.flavor,
            signature=manifest.signature,
            run_id=mv.run_id,
            ratchet_version=ratchet_version(),
            created_at=utc_now_iso(),
            port=port,
            image=image,
            trust=trust and not _is_safe(manifest),
        )
        _write(staging / BUNDLE_FILENAME, json.dumps(info.to_dict(), indent=2, sort_keys=True))
        _write(staging / "requirements.txt", requirements_text(manifest, info))
        _write(staging / "Dockerfile", dockerfile_text(manifest, info))
        _write(staging / ".dockerignore", "k8s/\n")
        (staging / "wheels").mkdir()
        _write(
            staging / "wheels" / "README.txt",
            "Wheels placed here are installed before the package index is asked\n"
            "(pip --find-links), e.g. a ratchet-mlops wheel built from a source checkout.\n",
        )
        (staging / "k8s").mkdir()
        for filename, document in kubernetes_manifests(info, k8s_name, replicas).items():
            _write(staging / "k8s" / filename, _yaml(document))
        _write(staging / "k8s" / "README.md", kubernetes_readme(info, k8s_name))
        # mkdtemp (and the model cache) make private directories; a bundle is for shipping.
        for directory in (staging, *(p for p in staging.rglob("*") if p.is_dir())):
            directory.chmod(0o755)
        files = tuple(
            sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        )
        _move_into_place(staging, out, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Bundle(out, info, files)


def _is_safe(manifest: Manifest) -> bool:
    """Loading runs no arbitrary code (what ``load_model`` allows without trust)."""
    from ratchet.packaging.flavors import FLAVORS

    flavor = FLAVORS.get(manifest.flavor)
    return bool(manifest.safe and flavor is not None and flavor.SAFE)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def _is_deployment_name(name: str) -> bool:
    from ratchet.store.deployment_store import validate_deployment_name

    try:
        validate_deployment_name(name)
    except InvalidInput:
        return False
    return True


def _check_output(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InvalidInput(f"output {out} exists and is not a directory; choose another path")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise InvalidInput(
            f"output directory {out} is not empty; pass --overwrite (overwrite=True in "
            "Python) to replace the bundle there, or choose another directory"
        )
    if not (out / BUNDLE_FILENAME).is_file():
        # --overwrite replaces bundles only: a mistyped -o must not delete a project.
        raise InvalidInput(
            f"output directory {out} is not empty and is not a ratchet bundle (no "
            f"{BUNDLE_FILENAME}); refusing to replace it, even with overwrite"
        )


def _move_into_place(staging: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished bundle to ``out``. A replaced bundle is renamed aside first and
    deleted after, so ``out`` is the old bundle or the new one, never a mix."""
    _check_output(out, overwrite)  # again: something may have appeared while we built
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old / "bundle")
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(old / "bundle", out)
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)  # onto a missing or empty directory: one rename


def _write(path: Path, text: str) -> None:
    # The staging directory is renamed into place as a whole, so plain writes suffice.
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


def model_tree_hash(directory: Path) -> str:
    """The registry's content hash of a local model directory: ``hash_tree`` over
    (relative path, BLAKE2b of the file) for every file under it."""
    return hash_tree(
        (p.relative_to(directory).as_posix(), hash_file(str(p)))
        for p in directory.rglob("*")
        if p.is_file()
    )


def _dns_label(name: str, what: str) -> str:
    """``name`` as a DNS-1123 label (Kubernetes object names): lowercase letters, digits
    and '-', starting and ending with a letter or digit, at most 63 characters."""
    label = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:_DNS_LABEL_MAX].rstrip("-")
    if not label:
        raise InvalidInput(
            f"{what} name {name!r} has no letters or digits to make a Kubernetes name from; "
            "pass a deployment name"
        )
    return label


# ---------------------------------------------------------------- file contents
def requirements_text(manifest: Manifest, info: BundleInfo) -> str:
    """ratchet and the server libraries at their installed versions, then the libraries the
    model was saved with at the versions it recorded (those win: they made the model)."""
    pins: dict[str, str] = {"ratchet-mlops": _installed("ratchet-mlops")}
    for requirement in SERVER_REQUIREMENTS:
        pins[requirement] = _installed(requirement.split("[", 1)[0])
    for name, version in sorted(manifest.library_versions.items()):
        if name == "python":
            continue  # the base image's Python, not a package
        if not _DIST_NAME.match(name) or not _DIST_VERSION.match(version):
            raise InvalidInput(
                f"{info.model_uri}: {MANIFEST_FILENAME} records library {name!r} version "
                f"{version!r}, which is not a package name and version pip can pin"
            )
        pins[_canonical(name)] = version
    lines = [
        f"# Pinned by `ratchet build` for {info.model_uri} ({info.resolved_from}).",
        *(f"{name}=={version}" for name, version in pins.items()),
    ]
    return "\n".join(lines)


def _installed(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        raise ConfigError(
            f"{distribution} is not installed, so the bundle cannot pin it; install "
            "ratchet-mlops with its serving dependencies (fastapi, uvicorn, prometheus-client)"
        ) from None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _python_image(manifest: Manifest) -> str:
    """The slim image of the Python minor the model was saved with (3.11 at least, what
    ratchet needs): a pickled model may not load on another minor."""
    saved = manifest.library_versions.get("python", "")
    match = re.match(r"^3\.(\d+)", saved)
    minor = max(int(match[1]), 11) if match else 11
    return f"python:3.{minor}-slim"


def dockerfile_text(manifest: Manifest, info: BundleInfo) -> str:
    ready = f"http://127.0.0.1:{info.port}{READY_PATH}"
    command = ["ratchet", "serve", "--bundle", IMAGE_BUNDLE_DIR]
    command += ["--host", "0.0.0.0", "--port", str(info.port)]
    return f"""\
# Built by `ratchet build` for {info.model_uri} (from {info.resolved_from}).
#   docker build -t {info.image} .
FROM {_python_image(manifest)}

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    RATCHET_HOME={IMAGE_RATCHET_HOME}

RUN useradd --uid {IMAGE_UID} --user-group --no-create-home --shell /usr/sbin/nologin ratchet \\
 && mkdir -p {IMAGE_RATCHET_HOME} \\
 && chown ratchet:ratchet {IMAGE_RATCHET_HOME}

WORKDIR /app
COPY requirements.txt /app/requirements.txt
COPY wheels/ /app/wheels/
RUN pip install --no-cache-dir --find-links /app/wheels -r /app/requirements.txt

# The model and its description, read-only for the server's user.
COPY {BUNDLE_FILENAME} {IMAGE_BUNDLE_DIR}/{BUNDLE_FILENAME}
COPY {MODEL_DIRNAME}/ {IMAGE_BUNDLE_DIR}/{MODEL_DIRNAME}/

USER {IMAGE_UID}
EXPOSE {info.port}
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('{ready}', timeout=2)"]
# 0.0.0.0 inside the container only; publish it with -p 127.0.0.1:{info.port}:{info.port}.
# Only Host localhost / 127.0.0.1 / [::1] is answered (421 otherwise): add
# `--allowed-host NAME` for the names clients use. /feedback is open to whoever reaches
# the port unless tokens are set: mount a file with one token a line and add
# `--token-file /run/secrets/ratchet-token` (`--auth predict` to guard predictions too).
CMD {json.dumps(command)}
"""


def kubernetes_manifests(info: BundleInfo, name: str, replicas: int) -> dict[str, dict[str, Any]]:
    """Deployment, Service and HorizontalPodAutoscaler as plain dicts, by file name."""
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "ratchet",
        "app.kubernetes.io/version": f"v{info.model_version}",
        "ratchet.dev/model": _dns_label(info.model_name, "model"),
    }
    selector = {"app.kubernetes.io/name": name}
    metadata = {"name": name, "labels": labels}

    def probe(path: str, period: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": info.port},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        }

    # The image's command, plus: answer to the Service's names only (Kubernetes expands
    # $(POD_NAMESPACE)); probes and Prometheus use the pod IP on health and metrics paths,
    # which the Host check leaves open. /feedback needs a token from the Secret.
    hosts = [name, f"{name}.$(POD_NAMESPACE)", f"{name}.$(POD_NAMESPACE).svc",
             f"{name}.$(POD_NAMESPACE).svc.cluster.local"]
    args = ["ratchet", "serve", "--bundle", IMAGE_BUNDLE_DIR, "--host", "0.0.0.0",
            "--port", str(info.port)]
    for host in hosts:
        args += ["--allowed-host", host]
    args += ["--token-file", f"{TOKEN_DIR}/{TOKEN_KEY}"]
    container = {
        "name": "server",
        "image": info.image,
        "args": args,
        "ports": [{"name": "http", "containerPort": info.port, "protocol": "TCP"}],
        "env": [
            {"name": "RATCHET_HOME", "value": IMAGE_RATCHET_HOME},
            {"name": "POD_NAMESPACE",
             "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "readinessProbe": {**probe(READY_PATH, 5), "initialDelaySeconds": 2},
        # Liveness waits longer: a slow model load must not get the pod killed.
        "livenessProbe": {**probe(LIVE_PATH, 10), "initialDelaySeconds": 10},
        "volumeMounts": [
            {"name": "ratchet-home", "mountPath": IMAGE_RATCHET_HOME},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(info.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": IMAGE_UID,
                        "runAsGroup": IMAGE_UID,
                        "fsGroup": IMAGE_UID,
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "ratchet-home", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "token", "secret": {"secretName": f"{name}-token",
                                                     "defaultMode": 0o440}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {"name": "http", "port": info.port, "targetPort": info.port, "protocol": "TCP"}
            ],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": replicas,
            "maxReplicas": replicas * HPA_MAX_REPLICAS_FACTOR,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": HPA_CPU_UTILIZATION,
                        },
                    },
                }
            ],
        },
    }
    return {"deployment.yaml": deployment, "service.yaml": service, "hpa.yaml": hpa}


def kubernetes_readme(info: BundleInfo, name: str) -> str:
    """What the manifests leave open and closed, and the one Secret they need."""
    return f"""\
# {name} on Kubernetes

    kubectl create secret generic {name}-token \\
      --from-literal={TOKEN_KEY}="$(openssl rand -hex 32)"
    kubectl apply -f k8s/

The pod mounts the Secret `{name}-token` at `{TOKEN_DIR}` and does not start without
it. Clients of `POST /feedback` (the route that writes ground truth) send
`Authorization: Bearer <token>`; a wrong or missing token gets 401. To guard predictions
too, add `--auth predict` to the container's args. Several tokens (one a line in the
`{TOKEN_KEY}` key) allow rotation; the server re-reads the file when the Secret changes.

The server answers only `Host` names it is told (421 otherwise, against DNS rebinding):
`{name}`, `{name}.<namespace>`, `{name}.<namespace>.svc` and
`{name}.<namespace>.svc.cluster.local`. Behind an Ingress, add its host name with another
`--allowed-host` argument (`*.example.com` allows subdomains).

Open to anyone who reaches the port, by design: `/v2/health/*`, `/health/*`, `/ping`
(the kubelet probes them by pod IP) and `/metrics` (Prometheus scrapes it, see the pod
annotations); they change nothing and show no request data. Restrict who reaches the pod
with a NetworkPolicy.

Every POST must say `Content-Type: application/json` (`/invocations`: or `text/csv`);
requests past 1,024 in flight per pod get 503, headers over 64 KiB get 431, and a client
that does not finish its headers within 10 s is cut off (408).
"""


def _yaml(document: dict[str, Any]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # shared label dicts written out in full, not as &id001 anchors

    return str(yaml.dump(document, Dumper=Dumper, sort_keys=False, default_flow_style=False))


# ---------------------------------------------------------------- loading
_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    # field: (accepted types, may be null)
    "format_version": (int, False),
    "deployment": (str, False),
    "model_name": (str, False),
    "model_version": (int, False),
    "resolved_from": (str, False),
    "content_hash": (str, False),
    "flavor": (str, False),
    "signature": (dict, True),
    "run_id": (str, True),
    "ratchet_version": (str, False),
    "created_at": (str, False),
    "port": (int, False),
    "image": (str, False),
}


def read_bundle_info(directory: str | os.PathLike[str]) -> BundleInfo:
    """Parse and check ``<directory>/bundle.json`` (the model is not touched)."""
    from ratchet.safe_load import load_json
    from ratchet.store.deployment_store import validate_deployment_name

    root = Path(directory)
    if not root.is_dir():
        raise NotFound(f"bundle directory {root} does not exist")
    path = root / BUNDLE_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(
            f"{root} has no {BUNDLE_FILENAME}: it is not a bundle written by `ratchet build`"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path}: not valid JSON ({e}); rebuild the bundle") from e
    data = load_json(text, str(path), "rebuild the bundle")  # bounded nesting
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: must hold a JSON object; rebuild the bundle")
    version = data.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise InvalidInput(
            f"{path}: field 'format_version' is {version!r}; this ratchet reads format "
            f"{FORMAT_VERSION}. Rebuild the bundle with this ratchet, or upgrade ratchet"
        )
    for name, (types, nullable) in _FIELDS.items():
        if name not in data:
            raise InvalidInput(f"{path}: field {name!r} is missing; rebuild the bundle")
        value = data[name]
        if (value is None and nullable) or (
            isinstance(value, types) and not isinstance(value, bool)
        ):
            continue
        raise InvalidInput(
            f"{path}: field {name!r} has the wrong type ({type(value).__name__}); "
            "rebuild the bundle"
        )
    if not is_digest(data["content_hash"]):
        raise InvalidInput(f"{path}: field 'content_hash' is not a 64-digit hex digest")
    in_range = {"port": 1 <= data["port"] <= 65535, "model_version": data["model_version"] >= 1}
    for field, ok in in_range.items():
        if not ok:
            raise InvalidInput(f"{path}: field {field!r} is out of range ({data[field]})")
    try:
        validate_deployment_name(data["deployment"])
    except InvalidInput as e:
        raise InvalidInput(f"{path}: field 'deployment': {e}") from None
    trust = data.get("trust", False)
    if type(trust) is not bool:
        raise InvalidInput(f"{path}: field 'trust' must be true or false; rebuild the bundle")
    return BundleInfo(**{name: data[name] for name in _FIELDS}, trust=trust)


def load_bundle(
    directory: str | os.PathLike[str], *, trust: bool = False
) -> tuple[BundleInfo, LoadedModel]:
    """Read a bundle's description and load its model, after checking the model's files
    still hash to the content hash the bundle records (``IntegrityError`` if not).
    ``trust=True`` is needed for code-executing model formats, as in ``load_model``, unless
    the bundle was built with ``--trust`` (``bundle.json`` records it)."""
    from ratchet.packaging import load_model

    info = read_bundle_info(directory)
    model_dir = Path(directory) / MODEL_DIRNAME
    if not model_dir.is_dir():
        raise InvalidInput(
            f"{Path(directory)}: the model directory {MODEL_DIRNAME}/ named by "
            f"{BUNDLE_FILENAME} is missing; rebuild the bundle"
        )
    actual = model_tree_hash(model_dir)
    if actual != info.content_hash:
        raise IntegrityError(
            f"{model_dir}: the model files hash to {actual[:12]}…, but {BUNDLE_FILENAME} "
            f"records {info.content_hash[:12]}… for {info.model_uri}; the bundle was "
            "modified or damaged, rebuild it with `ratchet build`"
        )
    model = load_model(model_dir, trust=trust or info.trust)
    if model.flavor != info.flavor:
        raise IntegrityError(
            f"{Path(directory) / BUNDLE_FILENAME}: field 'flavor' is {info.flavor!r} but the "
            f"model is {model.flavor!r}; rebuild the bundle"
        )
    return info, model


__all__ = ["Bundle", "BundleInfo", "build_bundle", "load_bundle", "read_bundle_info"]
