"""References to stored objects: one grammar for datasets and models.

A reference names one version of a named object. ``@`` means the same for every kind:
what follows it picks the version.

=========================  ==========================================================
``churn``                  datasets: the latest version (a model needs a selector)
``churn@latest``           the latest (highest-numbered) version
``churn@3``                version 3 — digits after ``@`` are always a version number
``churn@champion``         models: the version the alias ``champion`` points at now
``churn@1f3a9c``           datasets: the version whose content hash starts so (hex)
``churn/3``                models: version 3 (the form of MLflow's ``models:/churn/3``)
``models:/churn/3``        the MLflow URIs: ``models:/<name>/<version>``,
``models:/churn@champion`` ``models:/<name>@<alias>``, ``models:/<name>/latest``;
``runs:/<run id>/model``   and a model logged in a run
=========================  ==========================================================

So an alias can never look like a version: aliases made only of digits, and ``latest``,
are refused when set (``ratchet.names.alias_name``). Versions are numbered from 1 and
kept in 64-bit integers. Deployments are named, never versioned: a deployment's history is
its plan revisions (``ratchet deploy history``).

``parse_reference`` splits the text and reads the selector; the dataset and model parsers
(``ratchet.data.version.DatasetRef``, ``ratchet.registry.uris.parse_model_uri``) build on
it, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ratchet.errors import InvalidInput

Kind = Literal["dataset", "model"]
LATEST = "latest"
# Versions are stored as 64-bit integers; a larger number can name no version.
MAX_VERSION = 2**63 - 1

_DIGITS = re.compile(r"[0-9]+")        # ASCII only: str.isdigit() accepts '²'
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class Reference:
    """A parsed ``name[@selector]``: at most one of ``version``, ``alias``,
    ``digest_prefix`` is set; none of them means the latest version."""

    kind: Kind
    name: str
    version: int | None = None
    alias: str | None = None           # models only
    digest_prefix: str | None = None   # datasets only

    @property
    def latest(self) -> bool:
        return self.version is None and self.alias is None and self.digest_prefix is None

    def __str__(self) -> str:
        selector = self.version if self.version is not None else (
            self.alias or self.digest_prefix or LATEST)
        return f"{self.name}@{selector}"


def is_version(selector: str) -> bool:
    """True when ``selector`` (the text after ``@`` or ``/``) is a version number."""
    return _DIGITS.fullmatch(selector) is not None


def parse_version(digits: str, *, kind: Kind, where: str) -> int:
    """The version number written ``digits`` (ASCII), or InvalidInput naming ``where``."""
    if not is_version(digits):
        raise InvalidInput(f"{where!r}: {digits!r} is not a version number")
    # Compare as text first: int() of a huge string is slow, and the stores would overflow
    # on it (sqlite3 raises OverflowError past 64 bits).
    version = int(digits) if len(digits.lstrip("0")) <= 19 else MAX_VERSION + 1
    if version < 1:
        raise InvalidInput(f"{where!r}: {kind} versions are numbered from 1")
    if version > MAX_VERSION:
        raise InvalidInput(f"{where!r}: no {kind} version is that large (the maximum is "
                           f"{MAX_VERSION}); give a version number as listed by "
                           f"`ratchet {'data' if kind == 'dataset' else 'models'} versions`")
    return version


def parse_reference(text: object, kind: Kind) -> Reference:
    """Parse ``name``, ``name@latest``, ``name@<digits>`` and ``name@<label>`` (an alias
    for models, a content-hash prefix for datasets). The name is returned as written
    (trimmed); each kind checks its own name rule."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"not a {kind} reference: {text!r}")
    name, sep, selector = text.strip().partition("@")
    if not sep:
        if kind == "model":
            raise InvalidInput(
                f"{text!r}: say which version of model {name!r}: {name}@<version>, "
                f"{name}@<alias> or {name}@latest")
        return Reference(kind, name)
    if not name:
        raise InvalidInput(f"{text!r}: a {kind} reference starts with the {kind} name")
    if selector == LATEST:
        return Reference(kind, name)
    if is_version(selector):
        return Reference(kind, name, version=parse_version(selector, kind=kind, where=text))
    if kind == "dataset":
        if _HEX.fullmatch(selector):
            return Reference(kind, name, digest_prefix=selector)
        raise InvalidInput(f"{text!r}: after '@' give a version number, 'latest' or a hex "
                           "content-hash prefix")
    if not selector or "@" in selector or "/" in selector:
        raise InvalidInput(f"{text!r}: after '@' give a version number, an alias or "
                           "'latest'")
    return Reference(kind, name, alias=selector)


__all__ = ["LATEST", "MAX_VERSION", "Kind", "Reference", "is_version", "parse_reference",
           "parse_version"]
