"""Fixtures shared with the serving tests (a registry of churn models)."""

from __future__ import annotations

from tests.serving.conftest import churn_registry, serving_settings  # noqa: F401
