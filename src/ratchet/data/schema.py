"""Data schemas: propose one from data or a stored profile, save it as YAML, load it back.

A schema is a plain pandera ``DataFrameSchema``: ratchet does not invent a validation
engine, it proposes a good first draft and keeps the YAML a user edits honest.

    schema = infer_schema(df, name="churn")      # dtype, nullable, ranges, categories, unique
    save_schema(schema, "schemas/churn.yaml")    # edit it, commit it next to the code
    schema = load_schema("schemas/churn.yaml")

Severity: a check carrying pandera's own ``raise_warning: true`` is a *warning* (recorded
and shown, the step goes on); every other check — and dtype, nullability, uniqueness and
a missing column — is an *error* (fails the step). pandera's YAML keeps ``raise_warning``,
so severity needs no side channel; ``set_severity`` flips it from Python.

pandas and pandera are imported inside the functions so that ``import ratchet`` stays fast.
"""

from __future__ import annotations

from ratchet.data.frames import to_pandas
from ratchet.data.schema_inference import infer_schema
from ratchet.data.schema_severity import SEVERITIES, check_severity, set_severity
from ratchet.data.schema_yaml import YAML_HEADER, load_schema, save_schema

__all__ = [
    "SEVERITIES",
    "YAML_HEADER",
    "check_severity",
    "infer_schema",
    "load_schema",
    "save_schema",
    "set_severity",
    "to_pandas",
]
