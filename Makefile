# The two commands that matter: `make demo` and `make test`.
CARGO ?= cargo

.PHONY: demo test tests test-loaded lint lint-workflows fmt bench bench-smoke deny soak fuzz build interop interop-venv report-check

build:
	$(CARGO) build --release

demo:
	$(CARGO) run --release --bin intune-rotate -- demo

# Tests run TEST_THREADS at a time: the end-to-end ones mostly wait on the service's windows and
# on kill points, not on the processor (the `it` suite uses about 35 s of CPU in its 3 minutes).
# The pacing tests, which compare timings, are a test binary of their own that runs one at a time.
# So the `it` suite runs beside the pacing tests and then every other target (whose output is
# printed when they end): the machine is mostly idle under `it`, and the pacing tests compare each
# run with a reference run of their own under the same load. Every command names the whole
# workspace, so features resolve as in one build and nothing compiles twice.
TEST_THREADS ?= 8
# (Given as libtest's variable, not its flag: the criterion benches take no --test-threads.)
test: lint tests
	$(CARGO) test --workspace --doc --locked

# The test targets alone, arranged as above (no lint, no doc tests): what `test` and `test-loaded`
# run.
tests:
	$(CARGO) test --workspace --all-targets --locked --no-run
	@others="$$(python3 tools/test_targets.py it pacing)" || exit 2; \
	beside=$$(mktemp); \
	( s=0; RUST_TEST_THREADS=$(TEST_THREADS) $(CARGO) test --workspace --locked --test pacing || s=1; \
	  RUST_TEST_THREADS=$(TEST_THREADS) $(CARGO) test --workspace --locked \
	      --lib --bins --examples --benches $$others || s=1; exit $$s ) >"$$beside" 2>&1 & pid=$$!; \
	RUST_TEST_THREADS=$(TEST_THREADS) $(CARGO) test --workspace --locked --test it; status=$$?; \
	wait $$pid || status=1; \
	cat "$$beside"; rm -f "$$beside"; exit $$status

# Every test target, arranged as `make test` runs them, beside two busy loops that keep both cores
# loaded, LOADED_RUNS times in a row; the loops end with the tests, or after LOADED_SECONDS
# whatever happens.
LOADED_RUNS ?= 3
LOADED_SECONDS ?= 3600
test-loaded:
	$(CARGO) build --workspace --all-targets --locked
	@pids=""; \
	for i in 1 2; do timeout $(LOADED_SECONDS) sh -c 'while :; do :; done' & pids="$$pids $$!"; done; \
	status=0; \
	for run in $$(seq $(LOADED_RUNS)); do \
		echo "== loaded run $$run of $(LOADED_RUNS)"; \
		start=$$(date +%s); \
		$(MAKE) --no-print-directory tests || { status=1; break; }; \
		echo "== loaded run $$run passed in $$(( $$(date +%s) - start )) s"; \
	done; \
	kill $$pids 2>/dev/null; \
	exit $$status

lint: lint-workflows
	python3 tools/module_cycles.py --check
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The release workflow and the scheduling example, checked against GitHub's workflow schema by a
# validator from the npm registry (installed once under target/).
ACTION_VALIDATOR = target/tools/npm/node_modules/.bin/action-validator
$(ACTION_VALIDATOR):
	npm install --no-audit --no-fund --silent --prefix target/tools/npm @action-validator/cli@0.6.0
