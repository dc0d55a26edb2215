# Ferry: `make check` is exactly what CI runs (.ci/run).
.PHONY: check deps lint test interop fuzz-smoke fuzz-long soak soak-short package run bench bench-quick bench-s3

check: deps lint test fuzz-smoke package soak-short interop

deps:
	bash scripts/install-test-deps.sh
	bash scripts/install-peer-servers.sh
	bash scripts/install-garage.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Unit tests, property tests and the Rust end-to-end tests (crates/*/tests).
test:
	cargo test --workspace

# Real clients (Python ftplib, curl, lftp, wget) against `ferry serve`; needs the debug binary.
# test_s3.py starts its own Garage (scripts/garage-start.sh; FERRY_SKIP_S3=1 skips it when garage
# is not installed).
interop:
	cargo build -p ferry
	python3 -m pytest tests/interop -q

# Fuzzing (see docs/fuzzing.md): run every target for SECONDS each (10 in `make check`).
SECONDS ?= 10
fuzz-smoke:
	bash scripts/fuzz-smoke.sh $(SECONDS)

# Every fuzz target for RUNS executions (default 1,000,000; docs/fuzzing.md has the last figures).
RUNS ?= 1000000
fuzz-long:
	bash scripts/fuzz-long.sh $(RUNS)

# The soak test (docs/reliability.md): 1000 concurrent clients for three one-minute rounds against a
# release `ferry serve`; every byte checked, no error allowed, RSS must not creep between rounds.
soak:
	cargo run -p xtask --release -- soak --clients 1000 --secs 60 --rounds 3 --json target/soak.json

# The same, short, against the debug binary (part of `make check`, before the interop suite so the
# run still ends with pytest's summary).
# The Debian package: built with cargo-deb, installed, used, purged (scripts/deb-test.sh; root).
package:
	bash scripts/deb-test.sh

soak-short:
	cargo build -p ferry
	cargo run -p xtask -- soak --clients 100 --secs 10 --rounds 2 --ferry target/debug/ferry

run:
	cargo run --release -p ferry -- serve

# Side-by-side benchmark against vsftpd, Pure-FTPd and ProFTPD (docs/performance.md).
bench:
	cargo run -p xtask --release -- bench

bench-quick:
	cargo run -p xtask --release -- bench --quick

# Ferry as an FTP gateway to S3 (one Garage) against rclone (docs/performance.md).
bench-s3:
	cargo build --release -p ferry
	bash scripts/bench-s3.sh
