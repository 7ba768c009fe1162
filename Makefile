# The local loop (see CONTRIBUTING.md). Run inside the project's environment (.venv).
.PHONY: help lint typecheck test test-all repro same-bytes cross-cpu ci

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

lint: typecheck  ## ruff, format check, mypy, shellcheck, the stages' code deps
	ruff check .
	ruff format --check .
	shellcheck .ci/run .ci/steps
	python .ci/stage_deps.py

typecheck:  ## mypy over quantpipe/ and stages/
	mypy

test:  ## the fast suite: all but the end-to-end dvc repro and the slow process tests
	pytest -m "not e2e and not slow"

test-all:  ## the whole suite
	pytest

repro:  ## rebuild what changed
	dvc repro

same-bytes:  ## the committed revision, rebuilt under other numeric environments
	.ci/steps same-bytes

cross-cpu:  ## the digits training and the housing stages under QEMU as other x86-64 CPUs
	.ci/steps cross-cpu

ci:  ## .ci/run on a fresh clone of HEAD, beside ../shared, as CI runs it
	rm -rf ../quantpipe-ci && git clone -q . ../quantpipe-ci && cd ../quantpipe-ci && CI=true bash .ci/run
