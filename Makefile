# Two commands matter: `make demo` and `make test`. GPU hosts: install their CUDA torch first,
# then `make install TORCH_SPEC=` (empty) so pip keeps it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test lint bench clean clean-cache

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(PIP) install --quiet $(TORCH_SPEC); fi
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

demo: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(PY) manage.py demo

# The ranking page's pure modules (tiers, keys, drafts, skip) with node's own test runner, then pytest.
test: install
	node --test tests/frontend/js/*.test.mjs
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) bench/import.py
	$(PY) bench/generation.py
	$(PY) bench/serving.py
	$(PY) bench/agreement.py
	$(PY) bench/export.py

clean:
	rm -rf $(VENV) db.sqlite3 test-db.sqlite3 media .cache

# The tiny model is cached once per machine, outside the checkout (training.tiny_model.default_tiny_model_dir).
clean-cache:
	rm -rf "$${TINY_MODEL_DIR:-$${XDG_CACHE_HOME:-$$HOME/.cache}/annotation-platform/tiny-chat-model}"
