# Two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev

.PHONY: demo test test-fast lint typecheck bench clean services tools

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

test: $(STAMP) tools
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
