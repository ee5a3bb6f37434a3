"""`make demo` runs examples/walkthrough.py: it must work from an empty directory."""

from __future__ import annotations

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
