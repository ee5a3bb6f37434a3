"""The probe's child process: ``python -P -m ratchet.packaging.probe_child DIR [--trust]``
loads the model in ``DIR`` and predicts on its input example (see ``probe.py``). Exit 0:
clean; ``probe.EXIT_LOAD_FAILED`` / ``probe.EXIT_PREDICT_FAILED``: a Python error (on
stderr); killed by a signal: the native parser crashed."""

from __future__ import annotations

import sys
from pathlib import Path

from ratchet.packaging import probe
from ratchet.packaging.directory import load_model


def main(argv: list[str]) -> int:
    """Load the model in ``argv[0]`` and predict on its input example."""
    probe._in_child = True  # this process loads for real
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash here leaves no core file
    except (ImportError, ValueError, OSError):
        pass
    directory = Path(argv[0])
    try:
        model = load_model(directory, trust="--trust" in argv[1:])
    except Exception as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return probe.EXIT_LOAD_FAILED
    example = model.manifest.input_example
    try:
        if example:
            model.predict(example)
            if model.has_predict_proba:
                model.predict_proba(example)
    except Exception as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return probe.EXIT_PREDICT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
