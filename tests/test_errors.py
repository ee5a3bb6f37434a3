"""One error hierarchy in ``ratchet/errors.py``, each class with the HTTP status a server
answers when it ends a request (the serving app's exception handler reads
``exc.http_status``)."""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path

import pytest

from ratchet import errors

SRC = Path(errors.__file__).resolve().parent

# What the server answered for each before ``http_status`` was read: 404 a missing thing,
# 409 a conflict, 422 invalid input (the request body's problems), 503 a store that cannot
# be reached, 500 a failure on ratchet's or the model's side.
EXPECTED_STATUS = {
    "RatchetError": 500,
    "NotFound": 404,
    "OutboundRefused": 422,
    "ContentTooLarge": 413,
    "AlreadyExists": 409,
    "Conflict": 409,
    "LeaseLost": 409,
    "InvalidInput": 422,
    "BadRequest": 422,
    "BadValue": 422,
    "RequestInvalid": 422,
    "ValidationFailed": 422,
    "SignatureMismatch": 422,
    "IntegrityError": 500,
    "Untrusted": 403,
    "ConfigError": 500,
    "StoreUnavailable": 503,
    "StepFailed": 500,
    "StepTimeout": 504,
    "StepStorageFailed": 503,
    "RemoteStepError": 500,
    "ModelFailed": 500,
    "Unauthorized": 401,
    "Forbidden": 403,
    "TooManyAttempts": 429,
    "MlflowError": 400,  # per instance: the status MLflow gives its error_code
}


def test_every_public_error_has_its_status() -> None:
    assert sorted(errors.__all__) == sorted(EXPECTED_STATUS)
    for name, status in EXPECTED_STATUS.items():
        cls = getattr(errors, name)
        assert issubclass(cls, errors.RatchetError), name
        assert cls.http_status == status, f"{name}.http_status is {cls.http_status}, not {status}"


def test_errors_carry_their_status_into_instances() -> None:
    assert errors.NotFound("no model 'churn'").http_status == 404
    assert errors.RequestInvalid([{"loc": ["body", 0, "x"], "msg": "x: expected a number",
                                   "type": "type"}], total=1).http_status == 422
    # A request body's status is per instance: too large (413), cut short (400).
    big = errors.BadRequest("the body is over the limit of 10 bytes", status=413)
    assert big.http_status == 413 and big.status == 413
    assert errors.BadRequest("not JSON").http_status == 422
    assert errors.BadRequest.http_status == 422  # the class keeps its default
    failed = errors.StepStorageFailed("store down", step="fit", phase="store the outputs",
                                      run_id="r1")
    assert (failed.step, failed.phase, failed.run_id) == ("fit", "store the outputs", "r1")
    assert isinstance(errors.StepTimeout("slow"), TimeoutError)
    assert isinstance(errors.BadValue("expected a number, got 'x'"), ValueError)


@pytest.mark.parametrize(("module", "name"), [
    ("ratchet.serving.request_formats", "BadRequest"),
    ("ratchet.serving.request_validation", "RequestInvalid"),
    ("ratchet.serving.inference", "ModelFailed"),
    ("ratchet.packaging.signature", "SignatureMismatch"),
    ("ratchet.store.ct_state_store", "LeaseLost"),
    ("ratchet.columns", "BadValue"),
    ("ratchet.ct.controller", "LeaseLost"),
])
def test_the_modules_raising_them_use_the_one_class(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


_BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                       if isinstance(value, type) and issubclass(value, BaseException)}


def _exception_classes(tree: ast.Module) -> list[tuple[ast.ClassDef, list[str]]]:
    """Classes in a module that derive from an exception: a builtin one, one of
    ``ratchet.errors``, or another exception class of the same module."""
    known = _BUILTIN_EXCEPTIONS | set(errors.__all__)
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    found: dict[str, tuple[ast.ClassDef, list[str]]] = {}
    changed = True
    while changed:
        changed = False
        for node in classes:
            bases = [b.id if isinstance(b, ast.Name) else b.attr
                     for b in node.bases if isinstance(b, ast.Name | ast.Attribute)]
            if node.name not in found and any(b in known or b in found for b in bases):
                found[node.name] = (node, bases)
                changed = True
    return list(found.values())


def test_the_scan_finds_exception_classes() -> None:
    tree = ast.parse("class A(Exception): ...\nclass B(A): ...\nclass C(errors.NotFound): ..."
                     "\nclass D: ...\nclass E(ValueError, D): ...")
    assert sorted(node.name for node, _ in _exception_classes(tree)) == ["A", "B", "C", "E"]


def test_no_error_class_is_defined_outside_errors_py() -> None:
    misplaced = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "errors.py":
            continue
        for node, bases in _exception_classes(ast.parse(path.read_text())):
            where = f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name}({', '.join(bases)})"
            # A private signal that never leaves its module (e.g. a transaction rolled
            # back on purpose) may stay there, as long as it is not a RatchetError.
            private = node.name.startswith("_") and all(b in _BUILTIN_EXCEPTIONS
                                                         for b in bases)
            if not private:
                misplaced.append(where)
    assert not misplaced, "error classes belong in ratchet/errors.py:\n" + "\n".join(misplaced)
