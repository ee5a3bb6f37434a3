"""What the serving, batch and drift benchmarks share: quiet child environments, version
lookups, measured child processes, goal checks and JSON output. Standard library only (the
scripts run it in the project's and in incumbents' interpreters alike)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# Incumbents phone home by default; every child runs with all of these set.
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
                 "NML_DISABLE_USAGE_LOGGING": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
OPS = {">=": float.__ge__, "<=": float.__le__, "<": float.__lt__, ">": float.__gt__,
       "==": float.__eq__}


def ratchet_python() -> Path:
    candidate = REPO / ".venv" / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


def child_env(dropped_prefixes: tuple[str, ...], extra: dict[str, str] | None = None,
              path_first: Path | None = None) -> dict[str, str]:
    """Telemetry off, inherited tool settings dropped (they could point a tool at another
    store or server), cached bytecode allowed for everyone; ``path_first`` leads PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped_prefixes)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(TELEMETRY_OFF)
    if path_first is not None:
        env["PATH"] = os.pathsep.join([str(path_first), env.get("PATH", "")])
    env.update(extra or {})
    return env


def installed(python: Path, dists: list[str], env: dict[str, str]) -> dict[str, str | None]:
    """Versions of ``dists`` in the interpreter ``python`` (None: not installed)."""
    code = ("import importlib.metadata as m, json, sys\n"
            "def v(d):\n"
            "    try: return m.version(d)\n"
            "    except m.PackageNotFoundError: return None\n"
            "print(json.dumps({d: v(d) for d in sys.argv[1:]}))")
    out = subprocess.run([str(python), "-c", code, *dists], capture_output=True, text=True,
                         env=env)
    return json.loads(out.stdout) if out.returncode == 0 else dict.fromkeys(dists)


def install_venv(venv: Path, requirements: list[str], env: dict[str, str]) -> Path:
    """A benchmark's own virtualenv at ``venv`` with ``requirements`` (``dist==version``),
    on the project's interpreter (every tool on the same Python), made with uv when it is
    there; the venv's python. Raises RuntimeError when the pins did not take."""
    python = venv / "bin" / "python"
    base = str(ratchet_python())
    uv = REPO / ".venv" / "bin" / "uv"
    uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
    if uv_cmd:
        if not python.exists():
            subprocess.run([uv_cmd, "venv", "--quiet", "--python", base, str(venv)],
                           check=True, env=env)
        subprocess.run([uv_cmd, "pip", "install", "--quiet", "--python", str(python),
                        *requirements], check=True, env=env)
    else:
        if not python.exists():
            subprocess.run([base, "-m", "venv", str(venv)], check=True, env=env)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *requirements], check=True, env=env)
    pins = dict(r.split("==") for r in requirements)
    found = installed(python, list(pins), env)
    if found != pins:
        raise RuntimeError(f"{venv}: wanted {pins}, found {found}")
    return python


def vm_hwm_kb(pid: int) -> int:
    """A process's own peak resident set (VmHWM, reset by exec). Not wait4's ru_maxrss:
    Linux carries the parent's high-water mark into a forked child across exec."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass(frozen=True)
class Measured:
    command: list[str]
    exit_code: int | None   # None: killed at the timeout
    wall_s: float
    peak_rss_mb: float      # VmHWM polled every 20 ms
    cpu_s: float
    stdout: str
    stderr: str

    def stderr_tail(self, lines: int = 15) -> str:
        return "\n".join(self.stderr.strip().splitlines()[-lines:])


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path, name: str,
                 timeout_s: float) -> Measured:
    """Run ``cmd`` to completion in its own session: wall time, peak memory, CPU, output."""
    out_path, err_path = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
    os.sync()  # untimed: no writeback of earlier output during the measurement
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        peak_kb, code = 0, None
        while True:
            peak_kb = max(peak_kb, vm_hwm_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() - started > timeout_s:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                _, _, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - started
    proc.returncode = -9 if code is None else code  # reaped by wait4; tell Popen
    return Measured(cmd, code, wall, peak_kb / 1024, usage.ru_utime + usage.ru_stime,
                    out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))


def ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den == 0 else num / den


def check(name: str, value: float | None, op: str, target: float) -> dict[str, Any]:
    """One goal: ``value op target``; ``pass`` is None when there is no value."""
    passed = None if value is None else OPS[op](float(value), float(target))
    return {"name": name, "value": value, "op": op, "target": target, "pass": passed}


def write_json(doc: dict[str, Any], out: Path | None, compact: bool) -> None:
    """Print the document; with ``out``, also write it there atomically."""
    text = json.dumps(doc, indent=None if compact else 2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(out)
