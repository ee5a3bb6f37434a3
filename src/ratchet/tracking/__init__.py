"""Experiment tracking: experiments, runs, params, metrics, tags, artifacts, inputs."""

from __future__ import annotations

from ratchet.tracking.client import ActiveRun, TrackingClient

__all__ = ["ActiveRun", "TrackingClient"]
