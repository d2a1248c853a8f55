# The two set-up commands of the README, plus conveniences. Each installs what it needs.
.PHONY: demo test bench lint

demo:
	bash infra/bootstrap.sh
	bash infra/demo.sh

test:
	bash infra/bootstrap.sh
	.venv/bin/python -m pytest -q

bench:
	bash infra/bootstrap.sh
	.venv/bin/python -m bench.bench_ingest

lint:
	.venv/bin/ruff check .
