# The two commands a newcomer needs: `make demo` (a full local recovery drill)
# and `make test` (everything CI runs).
# Services the tests talk to (PostgreSQL, Garage S3, etcd + kube-apiserver) are
# installed on first use and started/stopped by hack/test-env.sh.

CARGO ?= cargo
BIN := target/debug/artifortress-operator

.PHONY: demo test fmt-check clippy test-build crds alerts build bench e2e-kind

demo: build
	hack/demo.py

test: fmt-check clippy test-build
	hack/test-env.sh run -- $(CARGO) test --all-targets --no-fail-fast

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

# Compile before starting services, so they do not sit idle during the build.
test-build:
	$(CARGO) test --all-targets --no-run

build:
	$(CARGO) build

# Regenerate the CRDs from the Rust types (tests/crds_in_sync.rs checks them).
crds: build
	$(BIN) crd --out-dir crds
	$(BIN) crd --out-dir charts/artifortress-operator/crds

# The chart's PrometheusRule from deploy/alert-thresholds.yaml (tests/alerts.rs checks it).
alerts: build
	$(BIN) alerts > charts/artifortress-operator/templates/prometheusrule.yaml

# Engine benchmark on the large seed against pg_dump/psql baselines, then the
# operator benchmark (drill control overhead, idle memory with 100 installations)
# against the test environment's services. Both print their numbers and targets.
bench:
	$(CARGO) build --release
	bench/engine_bench.py
	hack/test-env.sh run -- $(CARGO) test --release --test operator_bench -- --ignored --nocapture

# The chart on a kind cluster, a drill to Succeeded (needs Docker and kind;
# not runnable on the CI machines, see hack/e2e-kind.sh).
e2e-kind:
	hack/e2e-kind.sh
