# Two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev

.PHONY: demo test test-fast lint typecheck bench clean services tools mlflow-envs

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv

$(STAMP): pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/rainfall/demo.py

# System tools the tests use: promtool (Debian package prometheus) checks the metrics
# exposition and the Grafana queries; chromium runs the dashboard's browser tests (Playwright)
# and renders /docs offline. Installed once, only
# when missing.
tools:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "make: installing promtool (Debian package prometheus)"; \
	  { [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; }; \
	  $$SUDO apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "make: installing chromium (the dashboard's browser tests, tests/ui; /docs in tests/serving)"; \
	  { [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; }; \
	  $$SUDO apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The real MLflow clients that tests/mlflow_compat drives against `ratchet server`, one venv
# per pinned version (tests/mlflow_compat/pins/*.txt): .venv-mlflow2 and .venv-mlflow3 also
# hold scikit-learn and this checkout (editable), so mlflow.pyfunc can load ratchet-saved
# models; .venv-mlflow3-skinny is the tracking-only client. A venv is made anew only when
# its pins (or ratchet's own dependencies) change: the stamp file records it.
MLFLOW_PINS := tests/mlflow_compat/pins
MLFLOW_ENVS := .venv-mlflow2/.installed .venv-mlflow3/.installed .venv-mlflow3-skinny/.installed

.venv-mlflow2/.installed .venv-mlflow3/.installed: .venv-mlflow%/.installed: \
		$(MLFLOW_PINS)/mlflow%.txt pyproject.toml | $(BIN)/uv
	rm -rf $(@D)
	$(BIN)/uv venv --quiet --python $(BIN)/python $(@D)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(@D)/bin/python -r $< -e .
	touch $@

.venv-mlflow3-skinny/.installed: $(MLFLOW_PINS)/mlflow3-skinny.txt | $(BIN)/uv
	rm -rf $(@D)
	$(BIN)/uv venv --quiet --python $(BIN)/python $(@D)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(@D)/bin/python -r $<
	touch $@

mlflow-envs: $(MLFLOW_ENVS)

test: $(STAMP) tools mlflow-envs
	$(BIN)/ruff check src tests bench examples
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup

# The fast part alone (no Ray, examples, crash or end-to-end tests): for a quick loop while
# developing. `make test` is what CI runs.
test-fast: $(STAMP)
	$(BIN)/pytest -n 2 -m "not (ray or examples or crash or e2e)"

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .ratchet .pytest_cache .mypy_cache
