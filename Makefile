# Set-up and entry points. Both targets are idempotent: the virtual environment is
# reused while pyproject.toml is unchanged.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: main test install bench

# The main job: install everything, then train + evaluate the default experiment
# (shallow water on HEALPix, experiments/shallow_water_healpix/config.toml).
main: $(STAMP)
	$(VENV)/bin/geounet train

# The test suite (excludes @pytest.mark.slow; run those with `$(VENV)/bin/pytest -m slow`).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@
