"""Settings: ``ratchet.toml`` found upward from the working directory, then environment.

Precedence, lowest first: built-in defaults, the nearest ``ratchet.toml`` (relative paths
in it are relative to the file), environment variables (relative paths relative to the
working directory).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ratchet.atomic import write_atomic
from ratchet.errors import ConfigError
from ratchet.redaction import redact_url

CONFIG_FILENAME = "ratchet.toml"
DEFAULT_HOME = ".ratchet"

STARTER_CONFIG = """\
# ratchet configuration. Environment variables override these values:
# RATCHET_HOME, RATCHET_DB, RATCHET_ARTIFACTS, RATCHET_TRACKING_URI, RATCHET_ONLINE_STORE.
[ratchet]
# Where the embedded store lives; relative paths are relative to this file.
home = ".ratchet"
# Metadata store (SQLAlchemy URL). Default: SQLite file inside home.
# db = "postgresql+psycopg://postgres@127.0.0.1:5432/ratchet"
# Artifact store: a directory or any fsspec URL. Default: <home>/artifacts.
# artifacts = "s3://bucket/ratchet"
# Online feature store: a SQLite file (default: <home>/online.sqlite) or Redis.
# online_store = "redis://127.0.0.1:6379/0"
"""


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    artifacts_uri: str
    tracking_uri: str | None = None
    config_file: Path | None = None
    # Where materialized features are served from: "sqlite:///<path>" or "redis://...".
    online_store: str | None = None

    @property
    def online_store_uri(self) -> str:
        return self.online_store or _sqlite_url(self.home / "online.sqlite")

    def __repr__(self) -> str:  # URLs may hold passwords: never print them
        tracking = redact_url(self.tracking_uri) if self.tracking_uri else None
        return (f"Settings(home={str(self.home)!r}, db_url={redact_url(self.db_url)!r}, "
                f"artifacts_uri={redact_url(self.artifacts_uri)!r}, "
                f"tracking_uri={tracking!r}, config_file={self.config_file and str(self.config_file)!r}, "
                f"online_store={redact_url(self.online_store_uri)!r})")

    __str__ = __repr__


def find_config_file(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def _read_config(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per nesting level
        raise ConfigError(f"{path}: nested too deeply to be a ratchet.toml") from None
    section = data.get("ratchet", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [ratchet] must be a table")
    known = {"home", "db", "artifacts", "tracking_uri", "online_store"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) in [ratchet]: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    for key, value in section.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: [ratchet].{key} must be a string, got {value!r}")
    return section


def _is_url(value: str) -> bool:
    return "://" in value


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def load_settings(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    cwd = (cwd or Path.cwd()).resolve()
    env = os.environ if env is None else env
    config_file = find_config_file(cwd)
    file_values = _read_config(config_file) if config_file else {}
    base = config_file.parent if config_file else cwd

    def resolve(value: str, relative_to: Path) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else relative_to / path

    if env.get("RATCHET_HOME"):
        home = resolve(env["RATCHET_HOME"], cwd)
    else:
        home = resolve(str(file_values.get("home", DEFAULT_HOME)), base)

    def location(env_key: str, file_key: str, default: str) -> str:
        if env.get(env_key):
            value, rel = env[env_key], cwd
        elif file_key in file_values:
            value, rel = str(file_values[file_key]), base
        else:
            return default
        return value if _is_url(value) else str(resolve(value, rel))

    db = location("RATCHET_DB", "db", _sqlite_url(home / "ratchet.db"))
    if not _is_url(db):  # a bare path means a SQLite file
        db = _sqlite_url(Path(db))
    artifacts = location("RATCHET_ARTIFACTS", "artifacts", str(home / "artifacts"))
    tracking_uri = env.get("RATCHET_TRACKING_URI") or file_values.get("tracking_uri")
    online_store = location("RATCHET_ONLINE_STORE", "online_store", "")
    if online_store and not _is_url(online_store):  # a bare path means a SQLite file
        online_store = _sqlite_url(Path(online_store))
    return Settings(
        home=home,
        db_url=db,
        artifacts_uri=artifacts,
        tracking_uri=str(tracking_uri) if tracking_uri else None,
        config_file=config_file,
        online_store=online_store or None,
    )


def write_starter_config(directory: Path, force: bool = False) -> Path:
    target = directory / CONFIG_FILENAME
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; pass --force to overwrite it")
    return write_atomic(target, STARTER_CONFIG)


def ensure_home(settings: Settings) -> Path:
    """Create the home directory; it ignores itself in git so runs don't look dirty."""
    from ratchet.file_modes import make_dirs

    home = settings.home
    try:
        make_dirs(home)  # new directories 0700 (see ratchet.file_modes); existing untouched
    except OSError as exc:  # a file in the way, no permission, a read-only disk
        why = "it is a file, not a folder" if home.is_file() else exc.strerror or exc
        raise ConfigError(f"cannot create the ratchet home {home}: {why}; "
                          "set RATCHET_HOME to a writable folder") from None
    ignore = home / ".gitignore"
    try:
        if not ignore.exists():
            write_atomic(ignore, "# created by ratchet: the local store is not source code\n*\n")
    except OSError as exc:  # the folder exists but cannot be written (read-only, /proc)
        raise ConfigError(f"cannot write in the ratchet home {home}: "
                          f"{exc.strerror or type(exc).__name__}; "
                          "set RATCHET_HOME to a writable folder") from None
    return home
