"""The trip-completion model's training pipeline, as the continuous-training controller runs
it (``policy.yaml``).

It receives ``data``: a dataset version of labeled rows, each with the entity keys
(``driver_id``, ``zone_id``), the time the request was answered (``requested_at``), the
request data the on-demand view reads (``distance_km``) and the label (``completed``).
The controller's retraining rows also hold the feature vector the server logged; the
pipeline does not train on it: it builds its training set with
``ratchet.features.training_set`` as of each row's time, with ``created_cutoff=True`` (a
row computed after the request never reaches it), from the same definitions the server
reads online, so what it learns from is what was served. The training set is recorded as
a dataset version (lineage: the monitor compares live traffic with it), and the model is
logged with the feature references, so a server takes entity keys only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ratchet
from ratchet.errors import InvalidInput

MODEL, TRAINING_SET = "trip-completion", "trip-completion-training-set"
KEYS = ["driver_id", "zone_id"]
TIME, LABEL = "requested_at", "completed"
REQUEST = ["distance_km"]  # the request fields of trip_context (an on-demand view)
FEATURES = ["driver_stats:trips", "driver_stats:acceptance", "driver_stats:rating",
            "zone_demand:open_requests", "zone_demand:surge", "trip_context:pickup_pressure"]
COLUMNS = [ref.split(":", 1)[1] for ref in FEATURES]  # training_set's output names
DEFINITIONS_FILE = Path(__file__).resolve().with_name("trip_features.py")


def import_on_demand_code() -> None:
    """Import ``trip_features`` as a server does (``--features-module``): its on-demand
    view's code then runs here as it runs there, under the module name it was registered
    with."""
    from ratchet.features.definition_modules import import_definitions

    import_definitions(str(DEFINITIONS_FILE))


# Not cached: the training set depends on the feature store as well as on ``data``.
@ratchet.step(dataset={"output": TRAINING_SET}, cache=False)
def training_frame(data: str, timestamp: str = TIME) -> pd.DataFrame:
    """The labeled rows joined with the features as of each row's ``timestamp``."""
    rows = ratchet.data.get(data).to_pandas()
    needed = [*KEYS, timestamp, *REQUEST, LABEL]
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise InvalidInput(
            f"training data {data}: no column {', '.join(map(repr, missing))} (it has "
            f"{', '.join(map(str, rows.columns))}); the rows need the entity keys, the time "
            f"each was answered, the request fields and the label (a CT policy adds the time "
            f"with data.timestamp: {timestamp})")
    import_on_demand_code()
    entity = rows[needed].copy()
    unlabeled = int(entity[LABEL].isna().sum())
    if unlabeled:
        raise InvalidInput(f"training data {data}: {unlabeled} of {len(entity)} rows have no "
                           f"{LABEL!r}; give labeled rows only")
    try:
        entity[timestamp] = pd.to_datetime(entity[timestamp], utc=True)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"training data {data}: column {timestamp!r} must hold the time "
                           f"each row was answered (UTC): {exc}") from None
    return ratchet.features.training_set(entity, features=FEATURES,
                                         timestamp_field=timestamp,
                                         created_cutoff=True).to_pandas()


@ratchet.step(model={"output": MODEL}, features=FEATURES)
def fit(train: pd.DataFrame, C: float = 1.0):
    """Fit on the rows whose features were all known; the model is registered with the
    feature references it reads (``features=``), so it serves from entity keys. The
    training set is this run's ``train`` input: the model's lineage names it, and the
    monitor compares live traffic (the logged vectors) with it."""
    if isinstance(C, bool) or not isinstance(C, int | float) or not C > 0:
        raise InvalidInput(f"C (the inverse regularization strength) must be a number > 0, "
                           f"got {C!r}")
    ratchet.data.log(train, TRAINING_SET, role="train")  # the same version: recorded as read
    known = train.dropna(subset=COLUMNS)
    if len(known) < 20:
        raise InvalidInput(f"only {len(known)} of {len(train)} training rows have every "
                           f"feature ({', '.join(COLUMNS)}); write or push feature rows that "
                           "cover the labeled rows' times")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    X, y = known[COLUMNS], known[LABEL].astype(int)
    model.fit(X, y)
    ratchet.log_params({"C": C, "rows": len(known),
                        "rows_without_features": len(train) - len(known)})
    ratchet.log_metrics({"train_accuracy": float(model.score(X, y))})
    return model


@ratchet.pipeline(experiment="trip-completion-ct")
def training(data: str, C: float = 1.0, timestamp: str = TIME):
    return fit(training_frame(data, timestamp), C)
