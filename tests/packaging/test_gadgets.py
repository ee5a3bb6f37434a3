"""A corpus of hostile skops model files: each must be refused at load without trust.

Each gadget is injected into the attribute dict of a real saved LogisticRegression (by
editing the zip's ``schema.json``) and names a type or function that, when skops
constructs it, runs code or touches files. ``load_model(dir)`` must raise Untrusted and
leave no side-effect file; the live gadgets are also loaded with ``trust=True`` to show
that they are real (the side effect then happens).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ratchet.errors import Untrusted
from ratchet.packaging import load_model, save_model

Node = dict[str, Any]
STR_TYPE: Node = {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"}


def json_node(value: Any) -> Node:
    return {
        "__class__": type(value).__name__ if value is not None else "NoneType",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def tuple_node(*items: Node) -> Node:
    return {
        "__class__": "tuple",
        "__module__": "builtins",
        "__loader__": "TupleNode",
        "content": list(items),
    }


def dict_node(**items: Node) -> Node:
    return {
        "__class__": "dict",
        "__module__": "builtins",
        "__loader__": "DictNode",
        "content": items,
        "key_types": {
            "__class__": "list",
            "__module__": "builtins",
            "__loader__": "ListNode",
            "content": [STR_TYPE] * len(items),
        },
    }


def call(module: str, name: str, *args: Node) -> Node:
    """``module.name(*args)`` at load time (skops' ConstructorFromReduceNode)."""
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": tuple_node(*args),
    }


def function(module: str, name: str) -> Node:
    return {"__class__": name, "__module__": module, "__loader__": "FunctionNode"}


def partial(func: Node, *args: Node) -> Node:
    return {
        "__class__": "partial",
        "__module__": "functools",
        "__loader__": "PartialNode",
        "content": {
            "func": func,
            "args": tuple_node(*args),
            "kwds": dict_node(),
            "namespace": json_node(None),
        },
    }


def obj(module_: str, class_: str, **attrs: Node) -> Node:
    """An instance made with ``__new__`` and filled with ``__setstate__`` / ``__dict__``."""
    return {
        "__class__": class_,
        "__module__": module_,
        "__loader__": "ObjectNode",
        "content": dict_node(**attrs),
    }


def function_transformer(func: Node, **kwargs: Node) -> Node:
    return obj(
        "sklearn.preprocessing._function_transformer",
        "FunctionTransformer",
        func=func,
        kw_args=dict_node(**kwargs),
    )


def shell(path: Path) -> str:
    return f"touch {path}"


def python_code(path: Path) -> str:
    return f"open({str(path)!r}, 'w').write('x')"


