# chartstream — see README.md. Every target is idempotent.
SHELL := /bin/bash
.DEFAULT_GOAL := help
LOCAL := $(CURDIR)/.local
BIN := $(LOCAL)/bin/chartstream
GO_TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: help build up down clean run test lint bench

help: ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build .local/bin/chartstream
	@mkdir -p $(LOCAL)/bin
	go build -o $(BIN) ./cmd/chartstream

up: ## install what is missing, start PostgreSQL, Redis and NATS, migrate; writes .local/env
	@deploy/local/stack.sh up

down: ## stop the local stack (data kept)
	@deploy/local/stack.sh down

clean: ## stop the stack and remove .local/
	@deploy/local/stack.sh clean

run: up ## bring everything up and run API + workers (chartstream all)
	@deploy/local/run.sh

test: up ## bring the stack up, then run every test against it
	@set -a; . $(LOCAL)/env; set +a; go test $(GO_TEST_FLAGS) ./...

lint: ## go vet and gofmt
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
