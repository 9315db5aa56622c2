# pf-status-relay developer entry points. Everything installs into ./.venv from PyPI.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# A versioned tag (pfrelay's version, as the manifests in deploy/kubernetes name it), never latest.
IMAGE  ?= localhost/pf-status-relay:$(VERSION)
ENGINE ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null || echo podman)
VERSION  := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' pfrelay/__init__.py)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

.PHONY: all venv demo test lint test-py39 test-lower-bounds lock footprint kernel-test soak rpm rpm-check systemd-check deploy-check alerts-check image-build bench clean

all: lint test

# Exactly the locked releases, hashes checked (requirements/*.lock, `make lock`); pfrelay itself
# is built with the locked setuptools, so nothing unhashed is installed. --clear: a package that
# left the lock must not linger in the venv.
$(BIN)/pfrelay: pyproject.toml requirements/dev.lock requirements/build.lock
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements/dev.lock -r requirements/build.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

venv: $(BIN)/pfrelay

## Replay a real partner-loss-and-recovery timeline through the relay (no NIC needed).
demo: venv
	$(BIN)/pfrelay demo

## The fast test suite (fake /proc, /sys and ip), with coverage of pfrelay/.
test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider --cov=pfrelay --cov-report=term --cov-fail-under=90

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict pfrelay

## The same tests on Python 3.9, the RHEL 9 default.
test-py39:
	bash .ci/py39.sh

## The same tests on Python 3.9 against the oldest dependencies the bounds allow (EPEL 9's).
test-lower-bounds:
	bash .ci/lower-bounds.sh

## Re-resolve requirements/*.lock from pyproject.toml (uv, from PyPI, with hashes, for every
## Python >= 3.9). Run it after changing a dependency or to take upstream fixes; commit the result.
lock:
	bash requirements/lock.sh

## End-to-end tests against a real kernel (bonding + netdevsim) in a QEMU VM.
kernel-test: venv
	bash tests/kernel/run.sh

## Chaos soak on the real kernel (VM): a seeded random walk over real faults, invariants I1-I5
## checked against the real VF states. The same SEED replays the same steps.
## SOAK_MINUTES stops drawing steps after that long (0: none).
SEED  ?= 1
STEPS ?= 150
SOAK_MINUTES ?= 0
soak: venv
	PFRELAY_KERNEL_GUEST_SCRIPT=$(CURDIR)/tests/kernel/guest-python.sh \
	PFRELAY_KERNEL_TIMEOUT=$${PFRELAY_KERNEL_TIMEOUT:-$$(( $(STEPS) * 15 + 600 ))} \
	    bash tests/kernel/run.sh tests/kernel/soak.py --seed $(SEED) --steps $(STEPS) \
	    --minutes $(SOAK_MINUTES)

rpm:
	bash packaging/rpm/build.sh

## Build the SRPM and noarch RPM, lint them, and install/erase them in a scratch root.
rpm-check:
	bash packaging/rpm/check.sh

systemd-check: venv
	bash systemd/check.sh

deploy-check: venv
	bash deploy/check.sh

## Alerting rules: promtool check/test rules (installs Debian's prometheus for promtool).
alerts-check:
	bash deploy/alerts/check.sh

image-build:
	$(ENGINE) build -f Containerfile -t $(IMAGE) \
	    --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	    --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .

## Benchmarks print figures (no pass/fail); the README quotes the latest.
bench: venv
	$(BIN)/python bench/cycle.py
	$(BIN)/python bench/daemon.py
	$(BIN)/python bench/commands.py
	$(BIN)/python bench/discovery.py

## Runtime closure size, `pfrelay run` import time and start-up wall time (from the lock).
footprint:
	$(PYTHON) bench/footprint.py

clean:
	rm -rf $(VENV) .venv39 .venv-lower .venv-lock _rpmbuild build dist *.egg-info .coverage .mypy_cache .ruff_cache .hypothesis
