# Descent: `make book` builds the website, `make test` runs every check. Both create .venv
# and install what they need on a machine that has nothing but Python 3.11.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUILD  := $(BIN)/jupyter-book build . -W -n --keep-going

# The chapters' tensors are tiny. On two cores with two notebooks running at once, torch's
# default of one OpenMP thread per core makes them wait on each other: a small network's
# training cell took 31.8 s of CPU with two threads and 1.8 s with one.
export OMP_NUM_THREADS := 1

.PHONY: book test test-gpu pair serve clean

# torch comes first and alone: pinned, it is the local CPU wheel; unpinned, or pulled in by
# another package, it would download gigabytes of CUDA libraries. Its pin is written once, in
# requirements.txt; this is that line.
TORCH := $(shell grep -o '^torch==[^[:space:]\#]*' requirements.txt)

$(STAMP): requirements.txt pyproject.toml
	@test -n "$(TORCH)" || { echo "requirements.txt has no torch==<version> line" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

book: $(STAMP)
	$(BUILD)

# The site is built first (chapters executed, zero warnings allowed), then pytest runs the
# optcore unit tests, the book's machinery tests and every chapter under nbval. nbval runs each
# chapter as Colab does (conftest.py): in a fresh environment without optcore, whose setup cell
# installs it. So every chapter runs twice in all: once for the site, once under nbval.
test: $(STAMP)
	$(BUILD)
	$(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax tests chapters

# Every chapter under nbval with its `gpu` cells on the GPU: each such cell must allocate CUDA
# memory, or it fails (conftest.py), since a cell that forgot optcore.device() passes on a CPU.
# Needs a CUDA build of torch==2.13.0 in .venv. `make test-gpu OPTCORE_DEVICE=cpu` forces the
# CPU instead (then no gpu cell may touch CUDA), which is how the command is tested without one.
OPTCORE_DEVICE ?= cuda
NO_CUDA := OPTCORE_DEVICE=$(OPTCORE_DEVICE), but this torch sees no CUDA device: install a CUDA \
build of $(TORCH) into $(VENV), or run make test-gpu OPTCORE_DEVICE=cpu

test-gpu: $(STAMP)
	@$(BIN)/python -c "import sys, torch; sys.exit(torch.device('$(OPTCORE_DEVICE)').type == 'cuda' \
		and not torch.cuda.is_available() and '$(NO_CUDA)')"
	OPTCORE_DEVICE=$(OPTCORE_DEVICE) DESCENT_CHECK_GPU_CELLS=1 \
		$(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax chapters

# Regenerate the Colab copies (.ipynb, no outputs) from the chapters (.md, the source).
pair: $(STAMP)
	$(BIN)/jupytext --quiet --to ipynb chapters/*.md

serve: book
	$(BIN)/python -m http.server --directory _build/html 8000

clean:
	rm -rf _build
