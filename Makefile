# sparkvision: `make help` lists the targets.
SHELL := /bin/bash
ENV := . scripts/env.sh &&
VERSION ?= v1
PYTEST_ARGS ?=
DATANODES ?= 3
LINT := ruff check . && ruff format --check . && lint-imports --no-logo

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-e2e lint format bench hdfs-start hdfs-stop hdfs-status spark-start spark-stop spark-status \
	airflow-init airflow-standalone airflow-start airflow-stop airflow-status backfill reprocess compose-secrets lock clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install Debian packages, .venv (pinned) and the Hadoop jars; fast when already done
	@bash scripts/setup.sh

demo: setup ## run image_training on the full Fashion-MNIST with the embedded defaults (VERSION=v1)
	@bash scripts/demo.sh $(VERSION)

test: setup ## lint, then the whole test suite (unit, DAG, Spark/HDFS/Airflow integration): what CI runs
	@$(ENV) $(LINT) && python -m pytest -m "not e2e" $(PYTEST_ARGS)

test-e2e: setup ## the full Fashion-MNIST through the DAG, accuracy checked (slow; not part of `make test`)
	@$(ENV) python -m pytest -m e2e $(PYTEST_ARGS)

lint: setup ## ruff check, ruff format check and the import contract (lint-imports)
	@$(ENV) $(LINT)

format: setup ## ruff fix and format
	@$(ENV) ruff check --fix . && ruff format .

bench: setup ## run the benchmarks; figures to bench/results/*.json and docs/benchmarks.md
	@$(ENV) python -m bench $(BENCH)

hdfs-start: setup ## start HDFS on loopback: RPC 8020, WebHDFS 9870, 3 DataNodes, 2 replicas (DATANODES=1: light)
	@$(ENV) python -m devtools.hdfs_cluster start --datanodes $(DATANODES)

hdfs-stop: ## stop it
	@$(ENV) python -m devtools.hdfs_cluster stop

hdfs-status: ## is it running?
	@$(ENV) python -m devtools.hdfs_cluster status

spark-start: setup ## start a Spark standalone cluster on loopback: master 7077 (web UI 8090), 2 workers x 1 core
	@$(ENV) python -m devtools.spark_cluster start

spark-stop: ## stop it (workers with their executors, then the master)
	@$(ENV) python -m devtools.spark_cluster stop

spark-status: ## is it running?
	@$(ENV) python -m devtools.spark_cluster status

airflow-init: setup ## create or migrate the SQLite Airflow database in .airflow/ (and the Spark pool)
	@$(ENV) airflow db migrate > /dev/null \
		&& set -- $$(python -c 'from sparkvision.platform import settings as s; print(s.spark_pool(), s.spark_pool_slots())') \
		&& airflow pools set "$$1" "$$2" "Spark jobs of sparkvision" > /dev/null && echo "Airflow DB ready in $${AIRFLOW_HOME}"

airflow-standalone: airflow-init ## the demo's SQLite Airflow, all in one, on http://localhost:8080 (Ctrl-C stops all of it)
	@$(ENV) exec python -m devtools.standalone

airflow-start: setup ## production-like Airflow: PostgreSQL + LocalExecutor, 4 processes; waits until healthy (PORT=8080)
	@$(ENV) python -m devtools.airflow_stack start --port $(or $(PORT),8080)

airflow-stop: ## stop it (every process, by PID)
	@$(ENV) python -m devtools.airflow_stack stop

airflow-status: ## its processes and health
	@$(ENV) python -m devtools.airflow_stack status

backfill: ## backfill image_training on the production-like stack: FROM=YYYY-MM-DD TO=YYYY-MM-DD [CONF='{"epochs": 3}']
	@$(ENV) python -m devtools.airflow_stack airflow backfill create --dag-id image_training \
		--from-date $(FROM) --to-date $(TO) --dag-run-conf '$(or $(CONF),{})'

reprocess: ## re-process named versions on the production-like stack: VERSIONS="v1 v2" [CONF='{"epochs": 3}']
	@$(ENV) python -m devtools.airflow_stack reprocess -c '$(or $(CONF),{})' $(VERSIONS)

compose-secrets: ## generate the secrets docker-compose.yaml requires into .env (git-ignored), keeping existing ones
	@python3 -m devtools.airflow_stack secrets .env

lock: ## regenerate requirements.lock from a clean install of requirements.txt
	@bash scripts/lock.sh

clean: ## remove generated data and Airflow state, the production-like stack's too (keeps .venv and the jar cache)
	@$(ENV) python -m devtools.airflow_stack stop > /dev/null
	rm -rf data .airflow .airflow-stack bench/results/*.json
