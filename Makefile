# Set-up and entry points. Both targets are idempotent: the virtual environment is
# reused while pyproject.toml is unchanged.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: main test test-portable install

# The main job: install everything, then train + evaluate the default experiment
# (shallow water on HEALPix, experiments/shallow_water_healpix/config.toml).
main: $(STAMP)
	$(VENV)/bin/geounet train

# The test suite (excludes @pytest.mark.slow; run those with `$(VENV)/bin/pytest -m slow`).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

# The same suite on other CPU code paths than this machine's: ATen's non-vectorised kernels
# (ATEN_CPU_CAPABILITY=default), MKL / oneDNN / OpenBLAS kernels of another instruction set and
# one thread. A test that assumes bit-exact floating point across CPUs fails here too.
# .ci/test_portable.py probes each library before and after and stops if a setting had no effect.
test-portable: $(STAMP)
	$(VENV)/bin/python .ci/test_portable.py -q

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@
