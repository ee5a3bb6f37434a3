"""The slow kinds of test are named by file (tests/conftest.py): a renamed file must not
silently move into `make test-fast`."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SLOW_KINDS

ROOT = Path(__file__).parents[1]


def test_every_file_named_as_a_slow_kind_exists() -> None:
    missing = [p for paths in SLOW_KINDS.values() for p in paths if not (ROOT / p).is_file()]
    assert missing == []
