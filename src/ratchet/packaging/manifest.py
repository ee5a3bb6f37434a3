"""The manifest written next to a packaged model: what it is and how to load it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ratchet.atomic import write_atomic
from ratchet.errors import InvalidInput
from ratchet.json_safe import json_safe
from ratchet.safe_load import load_json

MANIFEST_FILENAME = "ratchet-model.json"
# Flavor-specific extras (e.g. which sklearn wrapper a native booster came from).
FLAVOR_FILENAME = "flavor.json"
# Bumped on incompatible changes so an old ratchet refuses a newer manifest clearly.
MANIFEST_VERSION = 1
# Input examples are documentation, not data: keep the first rows only.
MAX_EXAMPLE_ROWS = 10

INPUT_FORMATS = ("dataframe", "ndarray")


@dataclass(frozen=True)
class Manifest:
    flavor: str
    model_file: str
    library_versions: dict[str, str]
    signature: dict[str, Any] | None
    input_example: list[dict[str, Any]] | None
    metrics: dict[str, float]
    safe: bool
    has_predict_proba: bool
    created_at: str = field(default_factory=lambda: utc_now_iso())
    ratchet_version: str = field(default_factory=lambda: ratchet_version())
    # What the model was trained on: "dataframe", "ndarray", or None when unknown.
    # Decides whether validated requests reach the model as a frame or an array.
    input_format: str | None = None
    # The feature-store inputs (``model_features.ModelFeatures.to_dict``), or None: a
    # model served from entity keys when set.
    features: dict[str, Any] | None = None

    def to_json(self) -> str:
        data = {"manifest_version": MANIFEST_VERSION, **asdict(self)}
        try:
            return json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidInput(f"model manifest is not JSON-serializable: {e}") from e

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        data = load_json(text, f"{where}: model manifest")  # bounded nesting
        if not isinstance(data, dict):
            raise InvalidInput(f"{where}: model manifest must be a JSON object")
        version = data.get("manifest_version", MANIFEST_VERSION)
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise InvalidInput(
                f"{where}: manifest version {version!r} is newer than this ratchet supports "
                f"({MANIFEST_VERSION}); upgrade ratchet to load this model"
            )
        checks: dict[str, tuple[type | tuple[type, ...], bool]] = {
            # field: (accepted types, may be null)
            "flavor": (str, False),
            "model_file": (str, False),
            "library_versions": (dict, False),
            "signature": (dict, True),
            "input_example": (list, True),
            "metrics": (dict, False),
            "safe": (bool, False),
            "has_predict_proba": (bool, False),
            "created_at": (str, False),
            "ratchet_version": (str, False),
            "input_format": (str, True),
            "features": (dict, True),
        }
        for name, (types, nullable) in checks.items():
            if name not in data:
                if name in ("input_format", "features"):
                    continue
                raise InvalidInput(f"{where}: model manifest has no {name!r} field")
            value = data[name]
            if value is None and nullable:
                continue
            if not isinstance(value, types):
                raise InvalidInput(
                    f"{where}: model manifest field {name!r} has the wrong type "
                    f"({type(value).__name__})"
                )
        model_file = data["model_file"]
        if not model_file or Path(model_file).name != model_file:
            # A path outside the model directory would let a manifest point anywhere.
            raise InvalidInput(
                f"{where}: 'model_file' must be a plain file name, got {model_file!r}"
            )
        versions = data["library_versions"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
            raise InvalidInput(f"{where}: 'library_versions' must map names to version strings")
        metrics = data["metrics"]
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()
        ):
            raise InvalidInput(f"{where}: 'metrics' must map names to numbers")
        example = data["input_example"]
        if example is not None and not all(isinstance(r, dict) for r in example):
            raise InvalidInput(f"{where}: 'input_example' must be a list of records (objects)")
        if data.get("input_format") not in (None, *INPUT_FORMATS):
            raise InvalidInput(f"{where}: 'input_format' must be one of {INPUT_FORMATS} or null")
        features = data.get("features")
        if features is not None:
            from ratchet.packaging.model_features import ModelFeatures

            ModelFeatures.from_dict(features, where)  # a bad section fails at load, clearly
        return cls(
            flavor=data["flavor"],
            model_file=model_file,
            library_versions=dict(versions),
            signature=data["signature"],
            input_example=example,
            metrics={k: float(v) for k, v in metrics.items()},
            safe=data["safe"],
            has_predict_proba=data["has_predict_proba"],
            created_at=data["created_at"],
            ratchet_version=data["ratchet_version"],
            input_format=data.get("input_format"),
            features=features,
        )


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ratchet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ratchet-mlops")
    except PackageNotFoundError:
        return "0+unknown"


def example_records(X: Any, names: list[str] | None = None) -> list[dict[str, Any]]:
    """The first rows of an input example as JSON-ready records (NaN -> None)."""
    from ratchet.packaging.signature import as_frame

    frame = as_frame(X, names).head(MAX_EXAMPLE_ROWS)
    return [
        {str(k): json_safe(v) for k, v in row.items()} for row in frame.to_dict(orient="records")
    ]


def write_json_atomic(path: Path, text: str) -> None:
    """Write ``text`` atomically and durably (``ratchet.atomic``): a reader never sees half
    a file, and a crash leaves the old one or the new one."""
    write_atomic(path, text)


def write_flavor_metadata(directory: Path, data: dict[str, Any]) -> None:
    write_json_atomic(directory / FLAVOR_FILENAME, json.dumps(data, indent=2, sort_keys=True))


def read_flavor_metadata(directory: Path) -> dict[str, Any]:
    path = directory / FLAVOR_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InvalidInput(f"{path}: flavor metadata is missing; re-save the model") from e
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path}: flavor metadata is not valid JSON ({e})") from e
    data = load_json(text, f"{path}: flavor metadata")  # bounded nesting
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: flavor metadata must be a JSON object")
    return data


__all__ = ["FLAVOR_FILENAME", "MANIFEST_FILENAME", "Manifest"]
