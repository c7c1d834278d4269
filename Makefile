# Voxpop: `make run` and `make test` work on a fresh machine with Python, pip and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080
PHONE_PORT ?= 8090

.PHONY: setup run test lint typecheck pytest bench chromium clean i18n-extract phone

setup: $(STAMP)

# Reinstall when the dependencies change; the stamp keeps repeated runs fast.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/voxpop db upgrade
	$(BIN)/voxpop survey load surveys/examples/*.toml
	@echo
	@echo "Voxpop is running on SQLite (voxpop.db) with the built-in simulator."
	@echo "  Staff console:     http://$(HOST):$(PORT)/  (the first time, open the setup link printed below)"
	@echo "  Browser simulator: http://$(HOST):$(PORT)/simulator"
	@echo "  Terminal:          $(BIN)/voxpop chat        (then type PARK or LIGHTS)"
	@echo "  Stop with Ctrl-C."
	@echo
	$(BIN)/voxpop serve --host $(HOST) --port $(PORT)

# The real channels without an account: fake Telegram and Twilio, and a phone to type into.
phone: setup
	$(BIN)/python -m tests.fakes --voxpop http://$(HOST):$(PHONE_PORT)

chromium:
	@scripts/ensure-chromium

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup chromium
	$(BIN)/pytest

test: lint typecheck pytest

bench: setup
	$(BIN)/python -m bench

i18n-extract: setup
	$(BIN)/pybabel extract -F babel.cfg --no-default-keywords -k N_ \
		--no-location --omit-header --sort-output -o bot/conversation/locale/voxpop.pot .
	$(BIN)/pybabel update -i bot/conversation/locale/voxpop.pot -d bot/conversation/locale -D voxpop \
		--ignore-pot-creation-date

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
