# The two commands of the README (`make serve`, `make test`). Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: setup browser redis phone serve demo test bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

# Debian's Chromium for the browser tests (Playwright's own download does not work offline).
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }

# Debian's redis-server for the shared-cache tests (the tests start their own instance).
redis:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server; fi; }

# Debian's baresip, the SIP phone of the phone-call tests (tests/transports/test_sip_call.py).
phone:
	@command -v baresip >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq baresip-core; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq baresip-core; fi; }

# The main job: the demo server with the default bot (restaurant, offline). Open the URL it prints.
serve: setup
	$(VENV)/bin/voicebot serve pipelines/restaurant.yaml --host $(HOST) --port $(PORT)

# One offline call through the echo bot: a synthesized caller, the bot's audio and events in out/.
demo: setup
	$(VENV)/bin/voicebot make-caller out/caller.wav \
	  "Hello, I would like to book a table." \
	  "For four people on Friday at half past seven." --pause 4
	$(VENV)/bin/voicebot run pipelines/echo.yaml --input out/caller.wav \
	  --output out/bot.wav --events out/events.jsonl --mix out/call.wav

test: setup browser redis phone
	$(VENV)/bin/ruff check voicebot tests setup.py
	$(VENV)/bin/ruff format --check voicebot tests setup.py
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -rs

bench: setup
	$(VENV)/bin/voicebot bench loop --json out/bench-loop.json
	$(VENV)/bin/voicebot bench match --json out/bench-match.json
	$(VENV)/bin/voicebot bench calls --calls 4 --calls-json out/bench-calls.json
	$(VENV)/bin/voicebot bench providers --engine node --json out/bench-providers.json
	$(VENV)/bin/voicebot bench understanding --json out/bench-understanding.json
	$(VENV)/bin/voicebot bench echo --json out/bench-echo.json
