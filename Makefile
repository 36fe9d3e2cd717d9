# writ — the front door. `make run` starts the issuer; `make test` runs every test.
SHELL := /bin/bash
NPM ?= npm
export npm_config_fund = false
export npm_config_audit = false

.PHONY: help setup build run test lint format bench generate generate-check clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

node_modules/.stamp: package.json package-lock.json
	@# npm install, not npm ci: the registry here lacks some platform builds of @bufbuild/buf that
	@# the lock file names as optional, and npm ci refuses such a lock; versions still come from it.
	$(NPM) install --no-audit --no-fund --no-save
	@touch $@

setup: node_modules/.stamp ## install npm dependencies (from package-lock.json)

build: setup ## compile TypeScript to dist/
	$(NPM) run --silent build

run: build ## start `writ server` on the embedded default (SQLite in ./.writ, dev CA on first start), HTTPS on 127.0.0.1:8444
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

generate: setup ## regenerate src/gen from proto/ with buf + protoc-gen-es
	npx buf lint
	npx buf generate

generate-check: generate ## fail if src/gen differs from what proto/ generates
	git diff --exit-code -- src/gen

clean: ## remove build output
	rm -rf dist test-results.json bench-results.json
