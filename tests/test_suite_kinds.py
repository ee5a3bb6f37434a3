"""The slow kinds of test are named by file (tests/conftest.py): a renamed file must not
silently move into `make test-fast`."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SLOW_KINDS

ROOT = Path(__file__).parents[1]


def test_every_file_named_as_a_slow_kind_exists() -> None:
    missing = [p for paths in SLOW_KINDS.values() for p in paths if not (ROOT / p).is_file()]
    assert missing == []


def test_an_xdist_group_runs_on_one_worker(tmp_path: Path) -> None:
    """``xdist_group`` keeps working with the installed pytest and pytest-xdist (pytest
    9.2 silently broke xdist 3.8's grouping: each group ran on both workers). Six tests
    of one group and six lone ones, on two workers: the group's share one worker."""
    import os
    import subprocess
    import sys

    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n")
    (tmp_path / "test_grouped.py").write_text(
        "import os, pathlib, pytest, time\n"
        "@pytest.mark.parametrize('n', range(6))\n"
        "@pytest.mark.xdist_group('together')\n"
        "def test_grouped(n):\n"
        "    worker = os.environ['PYTEST_XDIST_WORKER']\n"
        "    pathlib.Path(__file__).with_name(f'ran-{n}').write_text(worker)\n"
        "    time.sleep(0.05)\n"
        "@pytest.mark.parametrize('n', range(6))\n"
        "def test_alone(n):\n"
        "    time.sleep(0.05)\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {(tmp_path / f"ran-{n}").read_text() for n in range(6)}
    assert len(workers) == 1, workers
