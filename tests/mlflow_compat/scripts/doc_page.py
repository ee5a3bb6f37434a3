"""Run the ``python`` blocks of a docs page, in order, as a user of MLflow would paste them
(the tracking URI and token come from the environment); prints ``{"ok": true}`` last.

Runs in the MLflow client's venv: standard library and mlflow only."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

page = Path(sys.argv[1])
namespace: dict[str, object] = {"__name__": "__docs__"}
for number, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
    exec(compile(code, f"{page.name} block {number + 1}", "exec"), namespace)
print(json.dumps({"ok": True}))
