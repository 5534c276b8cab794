# Developer commands. `make setup` once, then `make test` while you work and `make test-all lint docs`
# before you push (CI runs all of them).
PY := .venv/bin/python

.PHONY: setup test test-all lint format typecheck imports docs docs-serve clean

setup:  ## create .venv with the pinned stack and the dev tools, install the pre-commit hook
	python3.11 -m venv .venv && .venv/bin/pip install -q -e ".[dev]" && .venv/bin/pre-commit install

test:  ## the fast suite (under 3 minutes on 2 cores): everything not marked slow
	$(PY) -m pytest -q -m "not slow"

test-all:  ## the whole suite, end-to-end runs included (what the README's second command runs)
	$(PY) -m pytest -q

lint: imports typecheck  ## formatting, lint, the layers contract and types
	.venv/bin/ruff format --check src scripts benchmarks tests docs/hooks.py docs/examples
	.venv/bin/ruff check src scripts benchmarks tests docs/hooks.py docs/examples

format:  ## rewrite files in the house style
	.venv/bin/ruff format src scripts benchmarks tests docs/hooks.py docs/examples
	.venv/bin/ruff check --fix src scripts benchmarks tests docs/hooks.py docs/examples

typecheck:
	.venv/bin/mypy

imports:  ## the layers contract (.importlinter): an import up the layers fails
	.venv/bin/lint-imports

docs:  ## build the documentation site (strict: a warning fails)
	.venv/bin/mkdocs build --strict

docs-serve:
	.venv/bin/mkdocs serve

clean:
	rm -rf site .pytest_cache .mypy_cache .ruff_cache
