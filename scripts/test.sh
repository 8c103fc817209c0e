#!/usr/bin/env bash
# The whole test suite: installs the peers the tests use (Debian's argus as an oracle, tshark),
# then checks formatting and lints, builds every binary and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v argus >/dev/null || need+=(argus-server)
command -v ra >/dev/null || need+=(argus-client)
command -v tshark >/dev/null || need+=(tshark)
# The IPFIX/NetFlow v9 export is received by nfcapd and read back with nfdump.
command -v nfcapd >/dev/null || need+=(nfdump)
# The merge tests generate captures with ../shared/tools/genpcap.py.
command -v python3 >/dev/null || need+=(python3)
# The XDP program is built by clang (capture-backends/build.rs); the live tests use ethtool and
# shellcheck (scripts/tune-nic.sh).
command -v clang >/dev/null || need+=(clang llvm)
[ -e /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
command -v ethtool >/dev/null || need+=(ethtool)
command -v shellcheck >/dev/null || need+=(shellcheck)
# `tapflow plot` sets its text in a TrueType font; `tapflow top`'s test runs it in script(1)'s
# pseudo-terminal.
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
command -v script >/dev/null || need+=(bsdutils)
# The units' security exposure is checked with systemd-analyze; setpriv starts the probe as
# the unit does (unprivileged, ambient capabilities).
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "*** not root: cannot install ${need[*]}; the tests that use them will say they are SKIPPED ***" >&2
    else
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
# The DAG backend links the vendor's libdag, absent here: check that it compiles.
cargo check -q -p tapflow-probe --features dag
# The end-to-end tests run the binaries, so build them first.
cargo build --workspace --bins -q
cargo test --workspace --no-fail-fast
