# chartstream — see README.md. Every target is idempotent.
SHELL := /bin/bash
.DEFAULT_GOAL := help
LOCAL := $(CURDIR)/.local
BIN := $(LOCAL)/bin/chartstream
GO_TEST_FLAGS ?= -race -count=1 -timeout 15m
# make fuzz runs each native fuzz target (a func FuzzX in a _test.go file)
# this long; make test runs them for TEST_FUZZTIME after the Go tests.
# TEST_FUZZTIME is a count of executions, not a duration: with a duration,
# Go 1.26's fuzz coordinator can report its own deadline as a failure
# ("context deadline exceeded", no crasher; golang/go#75804, fixed in
# 1.27), which a loaded CI machine hits. 5,000 executions take 1 to 6 s a
# target here.
FUZZTIME ?= 10s
TEST_FUZZTIME ?= 5000x

# make chaos restarts PostgreSQL and Redis, so it runs on a stack of its own
# (state under .local/chaos, its own ports) that other tests never use.
CHAOS_LOCAL := $(LOCAL)/chaos
# CHAOS_DURATION defaults to 5m for make chaos, 60s for make chaos-sigkill.
CHAOS_DURATION ?=
CHAOS_PG_PORT ?= 25432
CHAOS_REDIS_PORT ?= 26379
CHAOS_NATS_PORT ?= 24222
CHAOS_HTTP_PORT ?= 28080
# Chaos runs its own nats-server without TLS, so its stack is plain (CS_TLS=0)
# even when the developer's is not. No hot standby there either: nothing in
# a chaos run reads it, and the machine's memory and cores are better left
# to the run.
CHAOS_STACK := CS_LOCAL_DIR=$(CHAOS_LOCAL) CS_PG_PORT=$(CHAOS_PG_PORT) CS_REDIS_PORT=$(CHAOS_REDIS_PORT) \
	CS_NATS_PORT=$(CHAOS_NATS_PORT) CS_HTTP_PORT=$(CHAOS_HTTP_PORT) CS_PG_REPLICA=off CS_TLS=0

.PHONY: help build up down clean run test fuzz lint bench chaos chaos-sigkill image deploy-check

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

build: ## build .local/bin/chartstream
	@mkdir -p $(LOCAL)/bin
	go build -o $(BIN) ./cmd/chartstream

up: ## install what is missing, start PostgreSQL (primary and hot standby), Redis and NATS, migrate; writes .local/env
	@deploy/local/stack.sh up

down: ## stop the local stack (data kept)
	@deploy/local/stack.sh down

clean: ## stop the stacks (also the chaos one) and remove .local/
	@$(CHAOS_STACK) deploy/local/stack.sh clean
	@deploy/local/stack.sh clean

run: up ## bring everything up and run API + workers (chartstream all)
	@deploy/local/run.sh

test: up ## bring the stack up, run every test against it, fuzz each target briefly, then a 60 s chaos run
	@set -a; . $(LOCAL)/env; set +a; go test $(GO_TEST_FLAGS) ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)
	@$(MAKE) --no-print-directory chaos CHAOS_DURATION=60s

# Targets are found, not listed, so a new one runs the day it is written.
# Each runs alone (go test -fuzz takes one); a failure stops the run and
# leaves its input in the package's testdata/fuzz/<target>/, which is how a
# crasher becomes a regression case: commit it with the fix.
fuzz: ## run every native fuzz target for FUZZTIME each (default 10s)
	@set -eo pipefail; for dir in $$(go list -f '{{.Dir}}' ./...); do \
		for name in $$(cat $$dir/*_test.go 2>/dev/null | grep -o '^func Fuzz[A-Za-z0-9_]*' | cut -c6- | sort); do \
			echo "fuzz $${dir#$(CURDIR)/} $$name for $(FUZZTIME)"; \
			go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$dir | grep -v '^fuzz: elapsed'; \
		done; \
	done

# The chaos stack is brought up (stack.sh up also builds the binary into
# .local/chaos/bin) and down again afterwards, pass or fail: it holds
# PostgreSQL's memory, and its data stays for a look. $(1) is chaos's
# scenario and duration.
define chaos_run
	@$(CHAOS_STACK) deploy/local/stack.sh up
	@set -a; . $(CHAOS_LOCAL)/env; set +a; $(CHAOS_STACK) $(CHAOS_LOCAL)/bin/chartstream chaos $(1) \
		--nats-server $(CHAOS_LOCAL)/bin/nats-server --stack-script $(CURDIR)/deploy/local/stack.sh; \
		status=$$?; $(CHAOS_STACK) deploy/local/stack.sh down; exit $$status
endef

chaos: ## fault-injection run on an isolated stack (CHAOS_DURATION, default 5m)
	$(call chaos_run,--scenario mixed --duration $(or $(CHAOS_DURATION),5m))

# Not part of make test: CI time is limited, and the integrator decides.
chaos-sigkill: ## the issue's SIGKILL scenario on the chaos stack (CHAOS_DURATION, default 60s)
	$(call chaos_run,--scenario all-sigkill --duration $(or $(CHAOS_DURATION),60s))

# The container image. Not part of make test: it needs a Docker engine.
IMAGE ?= chartstream:local
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

image: ## build the container image (IMAGE, default chartstream:local) from ./Dockerfile (needs docker)
	@command -v docker >/dev/null || { echo "make image: docker is not installed. The image is ./Dockerfile; any OCI builder (docker build, buildah, kaniko) builds it from the repository root." >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make image: the docker client is here but no Docker engine answers (docker info fails); start one, or build ./Dockerfile with another OCI builder." >&2; exit 1; }
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

# The deployment files' checks without the local stack: builds the pinned
# helm once (deploy/local/stack.sh tools), then the deploy package's tests
# (helm lint and template, compose, Terraform, Dockerfile). make test runs
# the same tests with the rest.
deploy-check: ## check the Dockerfile, compose, Helm chart and Terraform (no docker, no cloud)
	@deploy/local/stack.sh tools
	HELM_BIN=$(LOCAL)/bin/helm go test -count=1 ./deploy/...

lint: ## go vet and gofmt
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
