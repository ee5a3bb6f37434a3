"""Natively parsed model files (LightGBM, XGBoost, skops files holding their Boosters)
are loaded in a child process first: a malformed one is refused, the caller lives."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ratchet.errors import InvalidInput, RatchetError
from ratchet.packaging import load_model, probe, save_model


def _frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.uniform(size=300)})
    return X, (X["a"] + X["b"] > 0.5).astype(int)


def lightgbm_model(directory: Path) -> Path:
    X, y = _frame()
    save_model(lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y), directory, input_example=X)
    return directory / "model.txt"


def corrupt_right_child(text: str) -> str:
    """The issue's mutation: the first right_child index becomes 99999999999."""
    return re.sub(r"right_child=-?\d+", "right_child=99999999999", text, count=1)


def test_unprotected_load_of_the_mutated_file_kills_the_process(tmp_path: Path) -> None:
    # The control: without the probe, this file takes down whoever loads it.
    path = lightgbm_model(tmp_path / "m")
    path.write_text(corrupt_right_child(path.read_text()))
    code = (
        "import lightgbm, numpy; "
        f"b = lightgbm.Booster(model_file={str(path)!r}); b.predict(numpy.zeros((3, 2)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert done.returncode < 0, done  # killed by a signal (SIGABRT / SIGSEGV)


def test_mutated_lightgbm_file_is_refused_and_the_caller_survives(tmp_path: Path) -> None:
    path = lightgbm_model(tmp_path / "m")
    path.write_text(corrupt_right_child(path.read_text()))
    with pytest.raises(InvalidInput, match=r"model\.txt.*killed a probe process with SIG"):
        load_model(tmp_path / "m")
    # The refusal is remembered for these bytes: asking again is refused the same way.
    with pytest.raises(InvalidInput, match="SIG"):
        load_model(tmp_path / "m")


def test_good_lightgbm_file_is_probed_once_per_content(tmp_path: Path) -> None:
    lightgbm_model(tmp_path / "m")
    before = len(probe._verdicts)
    first = load_model(tmp_path / "m")
    assert len(probe._verdicts) == before + 1
    shutil.copytree(tmp_path / "m", tmp_path / "copy")  # same bytes elsewhere: no new probe
    second = load_model(tmp_path / "copy")
    assert len(probe._verdicts) == before + 1
    example = first.manifest.input_example
    np.testing.assert_array_equal(first.predict(example), second.predict(example))


@pytest.mark.parametrize("seed", range(8))
def test_fuzzed_lightgbm_files_never_kill_the_caller(seed: int, tmp_path: Path) -> None:
    path = lightgbm_model(tmp_path / "m")
    lines = path.read_text().split("\n")
    rng = random.Random(seed)
    fields = (
        "left_child",
        "right_child",
        "split_feature",
        "num_leaves",
        "threshold",
        "decision_type",
        "num_cat",
        "leaf_value",
        "tree_sizes",
        "max_feature_idx",
    )
    targets = [i for i, line in enumerate(lines) if line.split("=")[0] in fields]
    for i in rng.sample(targets, 3):
        key, values = lines[i].split("=", 1)
        tokens = values.split(" ")
        tokens[rng.randrange(len(tokens))] = str(
            rng.choice([-(2**31), -7, 2**31 + 5, 99999999999, 40000, 3])
        )
        lines[i] = f"{key}={' '.join(tokens)}"
    path.write_text("\n".join(lines))
    try:
        model = load_model(tmp_path / "m")
    except RatchetError as e:
        assert isinstance(e, InvalidInput)
        assert "model.txt" in str(e)
    else:
        assert model.manifest.input_example is not None
        model.predict(model.manifest.input_example)  # the probe ran exactly this first


def test_skops_file_holding_a_mutated_lightgbm_booster_is_refused(tmp_path: Path) -> None:
    X, y = _frame()
    pipe = Pipeline(
        [("s", StandardScaler()), ("m", lgb.LGBMClassifier(n_estimators=3, verbose=-1))]
    )
    save_model(pipe.fit(X, y), tmp_path / "m", input_example=X)
    path = tmp_path / "m" / "model.skops"
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    schema = json.loads(members["schema.json"])
    handle = schema["content"]["content"]["steps"]["content"][1]["content"][1]["content"][
        "content"
    ]["_Booster"]["content"]["content"]["_handle"]
    handle["content"] = json.dumps(corrupt_right_child(json.loads(handle["content"])))
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(InvalidInput, match=r"model\.skops.*probe process"):
        load_model(tmp_path / "m")


def test_garbled_xgboost_file_is_refused_cleanly(tmp_path: Path) -> None:
    X, y = _frame()
    save_model(xgb.XGBClassifier(n_estimators=3).fit(X, y), tmp_path / "m", input_example=X)
    path = tmp_path / "m" / "model.ubj"
    data = bytearray(path.read_bytes())
    rng = random.Random(0)
    for _ in range(40):
        data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=r"model\.ubj"):
        load_model(tmp_path / "m")


def test_probe_timeout_is_configurable_and_validated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lightgbm_model(tmp_path / "m")
    monkeypatch.setenv(probe.TIMEOUT_ENV, "soon")
    with pytest.raises(InvalidInput, match=probe.TIMEOUT_ENV):
        load_model(tmp_path / "m")


def test_probe_child_gets_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATCHET_DB", "postgresql://user:secret@db/ratchet")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    env = probe._child_env()
    assert "secret" not in " ".join(env.values())
    assert set(env) <= {"PATH", "PYTHONPATH", "LC_ALL", "OMP_NUM_THREADS", "SYSTEMROOT", "TMPDIR"}
