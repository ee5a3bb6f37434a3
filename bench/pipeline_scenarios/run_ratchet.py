"""ratchet: a linear chain of trivial ``@ratchet.step`` calls in one ``@ratchet.pipeline``.

    .venv/bin/python bench/pipeline_scenarios/run_ratchet.py --workdir DIR --phase cold|cached

``RATCHET_HOME`` (SQLite + artifacts) must point into DIR; the driver sets it. Runs in
this process with the local executor, steps cached by default (a second run in the same
``RATCHET_HOME`` reuses every step's output).

Timed separately: the imports (``import ratchet`` is lazy, so the attribute lookups that
load the pipelines package count here); a one-step warm-up pipeline (store creation and
migrations, first-call costs: the one-time cost per process); then the chain itself.
The step records' end times give the cadence (steady cost per step).
"""

from __future__ import annotations

import time
from typing import Any

from chain import emit, parse_args, timed, timeline


def main() -> None:
    args = parse_args("ratchet")
    started = time.perf_counter()
    import ratchet

    step, pipeline = ratchet.step, ratchet.pipeline  # lazy: loads ratchet.pipelines
    import_s = time.perf_counter() - started
    steps = args.steps

    @step
    def inc(x: int) -> int:
        return x + 1

    @pipeline
    def chain(start: int = 0) -> Any:
        x = start
        for _ in range(steps):
            x = inc(x)
        return x

    @step
    def warm(x: int) -> int:
        return x

    @pipeline
    def warmup() -> Any:
        return warm(0)

    startup_s, _ = timed(warmup.run)
    pipeline_s, result = timed(lambda: chain.run(start=0))
    if result.status != "finished":
        raise SystemExit(f"ratchet pipeline ended {result.status!r}, not 'finished'")
    # Read after timing: one record per step, status "cached" when its outputs were reused.
    cached = sum(record.status == "cached" for record in result.steps)
    ends = [record.ended_at / 1000 for record in result.steps if record.ended_at is not None]
    emit({"tool": "ratchet", "version": ratchet.__version__, "phase": args.phase,
          "steps": steps, "import_s": import_s, "startup_s": startup_s,
          "pipeline_s": pipeline_s, "output": result.output, "status": result.status,
          "step_records": len(result.steps), "cached_steps": cached, **timeline(ends)})


if __name__ == "__main__":
    main()
