#!/usr/bin/env bash
# Runs the probe on the capture shipped in the repo and prints its flow records.
set -euo pipefail
cd "$(dirname "$0")/.."
# The build compiles the XDP program with clang (capture-backends/build.rs).
if ! command -v clang >/dev/null || [ ! -e /usr/include/linux/bpf.h ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "demo: clang and linux-libc-dev are needed to build (apt-get install clang linux-libc-dev)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends clang llvm linux-libc-dev >/dev/null
fi
cargo build --release -q --bin tapflow-probe --bin tapflow
capture=${1:-tests/fixtures/demo.pcap}
bin=${CARGO_TARGET_DIR:-target}/release
"$bin/tapflow-probe" -r "$capture" -w - | "$bin/tapflow" read -r -
