"""Model URIs: ``models:/name/3``, ``models:/name@alias``, ``models:/name/latest``,
``runs:/<run id>/<artifact path>`` — and shorthand ``name@alias`` / ``name/3`` for the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ratchet.errors import InvalidInput

_MODELS_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[0-9]+|latest)$")
_MODELS_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
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
        text = "models:/" + text  # CLI shorthand: churn@champion, churn/3
    if m := _MODELS_ALIAS.match(text):
        return ModelRef(name=m["name"], alias=m["alias"])
    if m := _MODELS_VERSION.match(text):
        if m["version"] == "latest":
            return ModelRef(name=m["name"], latest=True)
        digits = m["version"]
        if len(digits.lstrip("0")) > 18:  # the stores keep versions in 64-bit integers
            raise InvalidInput(f"{uri!r}: version {digits} is out of range")
        version = int(digits)
        if version < 1:
            raise InvalidInput(f"{uri!r}: model versions are numbered from 1")
        return ModelRef(name=m["name"], version=version)
    if m := _RUNS.match(text):
        return ModelRef(run_id=m["run_id"], artifact_path=m["path"] or "model")
    raise InvalidInput(
        f"not a model URI: {uri!r}; expected models:/<name>/<version>, models:/<name>@<alias>, "
        "models:/<name>/latest or runs:/<run id>/<path>"
    )
