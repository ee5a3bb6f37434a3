"""Artifact paths: validate user-given relative names, walk upload dirs, join downloads.

An artifact path is a name inside a run or model version ("model/model.skops"); it is
stored as metadata and only ever touches a filesystem when a download writes it under a
local directory. The rules are strict because MLflow shipped some 25 path-traversal CVEs
through lenient ones: double percent-encoding, ``#`` and ``?`` cutting a URL short before
the check, backslashes on Windows, ``//proc/self/root``. A path is accepted only if it is
safe under every way a layer might read it (raw, percent-decoded any number of times,
Unicode NFKC-folded) and portable to Linux, macOS and Windows.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from ratchet.errors import InvalidInput

MAX_PATH_CHARS = 4096
MAX_SEGMENT_BYTES = 255  # NAME_MAX on every common filesystem
# Enough for triple encoding plus NFKC folds; more layers than this is an attack.
_MAX_INTERPRETATIONS = 32

_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")
_FORBIDDEN_CHARS = {
    ":": "drive letters, alternate data streams and URL schemes use it",
    "#": "URL parsers cut the path at a fragment",
    "?": "URL parsers cut the path at a query",
    "*": "Windows does not allow it in file names",
    "<": "Windows does not allow it in file names",
    ">": "Windows does not allow it in file names",
    '"': "Windows does not allow it in file names",
    "|": "Windows does not allow it in file names",
}
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)


def normalize_artifact_path(path: str) -> str:
    """Return ``path`` in normalized POSIX form, or raise ``InvalidInput`` saying why not.

    ``.`` segments, repeated slashes and a trailing slash are dropped; everything that
    could name a file outside the artifact root, or that is not portable, is rejected.
    """
    if not isinstance(path, str):
        raise InvalidInput(f"artifact path must be a string, got {type(path).__name__}")
    normalized = "/".join(s for s in path.split("/") if s not in ("", "."))
    # The result is checked too: dropping './' can turn a harmless encoded prefix into a
    # leading one ('./%2fetc' -> '%2fetc', which decodes to '/etc').
    reason = _unsafe_reason(path) or _encoded_unsafe_reason(path)
    if reason is None and normalized != path:
        reason = _unsafe_reason(normalized) or _encoded_unsafe_reason(normalized)
        if reason is not None:
            reason = f"once normalized to {normalized!r}, {reason}"
    if reason is not None:
        raise InvalidInput(
            f"invalid artifact path {path!r}: {reason}; use a relative path like 'model/model.pkl'"
        )
    return normalized


def _unsafe_reason(text: str) -> str | None:
    """Why ``text`` (one interpretation of a path) is unsafe, or None if it is fine."""
    if not text:
        return "it is empty"
    if len(text) > MAX_PATH_CHARS:
        return f"it is longer than {MAX_PATH_CHARS} characters"
    for ch in text:
        # Cc: NUL and other control characters; Cs: lone surrogates cannot be encoded.
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u2028\u2029":
            return f"it contains the control character U+{ord(ch):04X}"
    if "\\" in text:
        return "backslashes are not allowed (use '/')"
    if text.startswith("/"):
        return "absolute paths are not allowed"
    if text.startswith("~"):
        return "'~' (home directory) paths are not allowed"
    if _WINDOWS_DRIVE.match(text):
        return "Windows drive paths are not allowed"
    for ch, why in _FORBIDDEN_CHARS.items():
        if ch in text:
            return f"{ch!r} is not allowed ({why})"
    segments = [s for s in text.split("/") if s not in ("", ".")]
    if not segments:
        return "it names no file"
    for seg in segments:
        if seg == "..":
            return "'..' segments are not allowed"
        if seg.endswith((".", " ")):
            # Windows strips these, so 'a.' and 'a' would collide and '.. ' becomes '..'.
            return f"segment {seg!r} ends with '.' or ' '"
        if seg.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
            return f"segment {seg!r} is a reserved device name on Windows"
        if len(seg.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"segment {seg[:20]!r}... is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def _encoded_unsafe_reason(path: str) -> str | None:
    """Check every reading of ``path`` a URL layer or a Unicode fold could produce."""
    seen = {path}
    pending = [path]
    while pending:
        current = pending.pop()
        for variant in (unquote(current), unicodedata.normalize("NFKC", current)):
            if variant in seen:
                continue
            if len(seen) >= _MAX_INTERPRETATIONS:
                return "it has too many layers of percent-encoding"
            reason = _unsafe_reason(variant)
            if reason is not None:
                return f"it can be read as {variant!r}, where {reason}"
            seen.add(variant)
            pending.append(variant)
    return None


def list_directory(local_dir: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """All regular files under ``local_dir`` as sorted (artifact path, absolute path) pairs.

    Symlinks are rejected rather than followed: following one would upload whatever it
    points to (``~/.ssh``, ``/etc``) under an innocent-looking name.
    """
    root = Path(local_dir).absolute()
    if not root.exists():
        raise InvalidInput(f"cannot upload {str(root)!r}: no such directory")
    if not root.is_dir():
        raise InvalidInput(f"cannot upload {str(root)!r} as a directory: it is a file")
    found: list[tuple[str, Path]] = []
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        dir_path, prefix = stack.pop()
        with os.scandir(dir_path) as entries:
            for entry in entries:
                rel = prefix + entry.name
                is_junction = getattr(entry, "is_junction", lambda: False)()  # 3.12+, Windows
                if entry.is_symlink() or is_junction:
                    raise InvalidInput(
                        f"{entry.path!r} is a symbolic link; symlinks are not followed when "
                        "uploading artifacts: copy the target into the directory or remove the link"
                    )
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    try:
                        name = normalize_artifact_path(rel)
                    except InvalidInput as exc:
                        raise InvalidInput(f"cannot upload {entry.path!r}: {exc}") from None
                    found.append((name, Path(entry.path)))
                else:
                    raise InvalidInput(
                        f"cannot upload {entry.path!r}: not a regular file or directory"
                    )
    found.sort(key=lambda pair: pair[0])
    return found


def safe_join(root: str | os.PathLike[str], relative: str) -> Path:
    """``root / relative`` for a download, refusing anything that lands outside ``root``.

    Symlinks already on disk are resolved before the check, so a link inside ``root``
    that points elsewhere cannot be used to write outside it.
    """
    name = normalize_artifact_path(relative)
    base = Path(root).resolve()
    target = (base / name).resolve()
    if target == base or not target.is_relative_to(base):
        raise InvalidInput(
            f"artifact path {relative!r} resolves to {str(target)!r}, outside {str(base)!r} "
            "(through a symbolic link); refusing to write there"
        )
    return target
