from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.config import Settings


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """A SQLite store, for tests about tuning itself rather than about the backends."""
    return Settings(home=tmp_path / ".ratchet", db_url=f"sqlite:///{tmp_path / 'ratchet.db'}",
                    artifacts_uri=str(tmp_path / "artifacts"))
