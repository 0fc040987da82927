# The two commands of the README. Both set everything up first (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup demo test lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

# Talk to the echo bot offline: a synthesized caller through the full voice loop.
demo: setup
	$(VENV)/bin/voicebot make-caller out/caller.wav \
	  "Hello, I would like to book a table." \
	  "For four people on Friday at half past seven."
	$(VENV)/bin/voicebot run pipelines/echo.yaml --input out/caller.wav \
	  --output out/bot.wav --events out/events.jsonl --mix out/call.wav

test: setup
	$(VENV)/bin/ruff check voicebot tests
	$(VENV)/bin/pytest -q -rs

bench: setup
	$(VENV)/bin/voicebot bench loop --json out/bench-loop.json
