"""``ratchet pipeline``: run a pipeline from a file or module, inspect it, resume it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Invoke

FLOW = '''
import os
from pathlib import Path
import ratchet

@ratchet.step
def double(n: int) -> int:
    print("doubling", n)
    return n * 2

@ratchet.step
def check(x: int) -> int:
    if Path("fail.flag").exists():
        raise ValueError("flag file present")
    return x + 1

@ratchet.pipeline
def flow(n: int = 2):
    return check(double(n))
'''


def _project(project: Path) -> None:
    (project / "flow.py").write_text(FLOW)


def test_run_show_list_logs(cli: Invoke, project: Path) -> None:
    _project(project)
    result = cli("pipeline", "run", "flow.py:flow", "--param", "n=5", "--json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["status"] == "finished" and run["params"] == {"n": 5}
    assert [(s["node"], s["status"]) for s in run["steps"]] == [
        ("double", "finished"), ("check", "finished")]
    assert run["steps"][1]["inputs"][0]["from"] == "double.output"

    again = cli("pipeline", "run", "flow:flow", "-p", "n=5")  # module ref from the cwd
    assert again.exit_code == 0, again.output
    assert "cached" in again.stdout and "DAG" in again.stdout

    shown = cli("pipeline", "show", run["run_id"][:12])
    assert shown.exit_code == 0 and "double" in shown.stdout and "finished" in shown.stdout
    listed = json.loads(cli("pipeline", "list", "--json").stdout)
    assert [r["status"] for r in listed] == ["finished", "finished"]
    assert listed[1]["steps"] == {"finished": 2} and listed[0]["steps"] == {"cached": 2}
    logs = cli("pipeline", "logs", run["run_id"], "double")
    assert logs.stdout == "doubling 5\n"
    assert "printed nothing" in cli("pipeline", "logs", run["run_id"], "check").stdout


def test_failure_then_resume(cli: Invoke, project: Path) -> None:
    _project(project)
    (project / "fail.flag").touch()
    failed = cli("pipeline", "run", "flow.py:flow")
    assert failed.exit_code == 1
    assert "step 'check' failed" in failed.stderr and "flag file present" in failed.stderr
    assert "ratchet pipeline resume" in failed.stdout and "failed" in failed.stdout
    assert "Traceback" not in failed.stderr + failed.stdout
    run_id = json.loads(cli("pipeline", "list", "--json").stdout)[0]["run_id"]
    (project / "fail.flag").unlink()
    resumed = cli("pipeline", "resume", run_id, "--json")
    assert resumed.exit_code == 0, resumed.output
    data = json.loads(resumed.stdout)
    assert data["resumed_from"] == run_id
    assert [s["status"] for s in data["steps"]] == ["cached", "finished"]


def test_user_mistakes_are_one_line_errors(cli: Invoke, project: Path) -> None:
    _project(project)
    for args, expected in [
        (("pipeline", "run", "flow.py:nothing"), "has no attribute 'nothing'"),
        (("pipeline", "run", "missing.py:flow"), "no such file"),
        (("pipeline", "run", "flow.py:flow", "-p", "n=abc"), "--param n=abc"),
        (("pipeline", "run", "flow.py:flow", "-p", "m=1"), "unexpected keyword argument 'm'"),
        (("pipeline", "run", "flow.py:flow", "-x", "warp"), "unknown executor 'warp'"),
        (("pipeline", "show", "0123456789"), "no pipeline run"),
        (("pipeline", "run", "flow.py:double"), "not a pipeline"),
    ]:
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert expected in result.stderr, (args, result.stderr)


def test_run_as_a_real_process(project: Path) -> None:
    _project(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}
    env["RATCHET_HOME"] = str(project / ".ratchet")
    ratchet = Path(sys.executable).parent / "ratchet"
    done = subprocess.run([str(ratchet), "pipeline", "run", "flow:flow", "-p", "n=1", "--json"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "finished"


def test_a_module_that_fails_to_import_is_a_one_line_error(cli: Invoke, project: Path) -> None:
    (project / "broken.py").write_text("import ratchet\nraise RuntimeError('boom at import')\n")
    (project / "syntax.py").write_text("def oops(:\n")
    for ref, expected in [("broken.py:flow", "RuntimeError: boom at import"),
                          ("broken:flow", "RuntimeError: boom at import"),
                          ("syntax.py:flow", "SyntaxError")]:
        result = cli("pipeline", "run", ref)
        assert result.exit_code == 1, (ref, result.output)
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_file_reference_is_recorded_by_path(cli: Invoke, project: Path) -> None:
    from ratchet.pipelines import load_pipeline

    _project(project)
    assert load_pipeline("flow.py:flow").ref == f"{(project / 'flow.py').resolve()}:flow"
