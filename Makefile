# The two commands that matter: `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test lint fmt bench deny soak fuzz build

build:
	$(CARGO) build --release

demo:
	$(CARGO) run --release --bin intune-rotate -- demo

test: lint
	$(CARGO) test --workspace --all-targets --locked
	$(CARGO) test --workspace --doc --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) build --release --locked
	$(CARGO) run --release --locked -p rotation --example bench -- $(BENCH_ARGS)

# The long reliability run: two hundred kill -9 trials and the fault matrix.
soak:
	INTUNE_ROTATE_CRASH_TRIALS=200 $(CARGO) test --release --locked --test it -- killed fault

deny:
	@command -v cargo-deny >/dev/null || $(CARGO) install --locked cargo-deny
	# Advisories need the RustSec database from the network; licences and bans work offline.
	$(CARGO) deny check licenses bans
	-$(CARGO) deny check advisories

fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	cd crates/graph-batch/fuzz && $(CARGO) +nightly fuzz run parse_response -- -max_total_time=60
