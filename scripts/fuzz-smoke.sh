#!/usr/bin/env bash
# Fuzz smoke run: builds every cargo-fuzz target (fuzz/) and runs each for a short while
# (FUZZ_SECONDS, default 30). A crash fails the run and leaves its input in
# fuzz/artifacts/TARGET/ (turn it into a regression test in the crate it hit).
# Needs a nightly toolchain (libFuzzer's instrumentation and AddressSanitizer); installs
# cargo-fuzz from crates.io when missing. Long runs: FUZZ_SECONDS=3600 scripts/fuzz-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECONDS:-30}"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "*** fuzz smoke SKIPPED: no nightly toolchain (rustup toolchain install nightly) ***" >&2
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install -q --locked cargo-fuzz
fi
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^tapflow-fuzz$')
cargo +nightly fuzz build -O >/dev/null
for t in $targets; do
    log=$(mktemp)
    if ! cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
        >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "*** fuzz target $t FAILED (input in fuzz/artifacts/$t/) ***" >&2
        exit 1
    fi
    echo "fuzz $t: $(grep -E '^#[0-9]+ +DONE' "$log" | sed 's/ *rss:.*//')"
    rm -f "$log"
done
