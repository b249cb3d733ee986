# Every target sets itself up: a fresh machine needs only Python 3.11, pip and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench chaos lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tradeconsole demo

# Three pytest workers on two cores, one test file each at a time: at two, half the suite's time
# was spent waiting (on the venue's wall-clock windows, its latency, the kill -9 soak's restarts).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 3 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

# The kill -9 soak of SPEC section 7 (220 SIGKILLs at two rate-limit settings); prints its counts.
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
