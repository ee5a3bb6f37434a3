"""Model URIs: ``models:/name/3``, ``models:/name@alias``, ``models:/name@3``,
``models:/name/latest``, ``runs:/<run id>/<artifact path>`` — and the shorthand without
``models:/`` (``name@alias``, ``name@3``, ``name/3``). What follows ``@`` is read by the
one reference grammar (``ratchet.refs``): digits are a version, ``latest`` the latest,
anything else an alias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ratchet.errors import InvalidInput
from ratchet.refs import parse_reference, parse_version

_MODELS_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[0-9]+|latest)$")
_MODELS_AT = re.compile(r"^models:/(?P<ref>[^/@]+@[^/@]+)$")
_RUNS = re.compile(r"^runs:/(?P<run_id>[0-9a-f]{32})(?:/(?P<path>.+))?$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI: exactly one of (version, alias, run_id) picks the model."""

    name: str | None = None
    version: int | None = None
    alias: str | None = None
    latest: bool = False
    run_id: str | None = None
    artifact_path: str = "model"


def parse_model_uri(uri: str) -> ModelRef:
    if not isinstance(uri, str):
        raise InvalidInput(f"model URI must be a string, got {uri!r}")
    text = uri.strip()
    if not text.startswith(("models:/", "runs:/")):
        text = "models:/" + text  # shorthand: churn@champion, churn@3, churn/3
    if m := _MODELS_AT.match(text):
        ref = parse_reference(m["ref"], "model")
        if ref.latest:
            return ModelRef(name=ref.name, latest=True)
        return ModelRef(name=ref.name, version=ref.version, alias=ref.alias)
    if m := _MODELS_VERSION.match(text):
        if m["version"] == "latest":
            return ModelRef(name=m["name"], latest=True)
        return ModelRef(name=m["name"],
                        version=parse_version(m["version"], kind="model", where=uri))
    if m := _RUNS.match(text):
        return ModelRef(run_id=m["run_id"], artifact_path=m["path"] or "model")
    raise InvalidInput(
        f"not a model URI: {uri!r}; expected models:/<name>/<version>, models:/<name>@<alias>, "
        "models:/<name>@<version>, models:/<name>/latest or runs:/<run id>/<path> (or the "
        "short forms <name>@<alias>, <name>@<version>, <name>/<version>)"
    )
