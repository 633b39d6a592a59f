# `make test` and `make demo` build .venv on first use from the exact pins in requirements.lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test reliability demo venv lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Tests run in $(WORKERS) processes (pytest-xdist; a worker that runs out of tests takes
# queued ones from the other, so one long test late in the order leaves no core idle), in
# a random order (pytest-randomly);
# the last line printed names the seed, and `make test PYTEST_ARGS="-p randomly
# --randomly-seed=N"` repeats that order and those fault-injection points.
# `make test` writes nothing outside temporary folders; `make reliability` runs the fault
# tests alone and, when all pass, regenerates RELIABILITY.md from what they observed
# (tests/faults/records.py merges the records of every process).
WORKERS ?= 2
PYTEST_ARGS ?=

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist worksteal $(PYTEST_ARGS)

reliability: $(STAMP)
	FTLAB_WRITE_RELIABILITY=1 $(BIN)/python -m pytest -q -n $(WORKERS) tests/faults $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/ftlab demo

# Re-pin after changing dependencies: installs the ranges from pyproject into .venv and freezes them.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" -e ".[test,cluster,tune,export,timm,peft]"
	{ echo '# Exact pins for .venv (make lock regenerates them from the ranges in pyproject.toml).'; \
	  $(BIN)/python -m pip freeze --all --exclude-editable | grep -vE '^(-e|pip==)'; } > requirements.lock

clean:
	rm -rf $(VENV) build src/*.egg-info
