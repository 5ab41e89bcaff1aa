# The two commands a newcomer needs: `make demo` (a full local recovery drill)
# and `make test` (everything CI runs).
# Services the tests talk to (PostgreSQL, Garage S3, etcd + kube-apiserver, and a
# single-node cluster with kubelet and containerd) are installed on first use and
# started/stopped by hack/test-env.sh.

CARGO ?= cargo
BIN := target/debug/artifortress-operator

.PHONY: demo test fmt-check clippy deny fuzz-short test-build crds alerts build plugin bench audit e2e-kind e2e-local

demo: build
	hack/demo.py

# Every step says how long it took ([timing] lines; .ci/run sums them up).
test: fmt-check clippy deny fuzz-short test-build
	hack/timed "test: all (services up and down included)" \
	  hack/test-env.sh run -- hack/test-groups.sh --workspace --all-targets --no-fail-fast

fmt-check:
	hack/timed "lint: cargo fmt" $(CARGO) fmt --all -- --check

clippy:
	hack/timed "lint: cargo clippy" $(CARGO) clippy --workspace --all-targets -- -D warnings

# Licenses, banned crates and crate sources (deny.toml). Offline-capable; the
# advisories check needs the RustSec database from GitHub: `make audit`.
deny:
	deny=$$(hack/timed "install: cargo-deny" hack/install-cargo-tool.sh cargo-deny 0.20.2) && \
	  hack/timed "lint: cargo deny" $$deny check licenses bans sources

# RustSec advisories: run it where github.com is reachable (not on CI here).
audit:
	$$(hack/install-cargo-tool.sh cargo-deny 0.20.2) check advisories

# Every parser of untrusted bytes under libFuzzer, briefly (make bench runs longer).
fuzz-short:
	hack/timed "fuzz: every parser 10s" hack/fuzz.sh 10

# Compile before starting services, so they do not sit idle during the build.
test-build:
	hack/timed "build: tests" $(CARGO) test --workspace --all-targets --no-run

build:
	$(CARGO) build

# The kubectl plugin: the same binary through a link kubectl finds on the PATH.
plugin: build
	ln -sf artifortress-operator target/debug/kubectl-artifortress
	@echo "PATH=\"$$PWD/target/debug:\$$PATH\" kubectl artifortress --help"

# Regenerate the CRDs from the Rust types (tests/crds_in_sync.rs checks them).
crds: build
	$(BIN) crd --out-dir crds
	$(BIN) crd --out-dir charts/artifortress-operator/crds

# The chart's PrometheusRule and Grafana dashboard from deploy/alert-thresholds.yaml
# (tests/alerts.rs checks both).
alerts: build
	$(BIN) alerts > charts/artifortress-operator/templates/prometheusrule.yaml
	$(BIN) alerts --dashboard > charts/artifortress-operator/dashboards/artifortress-operator.json

# Engine benchmark on the large seed against pg_dump/psql baselines, backup and
# restore of a ~10 GB seed through Garage (about 10 minutes on 2 cores), then the
# operator benchmark (drill control overhead, idle memory with 100 installations)
# against the test environment's services. Both print their numbers and targets.
# bench/restore_bench.py: a restore's phases, each session setting on and off,
# and pg_restore -j 1..4, on a durable target server (JSON in target/bench/).
# bench/http_bench.py: the ops summary and readiness under wrk, every read audited.
# bench/pgbackrest_bench.py: our backup and restore beside pgBackRest's (Debian).
# First, two minutes of fuzzing per parser (make test runs ten seconds each).
bench:
	hack/fuzz.sh 120
	$(CARGO) build --release
	bench/engine_bench.py
	bench/encryption_bench.py
	bench/restore_bench.py
	bench/http_bench.py
	bench/pgbackrest_bench.py
	bench/xlarge_bench.py
	hack/test-env.sh run -- $(CARGO) test --release --test operator_bench -- --ignored --nocapture

# The chart on the harness's own single-node cluster (hack/node.sh, needs root):
# helm install of the image built from the Dockerfile, drills whose Jobs run as
# pods; prints the pods, Jobs and RecoveryDrills. `make test` runs the same tests.
e2e-local: test-build
	hack/test-env.sh run -- $(CARGO) test --test node -- --nocapture

# The chart on a kind cluster, a drill to Succeeded (needs Docker and kind;
# not runnable on the CI machines, see hack/e2e-kind.sh).
e2e-kind:
	hack/e2e-kind.sh
