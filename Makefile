# Two commands: `make run` and `make test`. Everything else here serves them.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
HTMX    := static/vendor/htmx.min.js
MO      := webapp/translations/nl/LC_MESSAGES/messages.mo

.PHONY: install run test lint format bench clean system-deps system-fonts fonts audit postgres-server

install: $(STAMP) $(HTMX) $(MO) fonts system-fonts

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
system-deps: system-fonts
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium wrk poppler-utils >/dev/null; \
	  else echo "chromium/wrk missing: install them (sudo apt-get install chromium wrk)"; fi; \
	fi

# PostgreSQL's server binaries for the tests (tests/support/postgres.py starts a throw-away
# cluster in a temp dir as an unprivileged user; no system service is started or needed).
postgres-server:
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	  else echo "PostgreSQL missing: its integration tests fail under CI=true (sudo apt-get install postgresql)"; fi; \
	fi

# The label fonts' fallback chain (webapp/pdf/fonts.py): Noto for Hebrew, Arabic, Indic, Thai…
# (fonts-noto-core), Noto CJK, Symbola (emoji in outline); `make install` adds them when missing
# and we are root (CI); otherwise labels with those scripts are refused with a clear message.
LABEL_FONTS := /usr/share/fonts/truetype/noto/NotoSansHebrew-Regular.ttf \
  /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc \
  /usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf
system-fonts:
	@for f in $(LABEL_FONTS); do test -f $$f || missing=1; done; if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-core fonts-noto-cjk fonts-symbola >/dev/null; \
	  else echo "label fonts missing: Hebrew, Arabic, CJK… labels are refused (sudo apt-get install fonts-noto-core fonts-noto-cjk fonts-symbola)"; fi; \
	fi

run: install
	$(BIN)/pressroom run --demo

test: install system-deps postgres-server
	$(BIN)/ruff check webapp workers tests bench
	$(BIN)/ruff format --check webapp workers tests bench
	$(BIN)/mypy
	@$(MAKE) --no-print-directory audit
	$(BIN)/python -m pytest -p no:cacheprovider -n 2 --dist loadfile

# pip-audit of the installed dependencies (our own editable package skipped). A known
# vulnerability fails; an advisory service that cannot be reached (offline, or a mirror that
# answers "not found" for every package) is said loudly and skipped.
AUDIT_JSON := $(VENV)/pip-audit.json
audit: install
	@rm -f $(AUDIT_JSON)
	@$(BIN)/pip-audit --local --skip-editable --progress-spinner off --format json \
	  --output $(AUDIT_JSON) >$(VENV)/pip-audit.log 2>&1; $(BIN)/python -c "$$AUDIT_REPORT"

define AUDIT_REPORT
import json, sys
try:
    deps = json.load(open("$(AUDIT_JSON)"))["dependencies"]
except (OSError, ValueError, KeyError):
    sys.exit(print("pip-audit: the advisory service could not be reached (see $(VENV)/pip-audit.log): dependencies NOT audited"))
found = [(d["name"], d["version"], v["id"], v.get("fix_versions")) for d in deps for v in d.get("vulns", [])]
for name, version, vuln, fixes in found:
    print(f"pip-audit: {name} {version}: {vuln} (fixed in {', '.join(fixes) or 'no release yet'})")
audited = [d for d in deps if "skip_reason" not in d]
if found:
    sys.exit(f"pip-audit: {len(found)} known vulnerabilities: bump the dependencies above")
if not audited:
    sys.exit(print("pip-audit: the advisory service knows none of the dependencies (offline mirror?): NOT audited"))
print(f"pip-audit: {len(audited)} dependencies audited, no known vulnerabilities")
endef
export AUDIT_REPORT

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
