# GRACE: every routine task. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TERM_COLOR := "always"

playbooks_target := justfile_directory() / "playbooks" / "target"

# List the recipes
default:
    @just --list

# Dry-run the scale-on-latency playbook against the simulated fleet, then verify the ledger
[group('demo')]
demo: build-playbooks
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --quiet --release -p grace
    grace=target/release/grace
    data=$(mktemp -d)
    trap 'rm -rf "$data"' EXIT
    echo "== an incident: p95 latency of api-service is above 500 ms"
    cat playbooks/examples/scale-on-latency/event.json
    echo
    echo "== grace run playbooks/examples/scale-on-latency --event ... --dry-run"
    $grace run playbooks/examples/scale-on-latency --event playbooks/examples/scale-on-latency/event.json --dry-run --data-dir "$data"
    echo
    echo "== the collector that raises such incidents, on a fresh simulated fleet"
    $grace run playbooks/examples/latency-collector --dry-run --data-dir "$data" | tail -n +6
    echo
    echo "== a playbook that reaches beyond its grants is refused"
    $grace run playbooks/fixtures/out-of-scope --event playbooks/examples/scale-on-latency/event.json --dry-run --data-dir "$data" | grep -E "DENIED|why|outcome" || true
    echo
    echo "== grace ledger verify"
    $grace ledger verify --data-dir "$data"

# Build every example playbook, collector and test fixture for wasm32-wasip2
[group('build')]
build-playbooks: _wasm-target
    cd playbooks && CARGO_TARGET_DIR="{{playbooks_target}}" cargo build --release

# Build the host
[group('build')]
build:
    cargo build --workspace

# Run every test: unit, integration (real guests) and end-to-end
[group('test')]
test: build-playbooks
    cargo test --workspace --all-targets
    cargo test --workspace --doc

# Formatting, clippy on host and guests
[group('test')]
lint: _wasm-target
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cd playbooks && cargo fmt --all --check && CARGO_TARGET_DIR="{{playbooks_target}}" cargo clippy --release -- -D warnings

# Benchmarks: ratios against in-process baselines (raw wasmtime, raw redb)
[group('bench')]
bench: build-playbooks
    cargo bench -p grace-ledger --bench append
    cargo bench -p grace-engine --bench run

# Remove build outputs
clean:
    cargo clean
    rm -rf playbooks/target

_wasm-target:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        echo "installing the wasm32-wasip2 target (rustup target add wasm32-wasip2)"
        rustup target add wasm32-wasip2
    fi
