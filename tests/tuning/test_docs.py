"""docs/tuning.md runs: every python block in order, in a fresh project directory."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).parents[2] / "docs" / "tuning.md"


def test_tuning_page_runs(workspace: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 8
    for code in blocks:
        exec(compile(code, str(PAGE), "exec"), namespace)
    assert (workspace / ".ratchet" / "optuna" / "journal.log").is_file()
