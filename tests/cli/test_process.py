"""The CLI as a real process: import cost and the error boundary end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("sqlalchemy", "pandas", "sklearn", "alembic")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}
    env["RATCHET_HOME"] = str(tmp_path / ".ratchet")
    return env


def _loaded_heavy_modules(code: str, tmp_path: Path) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_stays_light(tmp_path: Path) -> None:
    assert _loaded_heavy_modules("import ratchet.cli.main", tmp_path) == []


def test_help_stays_light(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from ratchet.cli.main import main\n"
        "for argv in (['--help'], ['runs', '--help'], ['models', 'alias', 'set', '--help']):\n"
        "    sys.argv = ['ratchet', *argv]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
    )
    assert _loaded_heavy_modules(code, tmp_path) == []


def test_user_error_in_a_real_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ratchet.cli.main", "runs", "show", "0000"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr == "error: no run with id '0000' (a prefix is 6+ hex digits)\n"


def test_usage_error_in_a_real_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ratchet.cli.main", "runs", "show"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
