# The two set-up commands of the README, plus conveniences. Each installs what it needs.
.PHONY: demo test test-fast test-unit test-engine test-e2e bench lint

demo:
	bash infra/bootstrap.sh
	bash infra/demo.sh

# Every tier: what CI runs (.ci/run calls `make test`).
# Three pytest workers on two cores: much of the suite waits (DAG runs, JVM start-ups,
# subprocesses); the Spark-cluster tests share one worker (xdist_group), so one cluster
# starts, not two.
test:
	bash infra/bootstrap.sh
	.venv/bin/python -m pytest -q -n 3 --dist loadgroup --durations=20

# The inner loop: no DAG runs, no JVM Spark, no multi-process runs; two pytest workers.
test-fast:
	bash infra/bootstrap.sh
	.venv/bin/python -m pytest -q -n 2 --tier unit,engine

test-unit test-engine test-e2e:
	bash infra/bootstrap.sh
	.venv/bin/python -m pytest -q --tier $(subst test-,,$@)

bench:
	bash infra/bootstrap.sh
	.venv/bin/python -m bench.bench_ingest

lint:
	.venv/bin/ruff check .
