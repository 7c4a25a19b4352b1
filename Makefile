# The two commands of the README. Each does its own set-up on a fresh machine with Python 3.11
# and Go: a virtualenv in .venv, editable installs from this checkout of the product with its dev
# extra, the CLI (cli/) and the development tooling (dev/, never shipped), and the control-plane
# binaries (built from Go modules once per machine, cached in ~/.cache/hrw/controlplane).
#
#   make test   ruff and mypy (strict), then the whole pytest suite against a real local control plane
#   make demo   bring up a control plane, apply the CRDs and examples, show them served

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Reinstall when the project's metadata changes, not on every run.
INSTALLED := $(VENV)/.installed-dev

.PHONY: test demo setup lint controlplane

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy api operator proxy agent cli dev bench packaging
	$(BIN)/pytest -p no:cacheprovider --timeout=600

demo: setup
	$(BIN)/hrw-dev demo

setup: $(INSTALLED) controlplane

# The agent's offline artifact: dist/hrw-agent-<version>-linux-x86_64.tar.gz and its .sha256
# (a wheelhouse with every runtime dependency, install.sh, the systemd unit, an example config).
# Needs the package index now; installing it on a server never does.
.PHONY: dist
dist: $(INSTALLED)
	$(BIN)/python packaging/agent/build.py --out dist

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy api operator proxy agent cli dev bench packaging

controlplane: $(INSTALLED)
	$(BIN)/hrw-dev build

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# All three from local paths in one pip call, so pip takes hrw's own distributions from here and
# never looks them up on a package index.
$(INSTALLED): $(BIN)/python pyproject.toml cli/pyproject.toml dev/pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./cli -e ./dev
	touch $@
