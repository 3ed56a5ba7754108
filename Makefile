# CATTC federation: every target sets up its own virtual environment when missing.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup browser demo test lint unit bench eval messages clean docker-image docker-test

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,postgres]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the project with its test tools

browser:  ## install Debian's chromium and Chinese and Thai fonts for the browser tests, when missing
	@command -v chromium >/dev/null 2>&1 && fc-list :lang=zh | grep -q . && fc-list :lang=th | grep -q . || { \
	  echo "installing Debian's chromium and fonts for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium fonts-wqy-microhei fonts-thai-tlwg >/dev/null; }

demo: $(STAMP)  ## run a hub and the national nodes on loopback with the sample data
	$(BIN)/python -m node.demo

lint: $(STAMP)  ## ruff, mypy --strict and the import-linter layer contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy protocol policies sync node tests bench
	$(BIN)/lint-imports

# Test processes: most tests wait on real nodes, browsers and worker processes, so two share
# two cores well (TEST_WORKERS=0 runs the suite in this process, as plain pytest does).
TEST_WORKERS ?= 2

unit: $(STAMP) browser  ## pytest only (SQLite, plus PostgreSQL when CATTC_TEST_POSTGRES_URL is set)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

test: lint unit  ## lint, then every test

bench: $(STAMP)  ## run the benchmarks and write docs/benchmarks.md
	$(BIN)/python -m bench.run

EVAL_MODELS ?= e5 e5-static

eval: $(STAMP)  ## matching quality: the dev split (tuned on), then the frozen test split, per model
	@for model in $(EVAL_MODELS); do \
	  echo "dev split (weights and model chosen on it), model $$model"; \
	  $(BIN)/cattc eval ../shared/data/listings.jsonl ../shared/data/match_pairs.csv \
	    --extra bench/eval/hard_listings.jsonl bench/eval/hard_pairs.csv \
	    --extra bench/eval/dev_problem.jsonl bench/eval/dev_problem_pairs.csv \
	    --extra bench/eval/dev_local.jsonl bench/eval/dev_local_pairs.csv \
	    --ablate-lexicon --semantic $$model || exit 1; \
	done
	@for model in $(EVAL_MODELS); do \
	  echo "test split (frozen; never tuned on), model $$model"; \
	  $(BIN)/cattc eval bench/eval/test_problem.jsonl bench/eval/test_problem_pairs.csv \
	    --extra bench/eval/test_local.jsonl bench/eval/test_local_pairs.csv \
	    --base ../shared/data/listings.jsonl --ablate-lexicon --semantic $$model || exit 1; \
	done

messages: $(STAMP)  ## extract the pages' messages into each language's catalog (node/ui/locales)
	$(BIN)/python -m node.ui.catalogs

docker-image: $(STAMP)  ## build the node and PostgreSQL images from Debian packages (root; installs docker.io)
	docker/build-image.sh

docker-test: $(STAMP)  ## build the images, run the hub, th, vn and PostgreSQL in Docker, check they sync
	docker/stack-test.sh

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
