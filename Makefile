# writ — the front door. `make run` starts the issuer; `make test` runs every test.
SHELL := /bin/bash
NPM ?= npm
export npm_config_fund = false
export npm_config_audit = false

.PHONY: help setup setup-run build build-run run test lint format bench fuzz mutate generate generate-check clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# Two installs from the same lock file. `make run` needs only package.json "dependencies": what
# writ imports at run time, plus the compiler and the type packages that build src/ (typescript,
# @types/node, @types/better-sqlite3). "devDependencies" are for tests, benchmarks, lint and code
# generation (vitest, fast-check, jose, @peculiar/x509, biome, buf): `make test` and the rest
# install them too. An --omit=dev install removes them from node_modules, hence its rm.
node_modules/.stamp-run: package.json package-lock.json
	@# npm install, not npm ci: the registry here lacks some platform builds of @bufbuild/buf that
	@# the lock file names as optional, and npm ci refuses such a lock; versions still come from it.
	$(NPM) install --no-audit --no-fund --no-save --omit=dev
	@rm -f node_modules/.stamp
	@touch $@

node_modules/.stamp: package.json package-lock.json
	$(NPM) install --no-audit --no-fund --no-save
	@touch $@ node_modules/.stamp-run

setup-run: node_modules/.stamp-run ## install what `make run` needs (runtime dependencies and the compiler)

setup: node_modules/.stamp ## install every npm dependency, the test and lint tools too (from package-lock.json)

build-run: setup-run ## compile src/ to dist/src (what bin/writ runs)
	$(NPM) run --silent build:run

build: setup ## compile src/ and test/ to dist/, and build the web console (console/ → dist/console)
	$(NPM) run --silent build

run: build-run ## start `writ server` on the embedded default (SQLite in ./.writ, dev CA on first start), HTTPS on 127.0.0.1:8444
	@# The web console (console/, built by vite, a development dependency) is built when vite is installed (`make setup`); without it /console/ says how to build it.
	@if [ -x node_modules/.bin/vite ]; then $(NPM) run --silent build:console; fi
	./bin/writ server --http-listen 127.0.0.1:8444

test: build ## install test tools (openssl, python3-jwt) where possible, then run every test
	bash scripts/install-test-deps.sh
	$(NPM) run --silent test -- --reporter=default --reporter=json --outputFile.json=test-results.json

lint: setup ## formatter and linter check (Biome; src/gen ignored) and buf lint of proto/
	npx biome check .
	npx buf lint

format: setup ## rewrite files in the project's format (Biome)
	npx biome format --write .

bench: build ## benchmarks: prints a table, writes $$BENCH_OUT (default bench-results.json)
	node dist/test/bench/run.js

fuzz: build ## coverage-guided fuzzing of every parser of untrusted bytes: FUZZ_SECONDS per target (60), FUZZ_TARGET=a,b; findings in reports/fuzz/
	node dist/test/fuzz/run.js

mutate: setup ## mutation testing (Stryker) of the security folders; MUTATE=src/writ for one folder; reports/mutation/
	MUTATE="$(MUTATE)" node test/mutation/stryker.mjs

generate: setup ## regenerate src/gen from proto/ with buf + protoc-gen-es
	npx buf lint
	npx buf generate

generate-check: generate ## fail if src/gen differs from what proto/ generates
	git diff --exit-code -- src/gen

clean: ## remove build output
	rm -rf dist test-results.json bench-results.json
