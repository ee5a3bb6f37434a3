"""Autologging: record params, training metrics, the fitted model and its signature from
ordinary library calls, without changing the user's training code."""

from __future__ import annotations

from ratchet.autolog.sklearn import autolog as sklearn_autolog


def autolog(*, log_models: bool = True, registered_model_name: str | None = None,
            disable: bool = False) -> None:
    """Turn on autologging for every supported library (today: scikit-learn)."""
    sklearn_autolog(log_models=log_models, registered_model_name=registered_model_name,
                    disable=disable)


__all__ = ["autolog", "sklearn_autolog"]
