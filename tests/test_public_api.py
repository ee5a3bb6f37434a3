"""The public surface: documented names only, a cheap ``import ratchet``, one reference
grammar for datasets and models, ``list_*``/``get_*`` names and one store argument."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ratchet

API_DOC = Path(__file__).parents[1] / "docs" / "api.md"


def documented_names() -> list[str]:
    block = API_DOC.read_text().split("<!-- public-api:start -->")[1].split(
        "<!-- public-api:end -->")[0]
    return sorted(re.findall(r"^- `ratchet\.([A-Za-z_]+)`", block, flags=re.M))


def test_all_matches_docs() -> None:
    assert sorted(ratchet.__all__) == documented_names()


def test_every_public_name_resolves() -> None:
    for name in ratchet.__all__:
        assert getattr(ratchet, name) is not None, name


def test_import_ratchet_stays_light() -> None:
    code = ("import sys, ratchet; heavy = [m for m in ('sqlalchemy', 'pandas', 'sklearn', "
            "'numpy', 'alembic', 'fsspec') if m in sys.modules]; print(','.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""


def test_errors_are_one_hierarchy() -> None:
    from ratchet import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.RatchetError)


def test_submodules_do_not_shadow_public_functions() -> None:
    # Importing a submodule sets it as an attribute of its package: a module named like a
    # public function (data/client.py vs data.client()) silently replaces the function.
    import importlib
    import pkgutil

    import ratchet.ct
    import ratchet.data
    import ratchet.models

    for package in (ratchet.ct, ratchet.data, ratchet.models):
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
        for name in package.__all__:
            value = getattr(package, name)
            assert callable(value) and not isinstance(value, type(ratchet)), \
                f"{package.__name__}.{name} is shadowed by a submodule"


# ------------------------------------------------------------------ one reference grammar
# What follows '@' picks a version the same way for datasets and models (ratchet.refs).
REFERENCES = [
    # text, dataset reads it as, model reads it as (None: refused)
    ("churn@3", {"version": 3}, {"version": 3}),
    ("churn@0003", {"version": 3}, {"version": 3}),
    ("churn@latest", {"latest": True}, {"latest": True}),
    ("churn", {"latest": True}, None),  # a model names its version explicitly
    ("churn@champion", None, {"alias": "champion"}),
    ("churn@1f3a9c", {"digest_prefix": "1f3a9c"}, {"alias": "1f3a9c"}),
    ("churn@0", None, None),
    ("churn@" + "9" * 30, None, None),
    ("churn@²", None, {"alias": "²"}),  # not an ASCII digit: never a version
    ("churn@", None, None),
]


def _dataset_reads(text: str) -> dict[str, object] | None:
    from ratchet.data.version import DatasetRef
    from ratchet.errors import InvalidInput

    try:
        ref = DatasetRef.parse(text)
    except InvalidInput:
        return None
    assert ref.name == "churn"
    if ref.version is not None:
        return {"version": ref.version}
    if ref.digest_prefix is not None:
        return {"digest_prefix": ref.digest_prefix}
    return {"latest": True}


def _model_reads(text: str) -> dict[str, object] | None:
    from ratchet.errors import InvalidInput
    from ratchet.registry.uris import parse_model_uri

    try:
        ref = parse_model_uri(text)
    except InvalidInput:
        return None
    assert ref.name == "churn"
    if ref.version is not None:
        return {"version": ref.version}
    if ref.alias is not None:
        return {"alias": ref.alias}
    assert ref.latest
    return {"latest": True}


@pytest.mark.parametrize(("text", "dataset", "model"), REFERENCES)
def test_datasets_and_models_read_a_reference_the_same_way(
        text: str, dataset: dict[str, object] | None, model: dict[str, object] | None) -> None:
    assert _dataset_reads(text) == dataset
    assert _model_reads(text) == model


def test_model_uris_agree_with_the_short_references() -> None:
    from ratchet.registry.uris import parse_model_uri

    for a, b in [("models:/churn@3", "churn@3"), ("models:/churn/3", "churn@3"),
                 ("churn/3", "churn@3"), ("models:/churn/latest", "churn@latest"),
                 ("models:/churn@champion", "churn@champion")]:
        assert parse_model_uri(a) == parse_model_uri(b), (a, b)


def test_errors_on_a_version_say_the_same_for_both_kinds() -> None:
    from ratchet.data.version import DatasetRef
    from ratchet.errors import InvalidInput
    from ratchet.registry.uris import parse_model_uri

    for parse, kind in ((DatasetRef.parse, "dataset"), (parse_model_uri, "model")):
        with pytest.raises(InvalidInput, match=f"{kind} versions are numbered from 1"):
            parse("churn@0")
        with pytest.raises(InvalidInput, match=f"no {kind} version is that large"):
            parse("churn@" + "9" * 30)


def test_references_resolve_the_same_way_against_a_store(tmp_path: Path) -> None:
    """A dataset and a model with versions 1 and 2: name@1, name@latest mean the same
    thing for both; an all-digit alias, which would read as a version, is refused."""
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    from ratchet.errors import InvalidInput
    from ratchet.workspace import Workspace, use

    ws = Workspace.at(tmp_path / "home")
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0, 1, 0]})
    for n in (1, 2):
        ratchet.data.log(frame.head(n + 1), "churn", workspace=ws)
        with use(ws), ratchet.start_run():
            ratchet.log_model(DummyClassifier().fit(frame[["x"]], frame["y"]), "churn")
    for ref, version in (("churn@1", 1), ("churn@2", 2), ("churn@latest", 2)):
        assert ratchet.data.get_version(ref, workspace=ws).version == version
        assert ratchet.models.get_version(ref, workspace=ws).version == version
    with pytest.raises(InvalidInput, match=r"alias '3' is a number.*@3 means version 3"):
        ratchet.models.set_alias("churn", "3", 1, workspace=ws)
    ratchet.models.set_alias("churn", "champion", 1, workspace=ws)
    assert ratchet.models.get_version("churn@champion", workspace=ws).version == 1
    assert ratchet.models.get_version("churn", 2, workspace=ws).version == 2


# ------------------------------------------------------------------ names and the store argument
PUBLIC_PACKAGES = ("ratchet", "ratchet.data", "ratchet.models", "ratchet.serving",
                   "ratchet.pipelines", "ratchet.monitoring", "ratchet.ct", "ratchet.tuning")
# Functions that act on the active run (or set one up): they follow the run, which lives in
# the workspace it was started in (`with ratchet.workspace.use(ws): ratchet.start_run()`).
RUN_CONTEXT = {"active_run_id", "autolog", "end_run", "log_artifact", "log_artifacts",
               "log_batch", "log_input", "log_metric", "log_metrics", "log_model",
               "log_param", "log_params", "set_tag", "set_tags", "start_run", "report"}
# Functions that never reach a workspace's stores: pure computations, declarations,
# readers of local files, and the backtest (it builds its own scratch store).
NO_STORE = {
    "ratchet": {"pipeline", "register_materializer", "step"},
    "ratchet.data": {"infer_schema", "load_schema", "save_schema"},
    "ratchet.pipelines": {"load_pipeline", "pipeline", "register_materializer", "step"},
    "ratchet.monitoring": {"choose_test", "classification_metrics", "classifier_drift",
                           "column_drift", "dataset_drift",
                           "estimate_classification_performance", "estimator_from_dict",
                           "fit_estimator", "fit_loss_estimator",
                           "fit_performance_estimator",
                           "performance_by_window",
                           "quality_report", "regression_metrics", "render_report"},
    "ratchet.ct": {"backtest", "canary_check", "decide", "evaluate_model",
                   "evaluate_triggers", "load_policy", "policy_from_dict", "shadow_check"},
}
STORE_CHOOSERS = ("settings", "tracking", "registry", "client")
# A store function's name starts with a verb; lookups are get_*, collections list_*.
VERBS = {"approve", "client", "create", "delete", "diff", "gc", "get", "list", "load", "log",
         "register", "reject", "request", "restore", "resume", "rollback", "run", "schedule",
         "search", "serve", "set", "tune", "validate"}
ACTIONS = ("delete_", "restore_", "log_")  # may return the list of what they did


def store_functions() -> list[tuple[str, Any]]:
    import importlib
    import inspect

    found = []
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            value = getattr(module, name)
            if not inspect.isfunction(value) or name in RUN_CONTEXT \
                    or name in NO_STORE.get(package, ()):
                continue
            found.append((f"{package}.{name}", value))
    return found


def test_every_public_function_is_classified_and_the_lists_are_current() -> None:
    import importlib

    listed = {(p, n) for p, names in NO_STORE.items() for n in names}
    for package, name in listed:
        assert name in importlib.import_module(package).__all__, f"{package}.{name} is gone"
    assert len(store_functions()) > 40  # the public API's store functions are all seen


def test_every_function_that_reaches_a_store_takes_workspace_and_nothing_else() -> None:
    import inspect

    wrong = []
    for qualified, function in store_functions():
        parameters = inspect.signature(function).parameters
        chosen = parameters.get("workspace")
        keyword = inspect.Parameter.KEYWORD_ONLY
        if qualified.endswith(".client"):  # ratchet.data.client(ws): the accessor itself
            keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
        if chosen is None or chosen.kind is not keyword or chosen.default is not None:
            wrong.append(f"{qualified}: no keyword-only workspace=None")
        wrong += [f"{qualified}: takes {p}=" for p in STORE_CHOOSERS if p in parameters]
    assert wrong == []


def test_collections_are_list_and_lookups_get() -> None:
    import inspect

    wrong = []
    for qualified, function in store_functions():
        name = qualified.rsplit(".", 1)[1]
        returns = str(inspect.signature(function).return_annotation)
        is_list = returns.startswith("list[")
        if name.split("_")[0] not in VERBS:
            wrong.append(f"{qualified}: name a lookup get_*, a collection list_*")
        if name.startswith("list_") and not is_list:
            wrong.append(f"{qualified}: list_* returns a list, not {returns}")
        if name.startswith("get_") and is_list:
            wrong.append(f"{qualified}: get_* returns one object, not {returns}")
        if is_list and not name.startswith(("list_", "search_", *ACTIONS)):
            wrong.append(f"{qualified}: returns {returns}, so it is list_*")
    assert wrong == []
