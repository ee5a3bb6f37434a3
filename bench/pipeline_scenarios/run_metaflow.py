"""Metaflow: a linear flow of trivial steps, run the way Metaflow runs flows locally.

    bench/.venv-metaflow/bin/python bench/pipeline_scenarios/run_metaflow.py \\
        --workdir DIR --phase cold|cached

Metaflow builds its DAG by parsing the flow's source, and every step is a ``@step`` method
naming its successor, so the flow file is generated into DIR (``start`` and ``end`` are
two of the 20 incrementing steps: Metaflow requires both). ``python flow.py run`` is one
process that launches one subprocess per task, each re-importing Metaflow and the flow and
reading/writing its artifacts in the local datastore (``DIR/.metaflow``).

Timed: ``import metaflow`` in this process (what each Metaflow process pays at least
once); a 2-step warm-up flow's run (first use of the datastore: one-time cost); then the
flow's run as a subprocess, the way users start it: ``pipeline_s`` is that run's wall
time minus the import time (the spec's formula), ``run_process_wall_s`` the whole of it. Metaflow has no step cache: the
"cached" phase is ``resume end`` of the previous run (the 19 steps before ``end`` are
cloned from it, ``end`` runs again), the closest thing it offers. The tasks' end times
(Metaflow's metadata) give the cadence (steady cost per step) of a cold run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from chain import emit, parse_args, timeline


def flow_source(name: str, steps: int) -> str:
    """A FlowSpec with ``steps`` steps, each setting ``self.x`` to the previous one's + 1."""
    names = ["start", *(f"s{i}" for i in range(2, steps)), "end"]
    lines = ["from metaflow import FlowSpec, step", "", "", f"class {name}(FlowSpec):"]
    for i, step in enumerate(names):
        body = "self.x = 1" if i == 0 else "self.x = self.x + 1"
        lines += ["    @step", f"    def {step}(self):", f"        {body}"]
        if i + 1 < len(names):
            lines.append(f"        self.next(self.{names[i + 1]})")
        lines.append("")
    lines += ["", 'if __name__ == "__main__":', f"    {name}()", ""]
    return "\n".join(lines)


def run_flow(workdir: Path, flow: Path, *command: str) -> float:
    """Wall seconds of ``python flow.py COMMAND`` (Metaflow's progress goes to stderr)."""
    cmd = [sys.executable, str(flow), "--quiet", *command]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, stdout=sys.stderr, stderr=sys.stderr)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} of {flow.name} failed (exit {proc.returncode})")
    return elapsed


def main() -> None:
    args = parse_args("metaflow")
    started = time.perf_counter()
    import metaflow

    import_s = time.perf_counter() - started
    flow = args.workdir / "chain_flow.py"
    warm = args.workdir / "warm_flow.py"
    if args.phase == "cold":
        flow.write_text(flow_source("ChainFlow", args.steps))
        warm.write_text(flow_source("WarmFlow", 2))
    startup_s = run_flow(args.workdir, warm, "run")
    if args.phase == "cold":
        run_s = run_flow(args.workdir, flow, "run")
    else:  # no cache: resume the previous run from its last step (the rest is cloned)
        run_s = run_flow(args.workdir, flow, "resume", "end")

    # Check the result through Metaflow's client, after timing.
    metaflow.namespace(None)
    run = metaflow.Flow("ChainFlow").latest_run
    output = run.data.x
    tasks = [task for step in run for task in step]
    executed = sum(task.metadata_dict.get("origin-task-id") is None for task in tasks)
    ends = [task.finished_at.timestamp() for task in tasks]
    emit({"tool": "metaflow", "version": metaflow.__version__, "phase": args.phase,
          "steps": args.steps, "import_s": import_s, "startup_s": startup_s,
          "pipeline_s": run_s - import_s, "run_process_wall_s": run_s, "output": output,
          "run_successful": run.successful,
          # A resumed run's clones keep their origin's times: no cadence for it.
          **timeline([] if args.phase == "cached" else ends),
          "tasks_executed": executed, "cached_steps": args.steps - executed})


if __name__ == "__main__":
    main()
