# Two commands on a fresh machine: `make run` and `make test`.
# `make run` installs what running needs; `make test` adds the test and lint tools (the `test` extra).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A stamp per install flavour, named after pyproject.toml's checksum: an edit to it reinstalls.
SUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
TEST_STAMP := $(VENV)/.installed-test-$(SUM)

.PHONY: run test check bench install install-test browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	rm -f $(VENV)/.installed-run-*
	touch $(RUN_STAMP)

# The test extra includes everything running needs, so it satisfies the run stamp too.
$(TEST_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-run-* $(VENV)/.installed-test-* $(VENV)/.installed-[0-9]*
	touch $(RUN_STAMP) $(TEST_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

run: install
	$(BIN)/netra run

check: install-test
	$(BIN)/python -m tools.check

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used): installed once, with
# apt-get update only when the package lists do not know it yet.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

browser:
	@[ -x $(CHROMIUM) ] || $(APT) install -y --no-install-recommends chromium \
		|| { $(APT) update && $(APT) install -y --no-install-recommends chromium; }

# The slowest tests are listed at the end: where the suite's time goes, in every CI log.
test: install-test check browser
	$(BIN)/python -m pytest -q --durations=15

bench: install-test
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.ledger_bench

clean:
	rm -rf $(VENV) .netra
