"""Multivariate drift: can a classifier tell the reference rows from the current ones?

Per-column tests miss a change in how columns move together (the same marginals, a new
correlation). A gradient-boosted classifier is trained on a sample of each side, labelled
by side, and scored on held-out rows: a ROC AUC near 0.5 means the two are
indistinguishable; above the threshold (0.55 by default) the data drifted as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput
from ratchet.monitoring.drift import NUMERIC, column_kind

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_AUC_THRESHOLD = 0.55
DEFAULT_SAMPLE = 10_000


@dataclass(frozen=True)
class ClassifierDrift:
    auc: float
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classifier_drift(reference: pd.DataFrame, current: pd.DataFrame, *,
                     columns: Sequence[str] | None = None, sample: int = DEFAULT_SAMPLE,
                     threshold: float = DEFAULT_AUC_THRESHOLD, seed: int = 0
                     ) -> ClassifierDrift:
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    if not 0.5 <= threshold < 1:
        raise InvalidInput(f"threshold is a ROC AUC in [0.5, 1), got {threshold!r}")
    if columns is None:
        columns = [c for c in reference.columns if c in current.columns]
    if not columns:
        raise InvalidInput("no columns in common to tell reference from current by")
    ref = reference[list(columns)].sample(n=min(sample, len(reference)), random_state=seed)
    cur = current[list(columns)].sample(n=min(sample, len(current)), random_state=seed + 1)
    if min(len(ref), len(cur)) < 20:
        raise InvalidInput(f"need at least 20 rows on each side, got {len(ref)} and {len(cur)}")
    both = pd.concat([ref, cur], ignore_index=True)
    features = {}
    categorical = []
    for name in columns:
        if column_kind(both[name]) == NUMERIC:
            features[name] = both[name].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            codes, _ = pd.factorize(both[name], use_na_sentinel=True)
            features[name] = np.where(codes < 0, np.nan, codes).astype(np.float64)
            categorical.append(len(features) - 1)
    X = np.column_stack(list(features.values()))
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, stratify=y,
                                                        random_state=seed)
    # Categorical features are ordinal codes; more than 255 levels would exceed HGB's bins.
    small_categorical = [i for i in categorical if np.nanmax(X[:, i], initial=0) < 255]
    model = HistGradientBoostingClassifier(max_iter=100, random_state=seed,
                                           categorical_features=small_categorical or None)
    model.fit(X_train, y_train)
    auc = float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
    return ClassifierDrift(auc, threshold, auc > threshold, len(ref), len(cur), tuple(columns))
