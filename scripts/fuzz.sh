#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (libFuzzer, the cargo-fuzz layout) for a bounded time or number
# of executions, and prints how many executions each ran and the total.
#
# Usage: scripts/fuzz.sh [--seconds N | RUNS] [target...]
#   --seconds N   each target runs for N seconds (libFuzzer -max_total_time), as CI does
#   RUNS          each target runs RUNS executions (default 20000)
#
# The targets are built with cargo directly, with the flags `cargo fuzz build` passes
# (SanitizerCoverage instrumentation, `--cfg fuzzing`, debug assertions so overflows panic), so
# cargo-fuzz need not be installed (`cargo install cargo-fuzz` compiles for minutes). No
# AddressSanitizer: the code under test is safe Rust. The toolchain is stable, so the unstable
# flags are allowed with RUSTC_BOOTSTRAP=1. Each target starts from its committed seed corpus,
# fuzz/corpus/<target>/, read-only: what libFuzzer discovers goes to a temporary directory, so a
# run never changes the repository. A crash leaves its input in fuzz/artifacts/<target>/
# (ignored by git) and fails the script (exit 1) after the other targets ran.

set -euo pipefail

say() { printf 'fuzz: %s\n' "$*"; }
fail() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=""
runs=20000
if [ "${1:-}" = "--seconds" ]; then
    seconds=${2:-}
    [[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || fail "--seconds needs a positive number, got \`$seconds\`"
    shift 2
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    runs=$1
    shift
elif [ -n "${1:-}" ] && [ ! -f "$root/fuzz/fuzz_targets/$1.rs" ]; then
    fail "expected --seconds N, a number of runs or a target name, got \`$1\`"
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in "$root"/fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
[ "${#targets[@]}" -gt 0 ] || fail "no fuzz targets found in $root/fuzz/fuzz_targets"

triple=$(rustc -vV | sed -n 's/^host: //p')
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
flags+=" -Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cdebug-assertions"
case "$triple" in *-linux-*) flags+=" -Cllvm-args=-sanitizer-coverage-stack-depth" ;; esac

say "building ${#targets[@]} targets: ${targets[*]}"
bins=()
for target in "${targets[@]}"; do bins+=(--bin "$target"); done
# `--target` keeps these flags away from build scripts, as cargo-fuzz does.
# opt-level 1 and parallel codegen: the targets link wasmtime and Cedar, and a fresh CI machine
# builds them once per run; a target executing at half speed loses less than an optimised build
# of those crates takes.
RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" cargo build --quiet --release \
    --config 'profile.release.debug="line-tables-only"' \
    --config 'profile.release.opt-level=1' --config 'profile.release.codegen-units=16' \
    --manifest-path "$root/fuzz/Cargo.toml" --target "$triple" "${bins[@]}" \
    || fail "the fuzz targets do not build (see the output above)"
out="$root/fuzz/target/$triple/release"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
declare -A executed=()
failed=()
total=0
if [ -n "$seconds" ]; then limit=(-max_total_time="$seconds"); what="$seconds s"; else
    limit=(-runs="$runs" -max_total_time=600); what="$runs executions"; fi
for target in "${targets[@]}"; do
    seeds="$root/fuzz/corpus/$target"
    [ -d "$seeds" ] || fail "no seed corpus at $seeds"
    mkdir -p "$scratch/$target" "$root/fuzz/artifacts/$target"
    log="$scratch/$target.log"
    say "running $target for $what"
    # The first corpus directory receives new inputs; the seeds are only read.
    if "$out/$target" "$scratch/$target" "$seeds" "${limit[@]}" -print_final_stats=1 \
        -artifact_prefix="$root/fuzz/artifacts/$target/" >"$log" 2>&1; then
        status=ok
    else
        status=CRASHED
        failed+=("$target")
        grep -E "panicked at|ERROR: libFuzzer|Test unit written to" "$log" >&2 || tail -20 "$log" >&2
    fi
    count=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -1)
    total=$((total + ${count:-0}))
    executed[$target]="${count:-?} executions, $status"
done

printf '\n%-16s %s\n' "target" "result"
for target in "${targets[@]}"; do
    printf '%-16s %s\n' "$target" "${executed[$target]}"
done
printf '%-16s %s executions\n' "total" "$total"
if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nfuzz: crashes in: %s (inputs in fuzz/artifacts/)\n' "${failed[*]}" >&2
    exit 1
fi
