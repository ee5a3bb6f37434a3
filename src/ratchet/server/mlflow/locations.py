"""Where MLflow's client finds files on a ratchet server, and what its URIs mean here.

Every file lives as a ratchet run artifact (content-addressed blob, indexed by path). MLflow
addresses files by ``mlflow-artifacts:/`` URIs, which its client turns into
``/api/2.0/mlflow-artifacts/artifacts/<path>`` requests:

- a run's artifacts: ``mlflow-artifacts:/<experiment_id>/<run_id>/artifacts/<relpath>`` is
  artifact ``<relpath>`` of run ``<run_id>``;
- an MLflow 3 logged model's files: ``mlflow-artifacts:/<experiment_id>/models/<model_id>/
  artifacts/<relpath>`` is artifact ``models/<model_id>/<relpath>`` of the run that holds
  the model (its source run, or a holder run made for a model logged outside a run).

The server chooses these locations; a client never names an artifact root. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratchet.artifacts.paths import normalize_artifact_path
from ratchet.errors import InvalidInput
from ratchet.server.mlflow.protocol import invalid

SCHEME = "mlflow-artifacts:"
LOGGED_MODELS_DIR = "models"  # in the holder run: models/<model_id>/...


def run_artifact_uri(experiment_id: str, run_id: str) -> str:
    return f"{SCHEME}/{experiment_id}/{run_id}/artifacts"


def logged_model_artifact_uri(experiment_id: str, model_id: str) -> str:
    return f"{SCHEME}/{experiment_id}/{LOGGED_MODELS_DIR}/{model_id}/artifacts"


def logged_model_run_path(model_id: str) -> str:
    """The prefix of a logged model's files among its holder run's artifacts."""
    return f"{LOGGED_MODELS_DIR}/{model_id}"


@dataclass(frozen=True)
class Location:
    """A proxied artifact path, resolved: the experiment it names, whose files (a run's
    or a logged model's) and the relative path under them ("" for the root)."""

    experiment_id: str
    run_id: str | None
    model_id: str | None
    relpath: str


def parse_location(path: str) -> Location:
    """``<exp>/<run_id>/artifacts[/<relpath>]`` or ``<exp>/models/<model_id>/artifacts[/…]``
    (a proxy request's path, or the part of an ``mlflow-artifacts:/`` URI after the
    scheme). Anything else, and any path that is not in normal form (``..``, ``//``,
    backslashes, encoded tricks decoded by the router), is INVALID_PARAMETER_VALUE."""
    text = path.strip("/")
    parts = text.split("/")
    if len(parts) >= 4 and parts[1] == LOGGED_MODELS_DIR and parts[3] == "artifacts":
        experiment_id, model_id, rest = parts[0], parts[2], parts[4:]
        run_id = None
    elif len(parts) >= 3 and parts[2] == "artifacts":
        experiment_id, run_id, rest = parts[0], parts[1], parts[3:]
        model_id = None
    else:
        raise invalid(f"artifact path {path!r} is not under <experiment_id>/<run_id>/"
                      "artifacts or <experiment_id>/models/<model_id>/artifacts")
    for what, value in (("experiment id", experiment_id), ("run id", run_id),
                        ("model id", model_id)):
        if value is not None and (not value or not value.replace("-", "").replace(
                "_", "").isalnum()):
            raise invalid(f"artifact path {path!r}: {what} {value!r} is not an id")
    relpath = "/".join(rest)
    if relpath:
        try:
            normal = normalize_artifact_path(relpath)
        except InvalidInput as exc:
            raise invalid(f"artifact path {path!r}: {exc}") from None
        if normal != relpath:
            raise invalid(f"artifact path {path!r} is not in normal form ({normal!r})")
    return Location(experiment_id, run_id, model_id, relpath)


def parse_artifact_uri(uri: str) -> Location:
    """An ``mlflow-artifacts:/…`` URI (with or without ``//host``), resolved."""
    if not uri.startswith(SCHEME):
        raise invalid(f"{uri!r} is not an {SCHEME}/ URI")
    rest = uri[len(SCHEME):]
    if rest.startswith("//"):  # mlflow-artifacts://host:port/path: the host is this server
        rest = rest[2:].split("/", 1)[1] if "/" in rest[2:] else ""
    return parse_location(rest)


__all__ = ["LOGGED_MODELS_DIR", "SCHEME", "Location", "logged_model_artifact_uri",
           "logged_model_run_path", "parse_artifact_uri", "parse_location",
           "run_artifact_uri"]
