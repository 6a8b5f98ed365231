# Two commands on a fresh machine: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PORT    ?= 8501
# Loopback by default. HOST=0.0.0.0 serves to other machines and needs a password in
# $SSD_EXPLORER_PASSWORD or .streamlit/secrets.toml (never on this command line: other
# users see command lines in `ps`). ALLOWED_HOSTS: the names users type in the address
# bar (default: this machine's names and IPs when exposed, loopback names otherwise).
HOST    ?= 127.0.0.1
ALLOWED_HOSTS ?=

.PHONY: run test test-fast bench setup clean

setup: $(STAMP)

# Re-install only when requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip >/dev/null
	$(VPY) -m pip install -r requirements.txt
	touch $(STAMP)

# explorer.auth refuses an exposed HOST without a password, else prints the address and
# allowed-hosts flags; `exec` leaves streamlit as the recipe's process. `pages._origin` is
# Streamlit's command line with the WebSocket Origin check installed before it serves.
run: $(STAMP)
	@flags="$$($(VPY) -m explorer.auth preflight --address '$(HOST)' --allowed-hosts '$(ALLOWED_HOSTS)')" \
	  || exit 2; \
	echo "$(VPY) -m pages._origin run app.py --server.port $(PORT) $$flags"; \
	exec $(VPY) -m pages._origin run app.py --server.port $(PORT) $$flags

# Two pytest-xdist workers, one test file each at a time (--dist loadfile keeps a file's
# module fixtures, such as one Streamlit server, in one process): most slow tests wait on
# child processes (servers, Chromium, training jobs), so two workers overlap those waits
# on a 2-core machine (~12 min instead of ~15). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(VPY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Everything but the tests marked slow (the browser test, DDP, training jobs).
test-fast: $(STAMP)
	$(VPY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

bench: $(STAMP)
	$(VPY) -m benchmarks.bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
