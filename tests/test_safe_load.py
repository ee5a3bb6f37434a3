"""Untrusted JSON/YAML: deep nesting and alias bombs are one-line errors at every site."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from ratchet.ct.policy import load_policy
from ratchet.data.schema import load_schema
from ratchet.errors import InvalidInput
from ratchet.packaging.manifest import Manifest
from ratchet.safe_load import MAX_DEPTH, load_json, load_yaml
from ratchet.serving.bundle import read_bundle_info

DEEP = 20_000
DEEP_JSON = "[" * DEEP + "]" * DEEP
DEEP_YAML_FLOW = "params: " + "[" * DEEP + "]" * DEEP + "\n"
DEEP_YAML_BLOCK = "params:\n" + "".join("  " * i + "-\n" for i in range(1, 3000))


def _billion_laughs(key: str = "params") -> str:
    """~1 KB; 9**9 (387 million) strings once every alias is expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return f"{key}:\n" + "".join(f"  {line}\n" for line in lines)


def _one_line(exc: pytest.ExceptionInfo[InvalidInput], where: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    assert where in text
    return text


@pytest.mark.parametrize("text", [DEEP_JSON, '{"a":' * DEEP + "1" + "}" * DEEP])
def test_json_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="nested more than") as exc:
        load_json(text, "thing.json")
    _one_line(exc, "thing.json")


def test_json_within_bounds_loads_and_bad_json_is_one_line() -> None:
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert load_json(nested, "ok.json") is not None
    with pytest.raises(InvalidInput, match="not valid JSON") as exc:
        load_json("9" * 5000, "big.json")  # above Python's int digit limit: ValueError
    _one_line(exc, "big.json")


@pytest.mark.parametrize("text", [DEEP_YAML_FLOW, DEEP_YAML_BLOCK])
def test_yaml_deep_nesting_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="nested more than") as exc:
        load_yaml(text, "deep.yaml")
    _one_line(exc, "deep.yaml")


def test_yaml_alias_bomb_is_refused_with_bounded_memory() -> None:
    text = _billion_laughs()
    assert len(text) < 1200
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput, match="aliases expand to more than") as exc:
            load_yaml(text, "bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _one_line(exc, "bomb.yaml")
    assert peak < 20_000_000


def test_yaml_ordinary_aliases_and_self_reference() -> None:
    assert load_yaml("a: &x [1, 2]\nb: *x\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}
    with pytest.raises(InvalidInput, match="refers to its own anchor"):
        load_yaml("a: &x [1, *x]\n", "self.yaml")
    with pytest.raises(InvalidInput, match=r"bad\.yaml:\d+: invalid YAML"):
        load_yaml("a: [1,\n", "bad.yaml")


# --------------------------------------------------------------- every loading site
def _policy(tmp_path: Path, text: str) -> Callable[[], object]:
    path = tmp_path / "policy.yaml"
    path.write_text("model: churn\npipeline: flows:training\n" + text)
    return lambda: load_policy(path)


def _schema(tmp_path: Path, text: str) -> Callable[[], object]:
    path = tmp_path / "schema.yaml"
    path.write_text("schema_type: dataframe\ncolumns:\n  a:\n    dtype: int64\n" + text)
    return lambda: load_schema(path)


@pytest.mark.parametrize("site", [_policy, _schema])
@pytest.mark.parametrize("text,message", [
    (DEEP_YAML_FLOW, "nested more than"),
    (DEEP_YAML_BLOCK, "nested more than"),
    (_billion_laughs(), "aliases expand to more than"),
])
def test_yaml_sites_refuse_deep_and_bombs(tmp_path: Path, site: Callable[..., Callable[[], object]],
                                          text: str, message: str) -> None:
    load = site(tmp_path, text)
    with pytest.raises(InvalidInput, match=message) as exc:
        load()
    _one_line(exc, str(tmp_path))


def test_bundle_json_deep_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bundle.json").write_text('{"format_version": ' + DEEP_JSON + "}")
    with pytest.raises(InvalidInput, match=r"nested more than.*rebuild the bundle") as exc:
        read_bundle_info(tmp_path)
    _one_line(exc, "bundle.json")


def test_manifest_deep_is_refused() -> None:
    with pytest.raises(InvalidInput, match="model manifest: nested more than") as exc:
        Manifest.from_json('{"params": ' + DEEP_JSON + "}", "models:/churn/1")
    _one_line(exc, "models:/churn/1")
