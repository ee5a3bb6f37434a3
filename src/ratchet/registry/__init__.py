"""Model registry: versions, aliases with history, loading by URI, lineage."""

from __future__ import annotations

from ratchet.registry.client import Lineage, LoggedModel, RegistryClient, ResolvedModel
from ratchet.registry.uris import ModelRef, parse_model_uri

__all__ = [
    "Lineage",
    "LoggedModel",
    "ModelRef",
    "RegistryClient",
    "ResolvedModel",
    "parse_model_uri",
]
