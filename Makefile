# ZapHub: `make run` starts the whole stack, `make test` runs every test.
.PHONY: run test test-fast bench lint simulator clean

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

test-fast:
	bash scripts/test.sh tests/unit tests/integration

bench:
	bash scripts/bootstrap.sh
	.venv/bin/python -m tests.bench

lint:
	.venv/bin/ruff check api workers shared tests

simulator:
	bash scripts/bootstrap.sh
	.venv/bin/python -m tests.simulator --port $${SIMULATOR_PORT:-8765}

clean:
	rm -rf .venv .zaphub sessions zaphub.db*
