# K8X — the two commands are `make up` and `make test`; the rest are parts of them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help up down status test lint bench services services-down cluster cluster-down cluster-wipe deploy undeploy

help:
	@echo "make up        start K8X with embedded defaults (services, local cluster, all processes)"
	@echo "make test      run every check and the whole test suite against real services"
	@echo "make down      stop K8X, its services and the local cluster"
	@echo "make status    show what is running"
	@echo "make bench     run the benchmarks and print their tables"
	@echo "make cluster | cluster-down | cluster-wipe    the local Kubernetes cluster alone"
	@echo "make services | services-down                 PostgreSQL, Redis and Kafka alone"
	@echo "make deploy | undeploy     K8X itself in the local cluster with Helm (namespace k8x-system)"

up:
	@deploy/k8x.sh up

down:
	@deploy/k8x.sh down

status:
	@deploy/k8x.sh status

test:
	@deploy/test.sh

lint:
	@deploy/bootstrap.sh
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy . && .venv/bin/lint-imports

bench:
	@deploy/bench.sh

services:
	@deploy/services/start.sh all

services-down:
	@deploy/services/stop.sh all

cluster:
	@deploy/local/build.sh && deploy/local/start.sh

cluster-down:
	@deploy/local/stop.sh

cluster-wipe:
	@deploy/local/wipe.sh

deploy:
	@deploy/helm/deploy.sh deploy

undeploy:
	@deploy/helm/deploy.sh undeploy
