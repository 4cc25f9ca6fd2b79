#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded number of executions and prints how many
# each ran. Usage: scripts/fuzz.sh [runs per target, default 20000] [target...]
#
# Installs cargo-fuzz (`cargo install cargo-fuzz`) when it is missing. The toolchain is stable,
# so libFuzzer's nightly flags are allowed with RUSTC_BOOTSTRAP=1. Each target starts from its
# committed seed corpus, fuzz/corpus/<target>/, read-only: what libFuzzer discovers goes to a
# temporary directory, so running this never changes the repository. A crash leaves its input
# in fuzz/artifacts/<target>/ and fails the script (exit 1) after the other targets ran.

set -euo pipefail

say() { printf 'fuzz: %s\n' "$*"; }
fail() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${1:-20000}
shift || true
[[ "$runs" =~ ^[0-9]+$ ]] || fail "runs must be a number, got \`$runs\`"

if ! cargo fuzz --version >/dev/null 2>&1; then
    say "cargo-fuzz not found; running: cargo install cargo-fuzz (takes a few minutes)"
    cargo install cargo-fuzz || fail "cargo install cargo-fuzz failed (see its output above)"
fi

cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || fail "no fuzz targets found in $root/fuzz"

say "building ${#targets[@]} targets: ${targets[*]}"
cargo fuzz build || fail "the fuzz targets do not build (see the output above)"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
declare -A executed=()
failed=()
for target in "${targets[@]}"; do
    seeds="$root/fuzz/corpus/$target"
    [ -d "$seeds" ] || fail "no seed corpus at $seeds"
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    say "running $target for $runs executions"
    # The first corpus directory receives new inputs; the seeds are only read.
    if cargo fuzz run "$target" "$scratch/$target" "$seeds" -- \
        -runs="$runs" -max_total_time=600 -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=CRASHED
        failed+=("$target")
        grep -E "panicked at|ERROR: libFuzzer|Test unit written to" "$log" >&2 || tail -20 "$log" >&2
    fi
    count=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -1)
    executed[$target]="${count:-?} executions, $status"
done

printf '\n%-16s %s\n' "target" "result"
for target in "${targets[@]}"; do
    printf '%-16s %s\n' "$target" "${executed[$target]}"
done
if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nfuzz: crashes in: %s (inputs in fuzz/artifacts/)\n' "${failed[*]}" >&2
    exit 1
fi
