"""The examples run from an empty directory: the pipeline walkthrough, and the
continuous-training demo (`make demo`) on its first twelve replayed years."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_walkthrough_runs_from_an_empty_directory(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "walkthrough.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "champion -> cancer-classifier v" in out
    assert "metadata store : sqlite:///" in out and str(tmp_path) in out
    assert (tmp_path / ".ratchet" / "ratchet.db").is_file()
    # the printed predictions came from the model loaded back by alias
    assert "champion predictions for 5 test rows" in out
    trained_on = next(line for line in out.splitlines() if line.startswith("champion was trained on"))
    assert "breast-cancer-train@1 (train)" in trained_on and "breast-cancer-test@1 (test)" in trained_on
    assert "4 of 5 steps served from the cache" not in out  # all five are
    assert "5 of 5 steps served from the cache" in out


def test_the_continuous_training_demo_runs_the_loop(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, str(EXAMPLES / "rainfall" / "demo.py"), "--years",
                           "12", "--home", str(home)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})  # one event a line
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "rainfall v1 is champion; starting `ratchet serve`" in out
    assert "Replaying 4380 days through HTTP" in out
    # Twelve years hold one retrain (1970-11): the gate's paired test finds the challenger
    # not surely better on its 365-day holdout, and says so with the interval.
    assert "retrain #1" in out and "gate failed: v2 accuracy" in out
    assert "improvement in [" in out and "at 95% confidence" in out
    assert "loop (live)" in out and "never retrained" in out
    report = home / "reports" / "ct-demo.html"
    assert report.is_file() and "rejected" in report.read_text()
    assert "<script src=" not in report.read_text()  # plotly.js inlined: works offline
