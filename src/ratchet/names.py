"""Names of models, experiments, datasets, deployments, aliases and keys: one rule.

A name is what a person types and reads, in ``models:/churn@champion``, in a path and in a
table; two names that look the same must be the same object. So every name is first put
in canonical form — Unicode NFKC (full-width letters U+FF43... are ``churn``), surrounding
whitespace trimmed (``" churn "`` is ``churn``) — on create *and* on lookup, and then
refused if it still holds something a reader cannot see or tell apart:

- control, format (zero-width, bidi overrides/isolates such as U+202E), private-use,
  unassigned or surrogate characters, and line/paragraph separators;
- letters from two alphabets that share look-alike letters (Latin with Cyrillic, Greek,
  Armenian, ...): ``churн`` (Cyrillic н) is not ``churn`` and is refused.

Models and experiments keep MLflow's fairly free names (spaces, most punctuation, any one
alphabet); datasets and deployments, which become file names and URL segments, are ASCII
``[A-Za-z0-9._-]``. Names stored before this rule are not rewritten.
"""

from __future__ import annotations

import re
import unicodedata

from ratchet.errors import InvalidInput

MAX_NAME_LENGTH = 256
MAX_KEY_LENGTH = 250
RESERVED_ALIASES = frozenset({"latest"})

_PORTABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_KEY = re.compile(r"[A-Za-z0-9_\-. /:]+")
# Alphabets with letters that look like Latin ones (and like each other).
_LOOKALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE",
                                "COPTIC", "GEORGIAN", "LISU", "OSAGE", "VAI"})
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def canonical(name: str) -> str:
    """NFKC, surrounding whitespace trimmed: the spelling a name is stored and found by."""
    return unicodedata.normalize("NFKC", name).strip()


def lookup_name(name: object) -> object:
    """``name`` in canonical form for a lookup (no checks: a miss is simply NotFound)."""
    return canonical(name) if isinstance(name, str) else name


def check_name(kind: str, name: object, *, forbidden: str = "",
               max_length: int = MAX_NAME_LENGTH) -> str:
    """The canonical form of ``name``, or InvalidInput saying what is wrong with it."""
    if not isinstance(name, str):
        raise InvalidInput(f"{kind} name must be a string, got {type(name).__name__}")
    text = canonical(name)
    if not text:
        raise InvalidInput(f"{kind} name must be a non-empty string, got {name!r}")
    if len(text) > max_length:
        raise InvalidInput(f"{kind} name {text[:40]!r}... is longer than {max_length} "
                           "characters")
    for c in text:
        category = unicodedata.category(c)
        if category in _INVISIBLE or (category == "Zs" and c != " "):
            raise InvalidInput(
                f"{kind} name {name!r} holds the invisible or control character "
                f"U+{ord(c):04X} ({unicodedata.name(c, category)}); remove it")
        if c in forbidden:
            raise InvalidInput(
                f"{kind} name {text!r} cannot contain {c!r} (one of "
                f"{' '.join(repr(f) for f in forbidden)}: they have a meaning in URIs)")
    scripts = sorted({_script(c) for c in text if c.isalpha()} & _LOOKALIKE_SCRIPTS)
    if len(scripts) > 1:
        raise InvalidInput(
            f"{kind} name {text!r} mixes {' and '.join(s.title() for s in scripts)} letters, "
            "which look alike; write it in one alphabet")
    return text


def check_portable_name(kind: str, name: object) -> str:
    """Canonical ``name`` that is also a portable file name and URL segment (ASCII)."""
    text = check_name(kind, name) if isinstance(name, str) else name
    if not isinstance(text, str) or not _PORTABLE.fullmatch(text) or text.endswith("."):
        raise InvalidInput(
            f"{kind} name {name!r} is not allowed: use 1-128 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit (it must be usable as a file name)")
    return text


def check_key(kind: str, key: object) -> str:
    """Tag, param, metric and similar keys: ASCII letters, digits and ``_-. /:``."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{kind} name must be a non-empty string, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"{kind} name {key[:40]!r}... is longer than {MAX_KEY_LENGTH} chars")
    if not _KEY.fullmatch(key) or ".." in key.split("/") or key.startswith("/"):
        raise InvalidInput(
            f"{kind} name {key!r} may only contain letters, digits, '_', '-', '.', ' ', ':' "
            "and '/' (not starting with '/' nor containing '..')")
    return key


# ------------------------------------------------------------------ one per concept
def model_name(name: object) -> str:
    return check_name("model", name, forbidden="/@\\")


def experiment_name(name: object) -> str:
    return check_name("experiment", name)


def dataset_name(name: object) -> str:
    return check_portable_name("dataset", name)


def deployment_name(name: object) -> str:
    text = check_portable_name("deployment", name)
    if text in (".", ".."):
        raise InvalidInput(f"deployment name {text!r} is not allowed")
    return text


def alias_name(alias: object) -> str:
    text = check_key("alias", canonical(alias) if isinstance(alias, str) else alias)
    if text.isdigit():  # see ratchet.refs: after '@', digits are a version
        raise InvalidInput(
            f"alias {text!r} is a number, and name@{text} means version {text} (of models "
            f"and datasets alike): an alias cannot be all digits; use e.g. 'v{text}'")
    if text.lower() in RESERVED_ALIASES or "/" in text:
        raise InvalidInput(
            f"alias {text!r} is reserved or ambiguous: aliases cannot be numbers, contain '/', "
            f"or be one of {sorted(RESERVED_ALIASES)}")
    return text


def _script(c: str) -> str:
    return unicodedata.name(c, "UNKNOWN").split(" ", 1)[0]


__all__ = [
    "MAX_KEY_LENGTH", "MAX_NAME_LENGTH", "alias_name", "canonical", "check_key",
    "check_name", "check_portable_name", "dataset_name", "deployment_name",
    "experiment_name", "lookup_name", "model_name",
]