lint-workflows: $(ACTION_VALIDATOR)
	@for f in .github/workflows/*.yml docs/examples/*.yml; do \
		$(ACTION_VALIDATOR) "$$f" || { echo "$$f: not a valid workflow"; exit 1; }; \
	done

fmt:
	$(CARGO) fmt --all

# Criterion's local costs per row (wire format, ledger, device list), then the ceiling rides and
# comparisons against the in-process simulator. CRITERION_ARGS=--quick shortens the first part.
bench:
	$(CARGO) build --release --locked
	$(CARGO) bench --locked -p graph-batch --bench wire -- $(CRITERION_ARGS)
	$(CARGO) bench --locked -p rotation --bench local -- $(CRITERION_ARGS)
	$(CARGO) run --release --locked -p rotation --example bench -- $(BENCH_ARGS)

# Every step of the bench once at its smallest sizes, in the debug build `make test` made: CI runs
# it so that no step of `make bench` rots unseen (built as `make test` builds, so nothing is
# compiled again). Its figures mean nothing.
bench-smoke:
	$(CARGO) build --locked --workspace --examples --bins
	target/debug/examples/bench --smoke

# The long reliability run: two hundred kill -9 trials, the fault matrix and the disk trials.
soak:
	INTUNE_ROTATE_CRASH_TRIALS=200 $(CARGO) test --release --locked --test it -- killed fault disk::

deny:
	@command -v cargo-deny >/dev/null || $(CARGO) install --locked cargo-deny
	# Advisories need the RustSec database from the network; licences and bans work offline.
	$(CARGO) deny check licenses bans
	-$(CARGO) deny check advisories

# Each cargo-fuzz target for FUZZ_SECONDS. cargo-fuzz needs a nightly toolchain: where there is
# none, this says so and stops (the proptests with arbitrary bytes in `make test` cover no-panic).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = crates/graph-batch/fuzz:parse_response crates/rotation/fuzz:csv_source crates/rotation/fuzz:ledger_replay
fuzz:
	@if ! rustup run nightly rustc --version >/dev/null 2>&1; then \
		echo "no nightly toolchain: cargo-fuzz cannot run here; the arbitrary-bytes proptests in make test cover no-panic"; \
		exit 0; \
	fi; \
	command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz || exit 1; \
	for t in $(FUZZ_TARGETS); do \
		dir=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$dir), $(FUZZ_SECONDS) s"; \
		(cd $$dir && $(CARGO) +nightly fuzz run $$name -- -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	done

# graph-sim against Microsoft's own clients: MSAL, azure-identity and the Graph beta SDK (pinned in
# interop/requirements.txt), in a virtual environment made here with the machine's Python, against
# `graph-sim --tls` and plain loopback. Each run is bounded by INTEROP_SECONDS.
INTEROP_VENV ?= target/interop-venv
INTEROP_SECONDS ?= 600
# The workspace's binaries as `make test` built them: the examples bring the dev-dependencies in,
# so features resolve as in the test build; graph-sim alone, or the bins alone, resolve others and
# compile again (a minute or more of .ci/run).
interop: interop-venv
	$(CARGO) build --locked --workspace --examples --bins
	timeout $(INTEROP_SECONDS) $(INTEROP_VENV)/bin/python interop/check.py --graph-sim target/debug/graph-sim --mode tls
	timeout $(INTEROP_SECONDS) $(INTEROP_VENV)/bin/python interop/check.py --graph-sim target/debug/graph-sim --mode plain

# The interop clients, installed alone: `.ci/run` installs them while the Rust tests run. Their
# bytecode is compiled as they are imported, not up front.
interop-venv:
	@test -x $(INTEROP_VENV)/bin/python || python3 -m venv $(INTEROP_VENV) || \
		{ python3 -m pip install --quiet --user virtualenv && python3 -m virtualenv $(INTEROP_VENV); }
	$(INTEROP_VENV)/bin/pip install --quiet --disable-pip-version-check --no-compile -r interop/requirements.txt

# The report of a demo run rendered in headless Chromium (`apt-get install chromium`): no console
# error, both charts drawn, and the screenshot the README shows (docs/report.png) written again.
report-check:
	$(CARGO) build --locked --workspace --examples --bins
	rm -rf target/report-demo
	target/debug/intune-rotate demo --devices 3000 --out-dir target/report-demo
	python3 tools/report_check.py target/report-demo/report.html docs/report.png
