# Two entry points on a fresh Debian machine with Python 3.11: `make demo` and `make test`.
# Setup is idempotent: a second run only checks what is installed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# binary:Debian package of each encoder/decoder the embedded default and the tests run
BINARIES := x265:x265 avifenc:libavif-bin avifdec:libavif-bin ffmpeg:ffmpeg cwebp:webp dwebp:webp

.PHONY: setup system-deps python-deps demo test lint report clean-results

setup: system-deps python-deps

system-deps:
	@missing=""; for pair in $(BINARIES); do \
	  bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -n "$$(echo $$missing | tr -d ' ')" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "encoder binaries present"; fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-runs only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test,comparators]'
	touch $@

python-deps: $(VENV)/.installed

demo: setup
	$(BIN)/snakemake --cores $(CORES)
	$(MAKE) --no-print-directory report
	@echo
	@echo "tables : results/tables/<dataset>/{rd,bd}.csv"
	@echo "plots  : results/plots/<dataset>/rd_<metric>.{png,pdf}"
	@echo "summary: results/summary.html (start here)"
	@echo "report : results/report.html"
	@echo "(a later 'snakemake -n' reports missing provenance/metadata for the jobs that made the"
	@echo " committed weights/: expected, see docs/dag.md)"

test: setup
	$(BIN)/python -m pytest -q tests

# results/report.html from the results already computed (after `make demo` or any run)
report: python-deps
	$(BIN)/snakemake --cores 1 --report results/report.html

# Optional: the mmdet backend of the detection tasks (docs/mmdet.md). Builds mmcv's CPU ops
# once into ${DISCOVER_WHEEL_CACHE:-~/.cache/discover/wheels} (15-30 min on 2 cores), then reuses
# the wheel; a second run only checks.
.PHONY: mmdet
mmdet: python-deps
	bash scripts/mmdet/install.sh $(VENV)

lint: python-deps
	$(BIN)/ruff check discover tests workflow_scripts benchmarks

clean-results:
	rm -rf results .snakemake
