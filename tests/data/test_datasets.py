"""Dataset versions end to end, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import ratchet
from ratchet.errors import IntegrityError, InvalidInput, NotFound


@pytest.fixture
def churn() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 2_000
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "tenure": rng.integers(0, 72, n),
            "charges": rng.normal(70, 20, n).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "churned": rng.random(n) < 0.2,
        }
    )


def test_log_get_and_read_back(workspace_on: Path, churn: pd.DataFrame) -> None:
    v1 = ratchet.data.log(churn, name="churn", source="warehouse.churn")
    assert (v1.name, v1.version, v1.row_count, v1.parent_version) == ("churn", 1, 2000, None)
    assert v1.source == "warehouse.churn" and len(v1.digest) == 64
    assert [c["name"] for c in v1.schema] == list(churn.columns)
    pd.testing.assert_frame_equal(v1.to_pandas(), churn, check_dtype=False)
    assert v1.to_arrow(columns=["plan"]).column_names == ["plan"]
    assert v1.profile.rows == 2000 and v1.profile.column("plan").distinct == 3

    again = ratchet.data.log(pl.from_pandas(churn), name="churn")  # same content: same version
    assert again.version == 1 and again.digest == v1.digest

    more = pd.concat([churn, churn.head(10).assign(customer_id=lambda d: d.customer_id + 10_000)])
    v2 = ratchet.data.log(more, name="churn")
    assert (v2.version, v2.parent_version, v2.row_count) == (2, 1, 2010)
    assert ratchet.data.get("churn").version == 2
    assert ratchet.data.get("churn@1").digest == v1.digest
    assert ratchet.data.get(f"churn@{v1.digest[:8]}").version == 1
    assert ratchet.data.get("churn@latest").version == 2
    assert [v.version for v in ratchet.data.list_versions("churn")] == [1, 2]
    summary = ratchet.data.list_datasets()
    assert [(s.name, s.versions, s.latest_version) for s in summary] == [("churn", 2, 2)]
    # zero-copy readers see the same rows
    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{v2.path}')").fetchall()
    assert count == [(2010,)]
    assert pl.read_parquet(v2.path).height == 2010


def test_runs_record_inputs_and_models_inherit_them(workspace: Path, churn: pd.DataFrame) -> None:
    from sklearn.linear_model import LogisticRegression

    with ratchet.start_run(experiment="churn") as run:
        ds = ratchet.data.log(churn, name="churn")
        run.log_input(ds, role="train")
        holdout = ratchet.data.log(churn.tail(500), name="churn-holdout", role="eval")
        X, y = churn[["tenure", "charges"]], churn["churned"]
        mv = ratchet.log_model(LogisticRegression().fit(X, y), name="churn-model")
    assert ds.created_by_run == run.id
    inputs = ratchet.get_run(run.id).inputs
    assert [(i.name, i.version, i.role) for i in inputs] == [
        ("churn", 1, "train"),
        ("churn-holdout", 1, "eval"),
    ]
    lineage = ratchet.models.lineage(f"models:/churn-model/{mv.version}")
    assert lineage.run is not None and lineage.run.inputs[0].digest == ds.digest
    assert ratchet.data.client().used_by("churn@1") == [(run.id, "train")]
    assert holdout.row_count == 500


def test_files_log_and_bad_input(workspace: Path, churn: pd.DataFrame, tmp_path: Path) -> None:
    csv = tmp_path / "churn.csv"
    churn.to_csv(csv, index=False)
    v = ratchet.data.log(csv, name="churn-csv")
    assert v.row_count == 2000 and v.source == str(csv)
    for bad in ("", "a/b", "../x", "has space", "x" * 200, ".hidden"):
        with pytest.raises(InvalidInput, match="dataset name"):
            ratchet.data.log(churn, name=bad)
    with pytest.raises(InvalidInput, match="empty"):
        ratchet.data.log(churn.head(0), name="empty")
    with pytest.raises(InvalidInput, match="no run is active"):
        ratchet.data.log(churn, name="churn-csv", role="train")
    with pytest.raises(NotFound, match="no dataset named"):
        ratchet.data.get("ghost")
    with pytest.raises(NotFound, match="no version 9"):
        ratchet.data.get("churn-csv@9")
    with pytest.raises(InvalidInput):
        ratchet.data.get("churn-csv@zz")
    with pytest.raises(InvalidInput, match="at least"):
        ratchet.data.get("churn-csv@ab")
    with pytest.raises(InvalidInput, match="no column"):
        v.to_pandas(columns=["nope"])


def test_tampered_snapshot_is_detected(workspace: Path, churn: pd.DataFrame) -> None:
    v = ratchet.data.log(churn, name="churn")
    v.verify()
    path = v.path
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        v.verify()


def test_diff(workspace: Path, churn: pd.DataFrame) -> None:
    ratchet.data.log(churn, name="churn")
    changed = churn.copy()
    changed.loc[:99, "charges"] += 1000  # 100 changed rows
    changed = changed.drop(index=range(100, 150))  # 50 removed
    extra = churn.head(20).assign(customer_id=lambda d: d.customer_id + 50_000)
    changed = pd.concat([changed, extra]).assign(region="eu")  # 20 added, a new column
    ratchet.data.log(changed, name="churn")

    by_key = ratchet.data.diff("churn@1", "churn@2", key="customer_id")
    assert (by_key.rows_added, by_key.rows_removed, by_key.rows_changed) == (20, 50, 100)
    assert by_key.columns_added == ("region",) and by_key.columns_removed == ()
    charges = next(c for c in by_key.distribution if c.column == "charges")
    assert charges.changed
    as_rows = ratchet.data.diff("churn@1", "churn@2")
    assert (as_rows.rows_added, as_rows.rows_removed, as_rows.rows_changed) == (120, 150, None)
    same = ratchet.data.diff("churn@1", "churn@1")
    assert same.identical
    with pytest.raises(InvalidInput, match="key column"):
        ratchet.data.diff("churn@1", "churn@2", key="nope")
    with pytest.raises(InvalidInput, match="not unique"):
        ratchet.data.diff("churn@1", "churn@2", key="plan")
    assert by_key.to_dict()["rows_changed"] == 100


def test_arrow_types_round_trip(workspace: Path) -> None:
    table = pa.table(
        {
            "ts": pa.array(pd.date_range("2026-01-01", periods=4, freq="h", tz="UTC")),
            "i8": pa.array([1, 2, None, 4], pa.int8()),
            "s": pa.array(["a", None, "c", "d"]),
            'weird "col" é': pa.array([1.5, 2.5, 3.5, float("nan")]),
        }
    )
    v = ratchet.data.log(table, name="types")
    back = v.to_arrow()
    assert back.schema.equals(table.schema)  # types, tz and odd names survive
    pd.testing.assert_frame_equal(back.to_pandas(), table.to_pandas())  # NaN == NaN here


def test_validation_report_is_stored_with_the_run(workspace: Path, churn: pd.DataFrame) -> None:
    import json

    ds = ratchet.data.log(churn, name="churn")
    schema = ratchet.data.infer_schema(ds, name="churn")
    bad = churn.copy()
    bad.loc[:4, "tenure"] = -1
    with ratchet.start_run() as run:
        ok = ratchet.data.validate(ds, schema)
        report = ratchet.data.validate(bad, schema)
        with pytest.raises(ratchet.errors.ValidationFailed, match="tenure"):
            ratchet.data.validate(bad, schema, fail_on_error=True)
    assert ok.passed and not report.passed
    client = ratchet.data.client().tracking
    paths = [e.path for e in client.list_artifacts(run.id, "validation")]
    assert paths == ["validation/churn-2.json", "validation/churn-3.json", "validation/churn.json"]
    stored = json.loads(client.read_artifact(run.id, "validation/churn-2.json"))
    assert stored["failures"][0]["column"] == "tenure"
    assert stored["failures"][0]["failing_count"] == 5
    history = client.metric_history(run.id, "validation.churn.errors")
    assert [m.value for m in history] == [0.0, 1.0, 1.0]


def test_relogging_an_unchanged_file_skips_parsing(workspace: Path, churn: pd.DataFrame,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from ratchet.data import readers
    from ratchet.hashing import hash_file

    path = tmp_path / "churn.csv"
    churn.to_csv(path, index=False)
    first = ratchet.data.log(path, name="churn")
    recorded = ratchet.data.client().store.find_source("churn", str(path.resolve()))
    assert recorded is not None and recorded.raw_digest == hash_file(str(path))

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged file must not be parsed again")

    with monkeypatch.context() as m:
        m.setattr(readers, "open_source", no_parsing)
        assert ratchet.data.log(path, name="churn").version == first.version

    # Same size, same mtime, different bytes: the re-hash catches it.
    stat = path.stat()
    data = bytearray(path.read_bytes())
    index = data.index(b"basic")
    data[index:index + 5] = b"BASIC"
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    second = ratchet.data.log(path, name="churn")
    assert second.version == 2 and "BASIC" in set(second.to_pandas()["plan"])


def test_parquet_source_is_recorded_too(workspace: Path, churn: pd.DataFrame,
                                        tmp_path: Path) -> None:
    path = tmp_path / "churn.parquet"
    churn.to_parquet(path)
    v = ratchet.data.log(path, name="churn-pq")
    assert ratchet.data.log(path, name="churn-pq").version == v.version == 1
    assert ratchet.data.client().store.find_source("churn-pq", str(path.resolve())) is not None


def test_parquet_input_profile_matches_the_snapshot(workspace: Path, tmp_path: Path) -> None:
    # Parquet inputs are profiled from the input file while the snapshot is written.
    from ratchet.data.profile import profile_parquet

    rng = np.random.default_rng(5)
    n = 20_000
    frame = pd.DataFrame({
        "i": rng.integers(0, 50, n), "f": np.where(rng.random(n) < 0.05, np.nan, rng.random(n)),
        "s": rng.choice(["a", "b", "c"], n), "id": [f"u{i}" for i in range(n)],
        "t": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
        "b": rng.random(n) < 0.3,
    })
    path = tmp_path / "in.parquet"
    frame.to_parquet(path, row_group_size=3_000)
    version = ratchet.data.log(path, name="pq")
    # Equal up to float summation order (DuckDB aggregates row groups in parallel).
    assert _close(version.profile.to_dict(), profile_parquet(version.path).to_dict())


def _close(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9)
    return a == b


def test_large_csv_profile_streams_alongside_the_write(workspace: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from ratchet.data import catalog
    from ratchet.data.profile import profile_parquet

    monkeypatch.setattr(catalog, "STREAM_PROFILE_MIN_BYTES", 0)  # stream even small files
    rng = np.random.default_rng(11)
    n = 30_000
    frame = pd.DataFrame({
        "id": [f"u{i}" for i in range(n)], "x": rng.normal(size=n),
        "k": rng.integers(0, 10, n), "plan": rng.choice(["a", "b", "c"], n),
        "when": pd.date_range("2026-01-01", periods=n, freq="s").astype(str),
    })
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    version = ratchet.data.log(path, name="streamed")
    expected = profile_parquet(version.path, exact_distinct_max_rows=0,
                               exact_quantile_max_rows=0).to_dict()
    streamed = version.profile.to_dict()
    for got, want in zip(streamed["columns"], expected["columns"], strict=True):
        if not want["distinct_exact"]:  # HyperLogLog estimates: equal within their error
            assert got["distinct"] == pytest.approx(want["distinct"], rel=0.05)
            got["distinct"] = want["distinct"]
    assert _close(streamed, expected)
    assert version.profile.column("plan").top is not None

    bad = tmp_path / "bad.csv"
    bad.write_text("n\n" + "\n".join(str(i) for i in range(300_000)) + "\nnot-a-number\n")
    with pytest.raises(InvalidInput, match=r"bad\.csv"):
        ratchet.data.log(bad, name="bad")


def test_progress_reports_bytes_read_up_to_the_total(workspace: Path, churn: pd.DataFrame,
                                                     tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    pd.concat([churn] * 100).to_csv(path, index=False)  # several read blocks
    seen: list[tuple[int, int | None]] = []
    ratchet.data.log(path, name="progress", progress=lambda done, total: seen.append(
        (done, total)))
    size = path.stat().st_size
    assert len(seen) > 1 and all(total == size for _, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == size
    with pytest.raises(InvalidInput, match="source must be a string"):
        ratchet.data.log(churn, name="churn", source=123)  # type: ignore[arg-type]
