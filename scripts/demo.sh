#!/usr/bin/env bash
# Runs the probe on the capture shipped in the repo and prints its flow records.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q --bin tapflow-probe --bin tapflow
capture=${1:-tests/fixtures/demo.pcap}
bin=${CARGO_TARGET_DIR:-target}/release
"$bin/tapflow-probe" -r "$capture" -w - | "$bin/tapflow" read -r -
