"""Memory of a server's process tree (run in ``bench/.venv-mlflow-server``, which has psutil).

    python proctree.py PID [--settle-s 60]

Waits until the tree's summed RSS has settled (changed < 2 % over 3 s, at most
``--settle-s``: MLflow's workers and job consumers start after /health first answers),
then prints one JSON line: the number of processes, RSS summed over the root and all its
descendants, USS and PSS summed (RSS counts pages shared between forked workers once per
process; PSS splits them), and each process's RSS and command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import psutil

MB = 1024 * 1024


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss_total(pid: int) -> float:
    total = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / MB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pid", type=int)
    parser.add_argument("--settle-s", type=float, default=60.0)
    args = parser.parse_args()

    started = time.monotonic()
    history = [rss_total(args.pid)]
    while time.monotonic() - started < args.settle_s:
        time.sleep(1.0)
        history.append(rss_total(args.pid))
        window = history[-4:]
        if len(window) == 4 and max(window) - min(window) <= 0.02 * max(window):
            break
    procs = []
    for proc in tree(args.pid):
        try:
            full = proc.memory_full_info()
            procs.append({"pid": proc.pid, "ppid": proc.ppid(), "rss_mb": full.rss / MB,
                          "uss_mb": full.uss / MB, "pss_mb": getattr(full, "pss", 0) / MB,
                          "cmd": " ".join(proc.cmdline())[:160]})
        except psutil.NoSuchProcess:
            pass
    print(json.dumps({
        "processes": len(procs),
        "rss_mb": sum(p["rss_mb"] for p in procs),
        "uss_mb": sum(p["uss_mb"] for p in procs),
        "pss_mb": sum(p["pss_mb"] for p in procs),
        "settled_after_s": time.monotonic() - started,
        "per_process": procs,
    }))


if __name__ == "__main__":
    main()
