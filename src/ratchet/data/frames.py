"""A table of any supported kind as a pandas DataFrame (the input of schema inference
and validation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd


def to_pandas(data: Any, *, where: str) -> pd.DataFrame:
    """Return ``data`` as a pandas DataFrame (pandas as is; pyarrow / polars converted).

    Conversion goes through Arrow so dtypes match what ``pd.read_parquet`` produces.
    polars is never imported unless a polars object is passed in.
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    module = type(data).__module__ or ""
    if module.startswith("pyarrow") and hasattr(data, "schema") and hasattr(data, "to_pandas"):
        return data.to_pandas()
    if module.startswith("polars"):
        import polars as pl

        if isinstance(data, pl.LazyFrame):
            raise InvalidInput(f"{where}: got a polars LazyFrame; call .collect() on it first")
        if isinstance(data, pl.DataFrame):
            return data.to_arrow().to_pandas()
    if isinstance(data, pd.Series):
        raise InvalidInput(f"{where}: got a pandas Series; pass a DataFrame (series.to_frame())")
    to_arrow = getattr(data, "to_arrow", None)  # e.g. a ratchet DatasetVersion
    if callable(to_arrow) and not isinstance(data, type):
        table = to_arrow()
        if hasattr(table, "to_pandas") and hasattr(table, "schema"):
            return table.to_pandas()
    raise InvalidInput(
        f"{where}: expected a pandas DataFrame, pyarrow Table or polars DataFrame, "
        f"got {type(data).__name__}"
    )


__all__ = ["to_pandas"]
