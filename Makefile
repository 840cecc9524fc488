# Two commands: `make run` and `make test`. Everything else here serves them.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
HTMX    := static/vendor/htmx.min.js
MO      := webapp/translations/nl/LC_MESSAGES/messages.mo

.PHONY: install run test lint format bench clean system-deps fonts

install: $(STAMP) $(HTMX) $(MO) fonts

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(HTMX): package.json
	npm install --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $@

$(MO): webapp/translations/nl/LC_MESSAGES/messages.po webapp/translations/es/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile -d webapp/translations

# The static Noto Sans instances take ~20 s to make once per machine: not inside the first job.
fonts: $(STAMP)
	@$(BIN)/python -c "from webapp.pdf.fonts import static_font; static_font(''); static_font('B')"

# Debian's chromium (browser tests), wrk (benchmarks) and poppler-utils (PDF previews in docs);
# installed only when missing and only when we are root, as on CI.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wrk poppler-utils >/dev/null; \
	  else echo "chromium/wrk missing: install them (sudo apt-get install chromium wrk)"; fi; \
	fi

run: install
	$(BIN)/pressroom run --demo

test: install system-deps
	$(BIN)/ruff check webapp workers tests bench
	$(BIN)/ruff format --check webapp workers tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -p no:cacheprovider

lint: install
	$(BIN)/ruff check webapp workers tests bench
	$(BIN)/ruff format --check webapp workers tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format webapp workers tests bench
	$(BIN)/ruff check --fix webapp workers tests bench

bench: install system-deps
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) node_modules static/vendor instance
