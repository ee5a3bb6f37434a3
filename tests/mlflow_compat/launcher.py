"""A fork server for one MLflow client venv: it imports mlflow (and, in a full client venv,
scikit-learn and pandas) once, then runs each client program in a fresh forked child.

Every program the suite runs in a client venv used to pay ``import mlflow`` (1-4 s of CPU
on the shared 2 cores) in a process of its own; forked from this one, a child starts with
those modules already imported and nothing else done: no run, tracking URI, experiment or
autolog patch of an earlier program is in it (each program still runs in its own process,
with its own argv, working directory and environment, and exits as a process exits).

Runs with the client venv's python, standard library only:
``python launcher.py MODULE...`` (the modules to import first). Protocol, one JSON
document a line: it prints ``{"ready": ...}`` once the modules are imported; then for each
request line read from stdin ``{"argv": [...], "code": str | null, "cwd": ..., "env":
{...}, "stdout": path, "stderr": path}`` it prints ``{"pid": child}`` and, when the child
ended, ``{"returncode": n}`` (negative: killed by that signal, as ``subprocess`` says).
``argv[0]`` is the script's path, or ``-c`` with ``code`` the program's text. It exits at
the end of its stdin.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import sys
import threading
import time
import traceback
import types
from typing import Any, NoReturn

# What PYTHONPATH added to sys.path when this server started (a child's own PYTHONPATH
# goes where python's startup puts it: after the script's directory).
STARTUP_PYTHONPATH = os.environ.get("PYTHONPATH", "")


def reply(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def run_child(request: dict[str, Any]) -> NoReturn:
    """In the forked child: become the requested program, run it, exit as python does."""
    code = 1
    try:
        with open(os.devnull, "rb") as devnull:
            os.dup2(devnull.fileno(), 0)
        with open(request["stdout"], "wb") as out, open(request["stderr"], "wb") as err:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        argv: list[str] = request["argv"]
        sys.argv = list(argv)
        path = os.environ.get("PYTHONPATH", "")
        extra = [p for p in path.split(os.pathsep) if p] if path != STARTUP_PYTHONPATH else []
        if argv[0] == "-c":
            source, filename = request["code"], "<string>"
            sys.path[0:1] = ["", *extra]
        else:
            filename = os.path.abspath(argv[0])
            with open(filename, encoding="utf-8") as script:
                source = script.read()
            sys.path[0:1] = [os.path.dirname(filename), *extra]
        main = types.ModuleType("__main__")
        main.__dict__.update(__builtins__=__builtins__, __spec__=None, __loader__=None)
        if filename != "<string>":
            main.__file__ = filename
        sys.modules["__main__"] = main
        exec(compile(source, filename, "exec"), main.__dict__)  # the program
        code = 0
    except SystemExit as stop:
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException as exc:  # what python prints for an uncaught exception, and exit 1
        # From the program's own frames (this function's frame left out).
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next
                                  if exc.__traceback__ else None)
        code = 1
    # What the interpreter does at exit: join non-daemon threads, run the atexit functions.
    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
        code = code or 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream has nothing left to say
            stream.flush()
    os._exit(code)


def serve() -> None:
    started = time.perf_counter()
    for name in sys.argv[1:]:
        importlib.import_module(name)
    reply({"ready": True, "modules": sys.argv[1:],
           "seconds": round(time.perf_counter() - started, 3), "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(request)
        reply({"pid": pid})
        _, status = os.waitpid(pid, 0)
        reply({"returncode": os.waitstatus_to_exitcode(status)})
    # The end of the requests: nothing of this process's own to finish (it ran no program),
    # and tearing mlflow, pandas and scikit-learn down took seconds.
    os._exit(0)


if __name__ == "__main__":
    serve()
