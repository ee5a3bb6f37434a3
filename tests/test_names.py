"""Names that look alike are one object or refused: never nine models that list as "churn"."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.data.version import DatasetRef
from ratchet.errors import AlreadyExists, InvalidInput, NotFound
from ratchet.names import canonical, check_key, check_name, model_name
from ratchet.store import RegistryStore, TrackingStore, open_database
from ratchet.store.deployment_store import DeploymentStore

# Spellings that show as "churn": the same name once canonical (NFKC, trimmed) ...
SAME = [
    "churn ",               # trailing space
    " churn",               # leading space
    "\uff43\uff48\uff55\uff52\uff4e",  # full-width letters
    "churn\u00a0",          # no-break space
    "churn\t",              # tab around the name
]
# ... or refused: invisible, bidi, or letters from a look-alike alphabet.
REFUSED = [
    "churn\u200b",          # zero-width space
    "chur\u043d",           # Cyrillic en
    "churn\u202e",          # right-to-left override
    "\u0441hurn",           # Cyrillic es
    "ch\u03c5rn",           # Greek upsilon
    "chu\u00adrn",          # soft hyphen
    "churn\u2066",          # left-to-right isolate
    "ch\nurn",              # a line break inside
    "churn\ufeff",          # byte-order mark / zero-width no-break space
]


@pytest.fixture
def stores(tmp_path: Path) -> tuple[TrackingStore, RegistryStore, DeploymentStore]:
    db = open_database(f"sqlite:///{tmp_path / 'ratchet.db'}")
    return TrackingStore(db), RegistryStore(db), DeploymentStore(db)


def test_canonical_form() -> None:
    for spelling in SAME:
        assert canonical(spelling) == "churn", repr(spelling)
        assert model_name(spelling) == "churn"


@pytest.mark.parametrize("spelling", REFUSED)
def test_lookalikes_are_refused_with_one_line(spelling: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        model_name(spelling)
    assert "\n" not in str(exc.value)


def test_real_names_in_one_alphabet_are_fine() -> None:
    for name in ("churn model v2", "отток", "πρόβλεψη", "解約予測", "churn-v2.1_b",
                 "Churn (EU)", "モデルv2", "café"):
        assert model_name(name) == name


def test_models_nine_spellings_are_one_model(
        stores: tuple[TrackingStore, RegistryStore, DeploymentStore]) -> None:
    _, registry, _ = stores
    registry.create_registered_model("churn")
    for spelling in SAME:
        with pytest.raises(AlreadyExists):
            registry.create_registered_model(spelling)
        registry.ensure_registered_model(spelling)  # no second model
        assert registry.get_registered_model(spelling).name == "churn"
    for spelling in REFUSED:
        with pytest.raises(InvalidInput):
            registry.create_registered_model(spelling)
    assert [m.name for m in registry.list_registered_models()] == ["churn"]


def test_versions_and_aliases_are_found_by_any_same_spelling(
        stores: tuple[TrackingStore, RegistryStore, DeploymentStore]) -> None:
    tracking, registry, _ = stores
    run = tracking.create_run(tracking.get_or_create_experiment("e").experiment_id)
    version = registry.create_model_version(
        " churn ", run_id=run.run_id, artifact_path="model", content_hash="a" * 64,
        flavor="sklearn", manifest={"flavor": "sklearn"}).version
    assert registry.get_model_version("churn", version).name == "churn"
    registry.set_alias("churn ", " champion ", version, actor=None, reason=None)
    assert registry.resolve_alias("\uff43\uff48\uff55\uff52\uff4e", "champion") == version
    assert registry.get_registered_model("churn").aliases == {"champion": version}
    with pytest.raises(InvalidInput):
        registry.set_alias("churn", "champion\u200b", version, actor=None, reason=None)


def test_experiments(stores: tuple[TrackingStore, RegistryStore, DeploymentStore]) -> None:
    tracking, _, _ = stores
    first = tracking.create_experiment("churn")
    for spelling in SAME:
        assert tracking.get_or_create_experiment(spelling).experiment_id == first.experiment_id
        assert tracking.get_experiment(spelling).name == "churn"
        with pytest.raises(AlreadyExists):
            tracking.create_experiment(spelling)
    for spelling in REFUSED:
        with pytest.raises(InvalidInput):
            tracking.get_or_create_experiment(spelling)
    assert [e.name for e in tracking.list_experiments()].count("churn") == 1


def test_deployments(stores: tuple[TrackingStore, RegistryStore, DeploymentStore]) -> None:
    _, _, deployments = stores
    deployments.create("churn", {"variants": []})
    for spelling in SAME:
        assert deployments.get(spelling).name == "churn"
        with pytest.raises(AlreadyExists):
            deployments.create(spelling, {"variants": []})
    for spelling in REFUSED:
        with pytest.raises(InvalidInput):
            deployments.create(spelling, {"variants": []})
    assert [d.name for d in deployments.list_deployments()] == ["churn"]
    with pytest.raises(NotFound):
        deployments.get("churn2")


def test_datasets_refs() -> None:
    for spelling in SAME:
        if "\t" in spelling or "\u00a0" in spelling:
            continue  # a reference is one token; covered by canonical() above
        assert DatasetRef.parse(f"{spelling}@3").name == "churn"
    for spelling in REFUSED:
        with pytest.raises(InvalidInput):
            DatasetRef.parse(f"{spelling}@3")
    assert [DatasetRef.parse(s).name for s in ("churn", "churn@latest")] == ["churn"] * 2


def test_keys_refuse_a_trailing_newline() -> None:
    assert check_key("metric", "val/loss") == "val/loss"
    for key in ("loss\n", "lo\u200bss", "l\u043ess"):
        with pytest.raises(InvalidInput):
            check_key("metric", key)


def test_length_and_type() -> None:
    with pytest.raises(InvalidInput, match="longer than"):
        check_name("model", "x" * 300)
    with pytest.raises(InvalidInput, match="must be a string"):
        check_name("model", 3)
    with pytest.raises(InvalidInput, match="non-empty"):
        check_name("model", " \u3000 ")
    with pytest.raises(InvalidInput, match="'/'"):
        model_name("a/b")