# name -> (node built from the side-effect path, whether loading it alone has the effect)
GADGETS: dict[str, tuple[Callable[[Path], Node], bool]] = {
    "scipy.io netcdf_file(path, 'w')": (
        lambda p: call("scipy.io._netcdf", "netcdf_file", json_node(str(p)), json_node("w")),
        True,
    ),
    "scipy.io public netcdf_file": (
        lambda p: call("scipy.io", "netcdf_file", json_node(str(p)), json_node("w")),
        True,
    ),
    "numpy.memmap(path, mode='w+')": (
        lambda p: call(
            "numpy",
            "memmap",
            json_node(str(p)),
            json_node("uint8"),
            json_node("w+"),
            json_node(0),
            tuple_node(json_node(4)),
        ),
        True,
    ),
    "numpy.save(path, ...)": (
        lambda p: call("numpy", "save", json_node(str(p)), json_node([1, 2])),
        True,
    ),
    "builtins.open(path, 'w')": (
        lambda p: call("builtins", "open", json_node(str(p)), json_node("w")),
        True,
    ),
    "builtins.exec(code)": (lambda p: call("builtins", "exec", json_node(python_code(p))), True),
    "builtins.eval(code)": (lambda p: call("builtins", "eval", json_node(python_code(p))), True),
    "os.system(cmd)": (lambda p: call("os", "system", json_node(shell(p))), True),
    "subprocess.Popen(argv)": (
        lambda p: call(
            "subprocess",
            "Popen",
            {
                "__class__": "list",
                "__module__": "builtins",
                "__loader__": "ListNode",
                "content": [json_node("touch"), json_node(str(p))],
            },
        ),
        True,
    ),
    "sklearn.datasets dump_svmlight_file": (
        lambda p: call(
            "sklearn.datasets._svmlight_format_io",
            "dump_svmlight_file",
            json_node([[1.0]]),
            json_node([1.0]),
            json_node(str(p)),
        ),
        True,
    ),
    "numpy.lib.npyio load": (lambda p: call("numpy.lib.npyio", "load", json_node(str(p))), False),
    "scipy.io.savemat": (
        lambda p: call("scipy.io", "savemat", json_node(str(p)), dict_node()),
        True,
    ),
    "scipy.stats distribution with code in _parse_arg_template": (
        lambda p: obj(
            "scipy.stats._continuous_distns",
            "norm_gen",
            _parse_arg_template=json_node(python_code(p) + "\ndef _parse_args(): pass\n"),
            name=json_node("x"),
        ),
        False,
    ),
    "FunctionTransformer(func=builtins.eval)": (
        lambda p: function_transformer(function("builtins", "eval")),
        False,
    ),
    "FunctionTransformer(func=os.system)": (
        lambda p: function_transformer(function("os", "system")),
        False,
    ),
    "FunctionTransformer(func=dump_svmlight_file)": (
        lambda p: function_transformer(
            function("sklearn.datasets._svmlight_format_io", "dump_svmlight_file"),
            f=json_node(str(p)),
        ),
        False,
    ),
    "FunctionTransformer(func=numpy.load)": (
        lambda p: function_transformer(function("numpy", "load"), allow_pickle=json_node(True)),
        False,
    ),
    "functools.partial(builtins.exec, code)": (
        lambda p: partial(function("builtins", "exec"), json_node(python_code(p))),
        False,
    ),
    "functools.partial(subprocess.call)": (
        lambda p: partial(function("subprocess", "call"), json_node(shell(p))),
        False,
    ),
    "operator.attrgetter": (
        lambda p: {
            "__class__": "attrgetter",
            "__module__": "operator",
            "__loader__": "OperatorFuncNode",
            "attrs": tuple_node(json_node("__globals__")),
        },
        False,
    ),
    "operator.methodcaller": (
        lambda p: {
            "__class__": "methodcaller",
            "__module__": "operator",
            "__loader__": "OperatorFuncNode",
            "attrs": tuple_node(json_node("system"), json_node(shell(p))),
        },
        False,
    ),
    "type importlib.import_module": (
        lambda p: {
            "__class__": "import_module",
            "__module__": "importlib",
            "__loader__": "TypeNode",
        },
        False,
    ),
    "defaultdict(default_factory=builtins.exec)": (
        lambda p: {
            "__class__": "defaultdict",
            "__module__": "collections",
            "__loader__": "DefaultDictNode",
            "content": {"main": dict_node(), "default_factory": function("builtins", "exec")},
        },
        False,
    ),
    "numpy.ma.mrecords fromtextfile": (
        lambda p: call("numpy.ma.mrecords", "fromtextfile", json_node(str(p))),
        False,
    ),
    "sklearn.utils._testing helper": (
        lambda p: call(
            "sklearn.utils._testing",
            "assert_run_python_script_without_output",
            json_node(python_code(p)),
        ),
        True,
    ),
    "joblib.Memory re-exported by sklearn.utils": (
        lambda p: call("sklearn.utils._joblib", "Memory", json_node(str(p))),
        False,
    ),
}


def _benign_model(directory: Path) -> Path:
    X = pd.DataFrame({"a": np.arange(20.0)})
    save_model(LogisticRegression().fit(X, X.a > 9), directory, input_example=X)
    return directory / "model.skops"


