"""The rainfall backtest's wall time and model loads: one run of ``ratchet ct backtest``'s
code on the demo's data and policy (as ``bench/ct_bench.py``), timed end to end, with every
model load counted (``ratchet.packaging.load_model``, which ``RegistryClient.load`` calls).

Prints one JSON document: seconds (wall, and CPU of the process and its children:
steadier on a busy machine), loads (total, and how many distinct
model directories), and the numbers
the backtest reports (summary per strategy, promotions, events), so that two runs, e.g.
before and after a change, can be compared number for number.

    python bench/backtest.py [--src OTHER/src] [--out results.json] [--compact]

``--src``: import ratchet from another source tree, and run that tree's examples (an
older commit unpacked with ``git archive COMMIT src examples | tar -x -C DIR``; pass
``DIR/src``), in this virtualenv: before/after on one machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="import ratchet from this source tree")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compact", action="store_true")
    args = parser.parse_args()
    root = ROOT
    if args.src is not None:  # that tree's examples too (the policy names its pipeline file)
        sys.path.insert(0, str(args.src.resolve()))
        root = args.src.resolve().parent
        os.chdir(root)
    sys.path.insert(0, str(root / "examples" / "rainfall"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    from harness import write_json

    import ratchet
    import ratchet.packaging
    from data import LABEL, load_rainfall
    from ratchet.ct.backtesting import backtest
    from ratchet.ct.policy import load_policy

    loads: Counter[str] = Counter()
    real_load = ratchet.packaging.load_model

    def counted(path: Any, *a: Any, **kw: Any) -> Any:
        model = real_load(path, *a, **kw)
        loads[str(path)] += 1
        return model

    ratchet.packaging.load_model = counted  # type: ignore[assignment]
    policy = load_policy(root / "examples" / "rainfall" / "policy.yaml")
    history = load_rainfall()
    started, cpu = time.perf_counter(), time.process_time()
    result = backtest(policy, history, time_column="date", label=LABEL, start=3_650,
                      tick="60d", label_delay="1d", schedule="365d", schedule_rows=(3_650,))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # a second process, if any
    cpu += children.ru_utime + children.ru_stime
    doc = {
        "what": "the rainfall backtest (examples/rainfall/policy.yaml, 14,509 days replayed "
                "at 60-day ticks, two yearly schedules): wall time and model loads",
        "ratchet": str(Path(ratchet.__file__).resolve().parent),
        "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "rows": result.rows,
        "model_loads": sum(loads.values()), "models_loaded": len(loads),
        "summary": result.summary, "promotions": result.promotions,
        "events": [{k: e[k] for k in ("at", "kind", "summary")} for e in result.events],
    }
    write_json(doc, args.out, args.compact)


if __name__ == "__main__":
    main()
