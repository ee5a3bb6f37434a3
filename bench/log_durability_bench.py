"""Benchmark ``log-durability``: how many acknowledged predictions the log loses when
``ratchet serve`` is killed with SIGKILL, with the default flush and in durable mode.

    .venv/bin/python bench/log_durability_bench.py                 # 10 s per mode
    .venv/bin/python bench/log_durability_bench.py --seconds 3     # a smoke run

Per mode (``--log-flush 1`` and ``--log-flush 0``): a fresh ``ratchet serve`` of a small
LogisticRegression (4 float features) in a temporary RATCHET_HOME; ``--clients`` threads
send one-row ``/predict`` requests, each with its own X-Request-ID, for ``--seconds``;
then the server's process group gets SIGKILL. Counted: requests answered 200, rows in the
Parquet files right after the kill, and rows after the next writer started (durable mode
replays the write-ahead segments; the default mode has nothing to replay). Prints one JSON
document on stdout (progress on stderr). Never a timed assertion: numbers for the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ratchet.workspace import Workspace


def _register(home: Path) -> Any:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from ratchet.config import Settings
    from ratchet.registry import RegistryClient

    settings = Settings(home=home, db_url=f"sqlite:///{home / 'ratchet.db'}",
                        artifacts_uri=str(home / "artifacts"))
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(500, 4)), columns=["f0", "f1", "f2", "f3"])
    y = (X["f0"] + X["f1"] > 0).astype(int)
    registry = RegistryClient(Workspace(settings))
    with registry.tracking.start_run(experiment="bench") as run:
        registry.log_model(run.id, LogisticRegression().fit(X, y), name="bench",
                           input_example=X)
    registry.set_alias("bench", "champion", 1)
    return settings


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _logged(root: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(f).num_rows
               for f in (root / "predictions").rglob("*.parquet") if not f.name.startswith("."))


def run_mode(flush: str, seconds: float, clients: int) -> dict[str, Any]:
    import httpx

    from ratchet.serving.prediction_log import PredictionLog

    with tempfile.TemporaryDirectory(prefix="ratchet-durability-") as tmp:
        home = Path(tmp) / "home"
        settings = _register(home)
        port = _port()
        env = {**os.environ, "RATCHET_HOME": str(home), "RATCHET_DB": settings.db_url,
               "RATCHET_ARTIFACTS": settings.artifacts_uri}
        server = subprocess.Popen(
            [sys.executable, "-m", "ratchet.cli.main", "serve", "bench@champion",
             "--log-flush", flush, "--port", str(port)], env=env, cwd=tmp,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        acknowledged = [0] * clients
        stop = threading.Event()

        def client(k: int) -> None:
            body = {"inputs": [{"f0": 0.1, "f1": -0.2, "f2": 0.3, "f3": 0.0}]}
            with httpx.Client(base_url=url, timeout=10) as http:
                i = 0
                while not stop.is_set():
                    try:
                        r = http.post("/predict", json=body,
                                      headers={"X-Request-ID": f"c{k}-{i}"})
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        acknowledged[k] += 1
                    i += 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        os.killpg(server.pid, signal.SIGKILL)  # mid-traffic: some requests never answer
        server.wait()
        stop.set()
        for t in threads:
            t.join()
        root = Path(settings.artifacts_uri)
        after_kill = _logged(root)
        if flush == "0":
            PredictionLog(str(root), flush_interval_s=0).close()  # the next writer replays
        after_restart = _logged(root)
        answered = sum(acknowledged)
        lost = max(answered - after_restart, 0)
        return {"log_flush": float(flush), "seconds": seconds, "clients": clients,
                "acknowledged": answered, "requests_per_s": round(answered / seconds, 1),
                "logged_right_after_kill": after_kill, "logged_after_restart": after_restart,
                "lost": lost, "lost_pct": round(100 * lost / answered, 2) if answered else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    results = []
    for flush in ("1", "0"):
        print(f"log-durability: --log-flush {flush} for {args.seconds} s", file=sys.stderr)
        results.append(run_mode(flush, args.seconds, args.clients))
    json.dump({"benchmark": "log-durability", "results": results}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
