"""Several processes logging one dataset at once: numbering and dedup stay exact."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ratchet.config import Settings
from ratchet.data.catalog import DataClient
from ratchet.tracking import TrackingClient
from ratchet.workspace import Workspace

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import pandas as pd
    from ratchet.config import Settings
    from ratchet.data.catalog import DataClient
    from ratchet.workspace import Workspace

    db, home, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    client = DataClient(Workspace(Settings(home=home, db_url=db,
                                           artifacts_uri=str(home / "artifacts"))))
    frame = pd.DataFrame({"x": range(seed, seed + 1000), "tag": ["t"] * 1000})
    print(client.log(frame, "shared").version)
""")
WRITERS = 4


def _run_writers(url: str, home: Path, seeds: list[int]) -> list[int]:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(home), str(seed)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in seeds]
    versions = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        versions.append(int(out.strip()))
    return versions


@pytest.mark.slow
def test_concurrent_logging_numbers_and_dedups(backend_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, db_url=backend_url, artifacts_uri=str(home / "artifacts"))
    TrackingClient(Workspace(settings))  # migrate once up front; the race under test is the logging

    different = _run_writers(backend_url, home, [i * 10_000 for i in range(WRITERS)])
    assert sorted(different) == list(range(1, WRITERS + 1))  # distinct, no gaps

    same = _run_writers(backend_url, home, [777] * WRITERS)
    assert len(set(same)) == 1 and same[0] == WRITERS + 1  # identical content: one version

    client = DataClient(Workspace(settings))
    versions = client.list_versions("shared")
    assert [v.version for v in versions] == list(range(1, WRITERS + 2))
    assert len({v.digest for v in versions}) == WRITERS + 1
    for v in versions:
        v.verify()  # every stored snapshot is whole and matches its digest
