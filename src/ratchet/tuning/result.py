"""What ``tune`` returns: the best trial, its run, every trial, and registering its model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ratchet.errors import NotFound

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from ratchet.store import ModelVersion
    from ratchet.tracking.client import TrackingClient

RUN_ID_ATTR = "ratchet.run_id"  # Optuna user attr on the study and on each trial


class TuningResult:
    """The study after ``tune``; everything is read from the study, so it includes trials
    from earlier (resumed) calls and from other processes working on the same study."""

    def __init__(self, study: optuna.Study, run_id: str, metric: str,
                 tracking: TrackingClient) -> None:
        self.study = study
        self.run_id = run_id  # the study's parent run
        self.metric = metric
        self.tracking = tracking

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        try:
            return self.study.best_trial
        except ValueError:
            raise NotFound(f"study {self.name!r} has no completed trial yet") from None

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.best_trial.params)

    @property
    def best_value(self) -> float:
        value = self.best_trial.value
        assert value is not None
        return value

    @property
    def best_run_id(self) -> str:
        best = self.best_trial
        run_id = best.user_attrs.get(RUN_ID_ATTR)
        if run_id is None:
            raise NotFound(f"trial {best.number} of study {self.name!r} has no ratchet run "
                           "(it was added outside ratchet.tuning.tune)")
        return str(run_id)

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial: Optuna's ``trials_dataframe()`` plus the trial's ``run_id``."""
        frame = self.study.trials_dataframe()
        column = f"user_attrs_{RUN_ID_ATTR}"
        if column in frame.columns:
            frame = frame.rename(columns={column: "run_id"})
        else:
            frame["run_id"] = None
        return frame

    def register_best(self, model_name: str, artifact_path: str = "model", *,
                      description: str | None = None,
                      tags: Mapping[str, str] | None = None) -> ModelVersion:
        """Register the model the best trial logged (``ratchet.log_model(model)`` inside the
        objective) as a new version of ``model_name``."""
        from ratchet.registry.client import MANIFEST_FILENAME, RegistryClient

        best, run_id = self.best_trial, self.best_run_id
        manifest = f"{artifact_path.strip('/')}/{MANIFEST_FILENAME}"
        if not any(e.path == manifest for e in self.tracking.list_artifacts(run_id,
                                                                            artifact_path)):
            raise NotFound(
                f"the best trial of study {self.name!r} (trial-{best.number}, run {run_id}) "
                f"logged no model at {artifact_path!r}: call ratchet.log_model(model) inside "
                "the objective, or pass the artifact_path= it used")
        all_tags = {"ratchet.tuning.study": self.name,
                    "ratchet.tuning.trial": str(best.number), **(tags or {})}
        return self.tracking.workspace.client(RegistryClient).register(
            f"runs:/{run_id}/{artifact_path}", model_name, description=description,
            tags=all_tags)

    def __repr__(self) -> str:
        try:
            best = f"best {self.metric}={self.best_value:g} at {self.best_params}"
        except NotFound:
            best = "no completed trial"
        return f"TuningResult({self.name!r}, {len(self.study.trials)} trials, {best})"
