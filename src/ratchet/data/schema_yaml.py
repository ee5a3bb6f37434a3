"""Schemas as pandera YAML: save one (commented, atomically) and load it back strictly
(keys pandera would silently ignore are refused)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.atomic import write_atomic
from ratchet.data.schema_severity import check_label
from ratchet.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import pandera.pandas as pa

# Written above the pandera YAML by save_schema: the file is meant to be edited by hand.
YAML_HEADER = """\
# ratchet data schema (pandera YAML): edit it, keep it next to your code, and load it
# with ratchet.data.load_schema(path). Columns not listed here are allowed (strict: false).
#
# Severity: a check is an ERROR (fails the pipeline step that validates) unless it has
# `raise_warning: true`, which makes it a WARNING (recorded in the report, step goes on).
# Checks written in short form take the long form to carry options, e.g.
#     isin: [a, b]          becomes      isin:
#                                          allowed_values: [a, b]
#                                          raise_warning: true
#     in_range:
#       min_value: 0
#       max_value: 120
#       raise_warning: true
# dtype, nullable, unique and a missing column are always errors.
"""

# Keys pandera's schema YAML understands at the top level; anything else is a typo that
# pandera would silently ignore, so load_schema rejects it.
_TOP_LEVEL_KEYS = frozenset(
    {
        "schema_type",
        "version",
        "api",
        "dataframe_library",
        "columns",
        "checks",
        "index",
        "multiindex",
        "dtype",
        "coerce",
        "strict",
        "name",
        "ordered",
        "unique",
        "report_duplicates",
        "unique_column_names",
        "add_missing_columns",
        "title",
        "description",
        "metadata",
        "drop_invalid_rows",
    }
)
_COLUMN_KEYS = frozenset(
    {
        "title",
        "description",
        "dtype",
        "nullable",
        "checks",
        "name",
        "unique",
        "coerce",
        "required",
        "regex",
        "default",
        "report_duplicates",
        "drop_invalid_rows",
        "metadata",
    }
)


def save_schema(schema: pa.DataFrameSchema, path: str | os.PathLike[str]) -> Path:
    """Write ``schema`` as commented pandera YAML to ``path`` atomically; return the path.

    Refuses (InvalidInput) a schema that YAML cannot hold — e.g. a custom lambda check,
    which pandera would otherwise drop without a word.
    """
    import pandera.pandas as pa
    import yaml

    from ratchet.safe_load import load_yaml

    if not isinstance(schema, pa.DataFrameSchema):
        raise InvalidInput(
            f"save_schema: expected a pandera DataFrameSchema, got {type(schema).__name__}"
        )
    target = Path(path)
    try:
        with warnings.catch_warnings():  # pandera warns about checks it drops: we raise below
            warnings.filterwarnings("ignore", "Only registered checks", UserWarning)
            body = schema.to_yaml()
    except yaml.YAMLError as e:
        raise InvalidInput(
            f"save_schema: schema {schema.name!r} holds a value YAML cannot write ({_one_line(e)}); "
            "use plain numbers, strings or datetimes in checks"
        ) from e
    assert body is not None
    _ensure_checks_survive(schema, load_yaml(body, "save_schema"))
    text = YAML_HEADER + body
    return write_atomic(target, text)


def _ensure_checks_survive(schema: pa.DataFrameSchema, raw: Any) -> None:
    """pandera silently omits unregistered checks from YAML: fail loudly instead."""
    loaded = _deserialize(raw, where="save_schema")
    pairs = [(None, schema.checks, loaded.checks)]
    pairs += [
        (k, col.checks, loaded.columns[k].checks if k in loaded.columns else [])
        for k, col in schema.columns.items()
    ]
    for column, before, after in pairs:
        if len(before) != len(after):
            kept = {check_label(c) for c in after}
            lost = [check_label(c) for c in before if check_label(c) not in kept] or ["?"]
            where = "dataframe" if column is None else f"column {column!r}"
            raise InvalidInput(
                f"save_schema: {where} check {lost[0]!r} cannot be written to YAML (custom, "
                "unregistered check); register it with pandera.extensions.register_check_method "
                "or remove it before saving"
            )


def load_schema(path: str | os.PathLike[str]) -> pa.DataFrameSchema:
    """Read a schema YAML written by ``save_schema`` (or by hand, in pandera's format)."""
    from ratchet.safe_load import compose_yaml, load_yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise NotFound(
            f"schema file {p} does not exist; write one with "
            "ratchet.data.save_schema(ratchet.data.infer_schema(df), path)"
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{p}: cannot read schema file: {_one_line(e)}") from e
    # Bounded in depth and alias expansion; YAML errors become "<file>:<line>: ..."
    node = compose_yaml(text, str(p))
    raw = load_yaml(text, str(p))
    _check_structure(raw, node, p)
    return _deserialize(raw, where=str(p))


def _deserialize(raw: Any, *, where: str) -> pa.DataFrameSchema:
    from pandera.io import pandas_io

    try:
        return pandas_io.deserialize_schema(raw)
    except Exception as e:  # pandera raises many types for bad content; all are user input
        raise InvalidInput(f"{where}: not a valid pandera schema: {_one_line(e)}") from e


def _check_structure(raw: Any, node: Any, path: Path) -> None:
    """Reject what pandera would misread or silently ignore, pointing at the line."""
    import pandera.pandas as pa

    if not isinstance(raw, dict) or not isinstance(raw.get("columns", {}), dict | list | None):
        raise InvalidInput(
            f"{path}: not a pandera schema: expected a mapping with 'columns', "
            f"got {type(raw).__name__}"
        )
    if raw.get("schema_type", "dataframe") != "dataframe":
        raise InvalidInput(
            f"{_at(path, node, 'schema_type')}: schema_type must be 'dataframe', "
            f"got {raw['schema_type']!r}"
        )
    for key in raw:
        if key not in _TOP_LEVEL_KEYS:
            raise InvalidInput(f"{_at(path, node, key)}: unknown schema key {key!r}")
    if "columns" not in raw and "checks" not in raw:
        raise InvalidInput(f"{path}: not a pandera schema: no 'columns' (or 'checks') key")
    columns = raw.get("columns")
    if not isinstance(columns, dict):
        return
    for col, spec in columns.items():
        if spec is None:  # `age:` with nothing under it: any dtype, required
            columns[col] = {}
            continue
        if not isinstance(spec, dict):
            raise InvalidInput(
                f"{_at(path, node, 'columns', col)}: column {col!r} must be a mapping "
                f"(dtype, nullable, checks...), got {type(spec).__name__}"
            )
        for key in spec:
            known = key in _COLUMN_KEYS or callable(getattr(pa.Check, str(key), None))
            if not known:
                raise InvalidInput(
                    f"{_at(path, node, 'columns', col, key)}: column {col!r}: unknown key "
                    f"{key!r} (not a column option nor a pandera check)"
                )


def _at(path: Path, node: Any, *keys: Any) -> str:
    """``path:line`` of the YAML key at ``keys`` (``path`` alone if it cannot be found)."""
    line = None
    for key in keys:
        if node is None or not hasattr(node, "value") or not isinstance(node.value, list):
            break
        for k_node, v_node in node.value:
            if getattr(k_node, "value", None) == str(key):
                line = k_node.start_mark.line + 1
                node = v_node
                break
        else:
            break
    return f"{path}:{line}" if line is not None else str(path)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


__all__ = ["YAML_HEADER", "load_schema", "save_schema"]
