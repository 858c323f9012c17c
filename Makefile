# Set-up and entry points. Both targets are idempotent: the virtual environment is
# reused while pyproject.toml is unchanged.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: main test test-portable install docs

# The main job: install everything, then train + evaluate the default experiment
# (shallow water on HEALPix, the packaged shallow_water_face config: experiments/face_path/config.toml).
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

# The documentation site, built from scratch into docs/_build/html with warnings as errors (nitpicky
# cross-references), then checked: internal links, every __all__ name in the API reference with its
# docstring, math and figures rendered in headless Chromium (docs/check_site.py). The tutorials run
# during the build (one thread each: the tutorials' small tensors lose time to thread spin-waits on
# two threads); GEOUNET_DOCS_TUTORIALS=0 make docs builds without running them (a quick build).
GEOUNET_DOCS_TUTORIALS ?= 1
docs: $(STAMP)
	@command -v $${CHROMIUM:-chromium} >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	    echo "make docs: headless Chromium is needed to check the rendered pages; install Debian's package" \
	         "(as root: apt-get install -y chromium) or set CHROMIUM to a Chromium binary" >&2; exit 1; }
	rm -rf docs/_build docs/api/generated docs/auto_tutorials
	OMP_NUM_THREADS=1 GEOUNET_DOCS_TUTORIALS=$(GEOUNET_DOCS_TUTORIALS) $(VENV)/bin/python -m sphinx -b html -W --keep-going -n -q \
	    docs docs/_build/html
	GEOUNET_DOCS_TUTORIALS=$(GEOUNET_DOCS_TUTORIALS) $(VENV)/bin/python docs/check_site.py docs/_build/html

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@
