# hvd_magtag — one Makefile for a fresh machine.  `make demo` and `make test` are the README's two commands;
# both build the environment first (`make install`), which is idempotent (seconds when nothing changed).
ROOT      := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV      ?= $(ROOT)/.venv
PY        := $(VENV)/bin/python
PIP       := $(PY) -m pip
PYTHON3   ?= python3
# demo: DATA (synthetic dataset) and RUNS default to hvd_magtag.locations (README "Where files go")
DATA      ?=
RUNS      ?=
LAB       ?= $(ROOT)/lab
NP        ?= 2
STAMP     := $(VENV)/.hvd_magtag-installed
CONSTRAIN := -c $(ROOT)/constraints.txt
HOROVOD_FLAGS := HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_MPI=1 HOROVOD_WITH_GLOO=1 \
                 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS=-j$(shell nproc)
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: install demo test test-fast lint lab bench clean-venv mpi test-deps cluster-deps

install: $(STAMP)

# OS packages: OpenMPI (headers + launcher; Horovod's MPI controller and mpi4py build against it), cmake and
# g++ for the Horovod build, and LAME (tensorflow-io's encode_mp3 loads libmp3lame at run time: the synthetic
# dataset is written as real mp3s).
SYSTEM_PACKAGES := libopenmpi-dev openmpi-bin cmake g++ libmp3lame0
mpi:
	@missing=""; \
	command -v mpicxx >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 || missing="$$missing mpi"; \
	command -v cmake >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || missing="$$missing build-tools"; \
	{ ldconfig -p 2>/dev/null | grep -q libmp3lame.so.0; } || missing="$$missing lame"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "[install] missing:$$missing; installing $(SYSTEM_PACKAGES) (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	else \
	  echo "error: system packages missing ($$missing). Run: sudo apt-get install -y $(SYSTEM_PACKAGES)" \
	       "(or use environment.yml with conda), then 'make install' again." >&2; exit 2; \
	fi

$(STAMP): $(ROOT)/setup.cfg $(ROOT)/constraints.txt $(ROOT)/pyproject.toml | mpi
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23" "setuptools>=61" wheel
	$(PIP) install -q $(CONSTRAIN) tensorflow-cpu tensorflow-io "numpy<2"    # TF first: Horovod's build imports it
	@$(PY) -c "import horovod.tensorflow as h; assert h.mpi_built() and h.gloo_built()" 2>/dev/null || \
	  { echo "[install] building Horovod 0.28.1 with TensorFlow + MPI + Gloo (a few minutes, cached afterwards)"; \
	    $(HOROVOD_FLAGS) $(PIP) install -q --no-build-isolation $(CONSTRAIN) horovod==0.28.1; }
	$(PIP) install -q $(CONSTRAIN) -e "$(ROOT)[dev]"
	@# musicnn's released checkpoints (pretrained models, parity tests): --no-deps, its 2019 metadata pins
	@# numpy<1.17 and TensorFlow 1; only its checkpoint files are read (hvd_magtag.pretrained.MUSICNN_INSTALL)
	$(PIP) install -q --no-deps "$$($(PY) -c 'from hvd_magtag.pretrained import MUSICNN_REQUIREMENT as r; print(r)')"
	@# musicnn's own tagger for `bench tag --compare musicnn` (Keras 2 under TensorFlow 2.16; --no-deps: its
	@# metadata names the `tensorflow` distribution, this venv has `tensorflow-cpu`)
	$(PIP) install -q --no-deps "$$($(PY) -c 'from hvd_magtag.bench.tag import TF_KERAS_REQUIREMENT as r; print(r)')"
	$(PY) -m ipykernel install --sys-prefix --name hvd_magtag --display-name "hvd_magtag (Python 3)" >/dev/null
	$(VENV)/bin/horovodrun --check-build
	@touch $(STAMP)

demo: install
	$(PY) -m hvd_magtag.demo $(if $(DATA),--data $(DATA)) $(if $(RUNS),--runs $(RUNS)) --np $(NP)

# Test-only OS packages: headless Chromium and its driver (tests/test_analysis_page.py opens the analysis page
# in a real browser). Installed as root with apt like the MPI packages above; otherwise the exact command.
TEST_PACKAGES := chromium chromium-driver
test-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "[test-deps] installing $(TEST_PACKAGES) (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_PACKAGES) >/dev/null; \
	else \
	  echo "error: headless Chromium missing. Run: sudo apt-get install -y $(TEST_PACKAGES)" >&2; exit 2; \
	fi

# Cluster-test OS packages: an OpenSSH server (two "hosts" on loopback aliases), a single-node SLURM and MUNGE
# (tests/cluster starts private daemons of each; the system services are never used). Root: apt; else the command.
CLUSTER_PACKAGES := openssh-server slurm-wlm munge
CLUSTER_BINARIES := sshd slurmctld slurmd munged sbatch
cluster-deps:
	@missing=""; for b in $(CLUSTER_BINARIES); do \
	  command -v $$b >/dev/null 2>&1 || test -x /usr/sbin/$$b || missing="$$missing $$b"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "[cluster-deps] missing:$$missing; installing $(CLUSTER_PACKAGES) (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CLUSTER_PACKAGES) >/dev/null; \
	else \
	  echo "error: cluster test packages missing ($$missing). Run: sudo apt-get install -y $(CLUSTER_PACKAGES)" >&2; \
	  exit 2; \
	fi

test: install test-deps cluster-deps
	cd $(ROOT) && $(PY) -m pytest -q tests

test-fast: install
	cd $(ROOT) && $(PY) -m pytest -q -m "not multirank and not notebook and not slow" tests

lint: install
	cd $(ROOT) && $(VENV)/bin/ruff check hvd_magtag tests && $(VENV)/bin/ruff format --check hvd_magtag tests

# the packaged notebooks, copied into LAB once (your edits there are kept; the package's copies stay clean)
lab: install
	$(PY) -m hvd_magtag.notebooks copy $(LAB) >/dev/null
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --no-browser --notebook-dir=$(LAB) \
	  --IdentityProvider.token=$${JUPYTER_TOKEN:-$$($(PY) -c "import secrets; print(secrets.token_hex(16))")}

bench: install
	$(PY) -m hvd_magtag.bench all --out $(ROOT)/bench-results

clean-venv:
	rm -rf $(VENV)