def write_gadget(directory: Path, gadget: Node) -> None:
    """Put ``gadget`` into the saved model's attribute dict, as a hostile file would."""
    path = _benign_model(directory)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    schema = json.loads(members["schema.json"])
    attrs = schema["content"]
    attrs["content"]["gadget_"] = gadget
    attrs["key_types"]["content"].append(STR_TYPE)
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("name", list(GADGETS))
def test_gadget_is_refused_without_trust(name: str, tmp_path: Path) -> None:
    build, _ = GADGETS[name]
    effect = tmp_path / "PWNED"
    write_gadget(tmp_path / "m", build(effect))
    with pytest.raises(Untrusted, match="outside ratchet's allow-list"):
        load_model(tmp_path / "m")
    assert not effect.exists()


LIVE = [name for name, (_, live) in GADGETS.items() if live and "os.system" not in name]


@pytest.mark.parametrize("name", LIVE)
def test_live_gadgets_are_real(name: str, tmp_path: Path) -> None:
    # The control: the same file loaded with trust=True does run the gadget, so the
    # refusal above is what stands between the file and its side effect.
    build, _ = GADGETS[name]
    effect = tmp_path / "PWNED"
    write_gadget(tmp_path / "m", build(effect))
    # A gadget need not leave a loadable model; its effect is what counts.
    with contextlib.suppress(Exception):
        load_model(tmp_path / "m", trust=True)
    if "Popen" in name or "_testing" in name:
        import time

        for _ in range(100):  # the child process touches the file on its own time
            if effect.exists():
                break
            time.sleep(0.05)
    assert (
        effect.exists()
        or effect.with_suffix(".npy").exists()
        or effect.with_suffix(".mat").exists()
    )


def test_issue_snippet_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    import scipy.stats

    X = pd.DataFrame({"a": np.arange(20.0)})
    clf = LogisticRegression().fit(X, X.a > 9)
    d = scipy.stats._continuous_distns.norm_gen(name="x")
    d._parse_arg_template = "open('PWNED','w').write('x')\n" + d._parse_arg_template
    clf.calibration_ = d
    save_model(clf, "evil", input_example=X)
    with pytest.raises(Untrusted, match=r"scipy\.stats\._continuous_distns\.norm_gen"):
        load_model("evil")
    assert not (tmp_path / "PWNED").exists()
    load_model("evil", trust=True)  # control: the gadget is live
    assert (tmp_path / "PWNED").exists()


def test_allowed_partial_does_not_launder_its_function(tmp_path: Path) -> None:
    # functools.partial is allowed (HistGradientBoosting holds one); what it wraps is not.
    write_gadget(tmp_path / "m", partial(function("sklearn.utils.validation", "check_array")))
    load_model(tmp_path / "m")  # an allowed function inside: loads
    write_gadget(tmp_path / "n", partial(function("posix", "system"), json_node("true")))
    with pytest.raises(Untrusted, match=r"posix\.system"):
        load_model(tmp_path / "n")


def test_skops_default_trust_is_not_enough(tmp_path: Path) -> None:
    # skops trusts every sklearn estimator class by default; ratchet's list is narrower.
    # A default-trusted estimator that is not on ratchet's list is refused.
    import skops.io

    from ratchet.packaging.flavors.sklearn_types import ALLOWLIST

    name = "sklearn.manifold._t_sne.TSNE"
    assert name not in ALLOWLIST
    write_gadget(tmp_path / "m", obj("sklearn.manifold._t_sne", "TSNE"))
    assert name not in skops.io.get_untrusted_types(file=tmp_path / "m" / "model.skops")
    with pytest.raises(Untrusted, match="TSNE"):
        load_model(tmp_path / "m")


@pytest.mark.skipif(sys.platform == "win32", reason="os.system gadget is POSIX-only here")
def test_os_system_gadget_is_refused_and_inert(tmp_path: Path) -> None:
    effect = tmp_path / "PWNED"
    write_gadget(tmp_path / "m", call("posix", "system", json_node(shell(effect))))
    with pytest.raises(Untrusted, match=r"posix\.system"):
        load_model(tmp_path / "m")
    assert not effect.exists()
    assert os.path.isdir(tmp_path / "m")
