# Two commands on a fresh machine: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PORT    ?= 8501

.PHONY: run test test-fast bench setup clean

setup: $(STAMP)

# Re-install only when requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip >/dev/null
	$(VPY) -m pip install -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	$(VPY) -m streamlit run app.py --server.port $(PORT)

test: $(STAMP)
	$(VPY) -m pytest -q

# Everything but the tests marked slow (the browser test, DDP, training jobs).
test-fast: $(STAMP)
	$(VPY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(VPY) -m benchmarks.bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
