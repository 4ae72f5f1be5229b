# Two commands do everything on a fresh machine: `make test` and `make book`.
# Each creates .venv and installs requirements.txt first (only when they changed).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Use the project's shared, offline copies of the data when they sit beside the checkout.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/tinyshakespeare.txt),)
export TINYGPT_DATA_DIR ?= $(SHARED_DATA)
export TIKTOKEN_CACHE_DIR ?= $(SHARED_DATA)/tiktoken-cache
endif
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Packages are installed without byte-compiling all of them (--no-compile below): each test
# process then compiles what it imports once and caches it in __pycache__, which an
# environment with PYTHONDONTWRITEBYTECODE set would forbid, recompiling on every import.
export PYTHONDONTWRITEBYTECODE :=

NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
PYTEST_NBVAL := --nbval --nbval-current-env --nbval-sanitize-with book/sanitize.cfg -p no:cacheprovider

.PHONY: help install test unit nbval notebooks book assets lint clean

help:
	@echo "make test       unit tests + every notebook re-executed and compared (nbval)"
	@echo "make book       build the HTML book into _build/html"
	@echo "make notebooks  re-execute every notebook in place (refresh committed outputs)"
	@echo "make lint       ruff"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

# The suite runs in TEST_JOBS processes (pytest-xdist, one per core by default), each on one
# thread. On 2 cores that took 358 s against 481 s for one process on two threads; two processes
# on two threads each took 771 s (four threads on two cores wait for each other). A notebook's
# cells stay in one process (--dist loadfile), as nbval needs; one thread is also one more numeric
# path the committed outputs must survive. Serial: make test TEST_JOBS=0
TEST_JOBS ?= auto
test: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest tests $(NOTEBOOKS) $(PYTEST_NBVAL) \
	  --numprocesses=$(TEST_JOBS) --dist loadfile --durations=15

unit: install
	$(BIN)/python -m pytest tests

nbval: install
	$(BIN)/python -m pytest $(NOTEBOOKS) $(PYTEST_NBVAL)

# Re-execute notebooks in a fresh kernel, top to bottom; outputs (and widget state) are saved.
# They are written with this CPU's own kernels; `make test` compares them on other kernels
# (book/conftest.py), so an output whose digits depend on the CPU fails there.
# One notebook: make notebooks NB=book/01_tokenization.ipynb
# Appendix A measures speed: run it alone, on every core, e.g.
#   OMP_NUM_THREADS=$(nproc) make notebooks NB=book/appendix_a_performance.ipynb
# One thread, as `make test` runs them: the same numeric path, and a loaded machine does not
# push a training cell past the kernel's timeout with threads waiting for each other.
notebooks: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	  --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=900 \
	  --ExecutePreprocessor.record_timing=False $(if $(NB),$(NB),$(NOTEBOOKS))
	# The kernel sometimes sends one print as two stream outputs (the text, then its newline),
	# which the book would show as a stray blank line: merge them (after executing, not before).
	$(BIN)/jupyter nbconvert --to notebook --inplace --coalesce-streams --log-level=WARN \
	  $(if $(NB),$(NB),$(NOTEBOOKS))

# MathJax, the widget renderer and the live model's runtime come from npm at build time, so the
# book works offline. The live model (book/live/, from `python -m tinygpt.export`) and ONNX
# Runtime's WebAssembly are cut into script-loaded chunks (assets/live_chunks.py).
LIVE_INPUTS := assets/live-vendor.js assets/live_chunks.py book/live/model.onnx book/live/model.json
assets/static/.stamp: assets/package.json assets/package-lock.json $(LIVE_INPUTS)
	cd assets && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf assets/static && mkdir -p assets/static/mathjax assets/static/widgets
	cp assets/node_modules/mathjax/es5/tex-chtml.js assets/static/mathjax/
	mkdir -p assets/static/mathjax/output/chtml assets/static/mathjax/input/tex
	cp -r assets/node_modules/mathjax/es5/output/chtml/fonts assets/static/mathjax/output/chtml/
	cp -r assets/node_modules/mathjax/es5/input/tex/extensions assets/static/mathjax/input/tex/
	cp -r assets/node_modules/mathjax/es5/ui assets/static/mathjax/
	cd assets/node_modules/@jupyter-widgets/html-manager/dist && \
	  cp embed.js *.woff *.woff2 *.ttf *.eot *.svg $(CURDIR)/assets/static/widgets/
	mkdir -p assets/static/live
	cd assets && node_modules/.bin/esbuild live-vendor.js --bundle --format=iife --minify \
	  --log-level=warning --outfile=static/live/vendor.js
	$(PYTHON) assets/live_chunks.py book/live/model.onnx \
	  assets/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm assets/static/live
	touch $@

assets: assets/static/.stamp

# Sphinx copies the static files only when it writes a page, and never deletes one: when they
# changed (a new model is cut into other chunks, the theme's scripts), write the HTML afresh
# (seconds; the parsed pages are kept)
HTML_STATIC = assets/static/.stamp $(shell find book/_theme -type f)
book: install assets
	@if [ ! -e _build/html/.static-stamp ] || \
	  [ -n "$$(find $(HTML_STATIC) -newer _build/html/.static-stamp)" ]; then rm -rf _build/html; fi
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	touch _build/html/.static-stamp
	@echo
	@echo "The book is built. Open file://$(CURDIR)/_build/html/index.html"

lint: install
	$(BIN)/ruff check src tests benchmarks book

clean:
	rm -rf _build assets/static assets/node_modules
