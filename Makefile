# relayweb — the two commands: `make run` (the whole product on embedded defaults) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
export RELAY_PORT := $(PORT)

# Embedded defaults, each replaced by the real thing when its variable is set.
PROCESSES := web worker beat watcher logs $(if $(REDIS_URL),,redis) $(if $(RELAY_KUBECONFIG)$(KUBECONFIG),,kubesim)
# These defaults are for `make run` alone: `make test` must not inherit them (each test sets its own).
ifeq ($(RELAY_KUBECONFIG)$(KUBECONFIG),)
run: export RELAY_KUBECONFIG := $(CURDIR)/var/kubeconfig
# kubesim's failures surface quickly: Knative's progress deadline (rendered from it) is then 40 s, not 540 s
run: export RELAY_DEPLOY_TIMEOUT ?= 45
endif

.PHONY: run test test-flaky bench lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	@mkdir -p var
	@test -s var/kubesim.token || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(24))" > var/kubesim.token
	DEBUG=1 $(BIN)/python manage.py migrate --noinput -v 0
	@DEBUG=1 $(BIN)/python manage.py ensure_admin
	@echo "relayweb: open http://127.0.0.1:$(PORT)/ and sign in as shown above (Ctrl-C stops everything)"
	@echo "relayweb: cluster $(if $(findstring kubesim,$(PROCESSES)),kubesim (try: KUBECONFIG=var/kubeconfig kubectl get ksvc -A),$(RELAY_KUBECONFIG)$(KUBECONFIG))"
	DEBUG=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile $(PROCESSES)

test: install-dev
	@bash .ci/system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-dev
	@for script in tests/bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache

# Flake hunting: the timing-sensitive tests FLAKY_RUNS times each, shuffled, under GIL contention
# (FLAKY_CONTEND spinning threads); prints the flake rate per test. Not part of `make test`.
FLAKY_TESTS  ?= tests/e2e tests/cluster/test_watcher.py tests/edge/test_ingress.py tests/edge/test_ingress_async.py \
                tests/cluster/test_deploy_flow.py
FLAKY_RUNS   ?= 5
FLAKY_CONTEND ?= 2
test-flaky: install-dev
	$(BIN)/python -m pytest $(FLAKY_TESTS) --count $(FLAKY_RUNS) --random-order --random-order-bucket=global \
		--contend $(FLAKY_CONTEND) -q $(PYTEST_ARGS)
