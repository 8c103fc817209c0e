#!/usr/bin/env bash
# Prepares a NIC dedicated to capture for tapflow-probe: queues, rings, offloads, symmetric RSS,
# IRQ affinity, hugepages, promiscuous mode, link up with no address.
#
#   scripts/tune-nic.sh IFACE [--queues N] [--cores LIST] [--ring N] [--hugepages N] [--dry-run]
#
#   --queues N      RX channels (default: one per --cores entry; unchanged without --cores)
#   --cores LIST    worker cores, e.g. 2-5 or 2,3,8-9: the queues' IRQs are pinned to them in turn
#   --ring N        RX ring descriptors (default: the driver's maximum)
#   --hugepages N   reserve N 2 MiB pages (UMEM of the AF_XDP backend; AF_PACKET does not use them)
#   --dry-run       print every change instead of making it (reads still happen)
#
# Every step says what it did. A step the driver cannot do (veth can do few) is reported and the
# script goes on: exit status 0 means "went through", not "every step applied"; see the summary.
# Nothing here persists across a reboot or a driver reload: run it from a oneshot unit before
# the probe starts (deploy/systemd/README.md).
set -u

usage() {
    sed -n '5,11s/^# \{0,1\}//p' "$0" >&2
    exit 2
}
die() {
    echo "tune-nic: $*" >&2
    exit 1
}

IFACE=""
QUEUES=""
CORES_ARG=""
RING=""
HUGEPAGES=""
DRY=0
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while (($#)); do
    case $1 in
    --queues | --cores | --ring | --hugepages)
        (($# >= 2)) || { echo "tune-nic: $1 needs a value" >&2; usage; }
        case $1 in
        --queues) QUEUES=$2 ;;
        --cores) CORES_ARG=$2 ;;
        --ring) RING=$2 ;;
        --hugepages) HUGEPAGES=$2 ;;
        esac
        shift 2
        ;;
    --dry-run) DRY=1; shift ;;
    -h | --help) usage ;;
    -*) echo "tune-nic: unknown option $1" >&2; usage ;;
    *)
        [[ -z $IFACE ]] || { echo "tune-nic: one interface only (got $IFACE and $1)" >&2; usage; }
        IFACE=$1
        shift
        ;;
    esac
done
[[ -n $IFACE ]] || usage
for v in "$QUEUES" "$RING" "$HUGEPAGES"; do
    [[ -z $v ]] || is_uint "$v" || { echo "tune-nic: not a number: $v" >&2; usage; }
done
[[ -z $QUEUES || $QUEUES -gt 0 ]] || { echo "tune-nic: --queues must be at least 1" >&2; usage; }

# --cores 2,4-6 -> CORES=(2 4 5 6)
CORES=()
if [[ -n $CORES_ARG ]]; then
    IFS=, read -ra parts <<<"$CORES_ARG"
    for p in "${parts[@]}"; do
        if [[ $p =~ ^([0-9]+)-([0-9]+)$ ]] && ((BASH_REMATCH[1] <= BASH_REMATCH[2])); then
            for ((c = BASH_REMATCH[1]; c <= BASH_REMATCH[2]; c++)); do CORES+=("$c"); done
        elif is_uint "$p"; then
            CORES+=("$p")
        else
            echo "tune-nic: bad core list: $CORES_ARG" >&2
            usage
        fi
    done
fi
[[ -n $QUEUES || ${#CORES[@]} -eq 0 ]] || QUEUES=${#CORES[@]}

ip link show dev "$IFACE" >/dev/null 2>&1 || die "no network interface $IFACE (in this namespace)"
((DRY)) || [[ $(id -u) -eq 0 ]] || die "must run as root (or use --dry-run)"
command -v ethtool >/dev/null || die "ethtool not found (Debian: apt-get install ethtool)"

OK=0
FAILED=0
NOTES=0
PLANNED=0
note() {
    echo "[note] $*"
    NOTES=$((NOTES + 1))
}

# run DESCRIPTION CMD...: runs a change (or prints it with --dry-run) and reports the outcome.
# Some ethtool versions exit 0 after "Cannot change ...", so stderr is read as well.
run() {
    local what=$1 err rc
    shift
    if ((DRY)); then
        echo "[dry-run] $*    # $what"
        PLANNED=$((PLANNED + 1))
        return 0
    fi
    err=$("$@" 2>&1 >/dev/null)
    rc=$?
    if ((rc == 0)) && ! grep -qiE 'cannot|not supported|operation not permitted|invalid' <<<"$err"; then
        echo "[ok] $*"
        OK=$((OK + 1))
        return 0
    fi
    echo "[not done] $*: ${err//$'\n'/; } (exit $rc)"
    FAILED=$((FAILED + 1))
    return 1
}

# write_file DESCRIPTION VALUE PATH: like run, for /proc and /sys files.
write_file() {
    local what=$1 val=$2 path=$3 err
    if ((DRY)); then
        echo "[dry-run] echo $val > $path    # $what"
        PLANNED=$((PLANNED + 1))
        return 0
    fi
    if err=$( { echo "$val" >"$path"; } 2>&1); then
        echo "[ok] echo $val > $path"
        OK=$((OK + 1))
        return 0
    fi
    echo "[not done] echo $val > $path: $err"
    FAILED=$((FAILED + 1))
    return 1
}

# preset_max SECTION_FIELD: a "Pre-set maximums" value from `ethtool -l` / `ethtool -g` output
# on stdin ("" when absent or n/a).
preset_max() {
    awk -v f="$1" '
        /^Pre-set maximums/ { on = 1; next }
        /^Current hardware settings/ { on = 0 }
        on && $0 ~ "^" f ":" { v = $NF; if (v ~ /^[0-9]+$/) print v; exit }'
}

echo "tune-nic: $IFACE$( ((DRY)) && echo ' (dry run: nothing is changed)')"

# --- Link: up, promiscuous, silent -------------------------------------------------------------
# A capture port must never talk: no IPv4/IPv6 address (so no ARP/ND/MLD, no replies to tapped
# traffic), ARP off. Promiscuous so frames for other MACs (all of them, on a tap) are kept.
run "remove addresses" ip addr flush dev "$IFACE"
if [[ -e /proc/sys/net/ipv6/conf/$IFACE/disable_ipv6 ]]; then
    write_file "no IPv6 link-local address" 1 "/proc/sys/net/ipv6/conf/$IFACE/disable_ipv6"
fi
run "no ARP" ip link set dev "$IFACE" arp off
run "promiscuous mode" ip link set dev "$IFACE" promisc on
run "link up" ip link set dev "$IFACE" up

# --- Channels (RX queues) ---------------------------------------------------------------------
if [[ -n $QUEUES ]]; then
    chan=$(ethtool -l "$IFACE" 2>/dev/null)
    if [[ -n $(preset_max Combined <<<"$chan") ]]; then
        run "RX queues" ethtool -L "$IFACE" combined "$QUEUES"
    elif [[ -n $(preset_max RX <<<"$chan") ]]; then
        run "RX queues" ethtool -L "$IFACE" rx "$QUEUES"
    else
        run "RX queues" ethtool -L "$IFACE" combined "$QUEUES"
    fi
else
    note "queue count unchanged (give --queues or --cores)"
fi

# --- Ring sizes: deepest RX ring absorbs bursts while a worker is descheduled ----------------
rx_max=$(ethtool -g "$IFACE" 2>/dev/null | preset_max RX)
if [[ -n $RING ]]; then
    run "RX ring size" ethtool -G "$IFACE" rx "$RING"
elif [[ -n $rx_max ]]; then
    run "RX ring size (driver maximum)" ethtool -G "$IFACE" rx "$rx_max"
else
    note "driver does not report ring sizes; RX ring unchanged"
fi

# --- Offloads ---------------------------------------------------------------------------------
# GRO/LRO (and hardware GRO) merge packets before capture: the probe would count one super-packet
# instead of the wire's packets and see wrong sizes and TCP sequence progress. GSO/TSO only act on
# transmit but are turned off too, so nothing this host might send is segmented behind our back.
# rx-vlan-offload stays ON: the AF_PACKET backend writes the stripped 802.1Q/802.1ad tag back
# into each frame (and the kernel strips it in software anyway when the NIC does not).
for f in gro lro rx-gro-hw rx-gro-list rx-udp-gro-forwarding gso tso; do
    run "offload $f off" ethtool -K "$IFACE" "$f" off
done

# --- Flow control: a capture port must never send PAUSE frames back into the tap or SPAN -------
run "pause frames off" ethtool -A "$IFACE" rx off tx off

# --- Symmetric RSS ----------------------------------------------------------------------------
# Both directions of a flow on one queue, so one core's cache holds the flow (the AF_PACKET fanout
# hash is computed by the kernel and flow-symmetric regardless; per-queue AF_XDP sockets need
# this). A Toeplitz key of 6d:5a repeated hashes (a,b) and (b,a) alike; drivers that support it
# can instead xor the addresses and ports before hashing (ethtool >= 6.8 `xfrm symmetric-xor`).
key_len=$(ethtool -x "$IFACE" 2>/dev/null |
    awk '/^RSS hash key:/ { on = 1; next }
         on && /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$/ { n += split($0, a, ":"); next }
         on { exit }
         END { print n + 0 }')
((key_len >= 2)) || key_len=40 # the usual Toeplitz key length when the driver does not say
key=$(for ((i = 0; i < key_len; i += 2)); do printf '6d:5a:'; done | cut -c1-$((key_len * 3 - 1)))
if ! run "symmetric Toeplitz key" ethtool -X "$IFACE" hfunc toeplitz hkey "$key"; then
    if ethtool --help 2>&1 | grep -q xfrm; then
        run "symmetric hash input" ethtool -X "$IFACE" hfunc toeplitz xfrm symmetric-xor
    else
        note "this ethtool has no 'xfrm symmetric-xor' (needs >= 6.8); RSS may not be symmetric"
    fi
fi
if [[ -n $QUEUES ]]; then
    run "spread RSS over $QUEUES queues" ethtool -X "$IFACE" equal "$QUEUES"
fi
# Hash on addresses and ports for TCP and UDP (many drivers hash UDP on addresses only).
for t in tcp4 udp4 tcp6 udp6; do
    run "RSS fields $t" ethtool -N "$IFACE" rx-flow-hash "$t" sdfn
done

# --- RPS off: packets stay on the core that took the queue's interrupt --------------------------
for f in /sys/class/net/"$IFACE"/queues/rx-*/rps_cpus; do
    [[ -e $f ]] && write_file "no RPS" 0 "$f"
done

# --- IRQ affinity -----------------------------------------------------------------------------
# The queues' interrupts: lines of /proc/interrupts naming the interface (eth1-TxRx-0,
# i40e-eth1-TxRx-3, eth1-rx-0, ...), else naming its device (virtio2-input.0,
# mlx5_comp0@pci:0000:3b:00.0), else the PCI device's MSI vectors.
# Prints "IRQ QUEUE" per line; QUEUE is the name's trailing number (eth1-TxRx-3, virtio2-input.3,
# mlx5_comp3@pci:...), or -1, so queue n goes to the n-th core whatever the IRQ numbering.
irqs_named() {
    awk -v i="$1" '
        { name = $NF }
        name ~ ("(^|[^[:alnum:]])" i "([^[:alnum:].]|$)") {
            sub(":", "", $1); sub(/@.*/, "", name)
            q = match(name, /[0-9]+$/) ? substr(name, RSTART) + 0 : -1
            print $1, q
        }' /proc/interrupts
}
mapfile -t IRQS < <(irqs_named "$IFACE")
dev=$(readlink -f "/sys/class/net/$IFACE/device" 2>/dev/null)
if ((${#IRQS[@]} == 0)) && [[ -n $dev ]]; then
    mapfile -t IRQS < <(irqs_named "${dev##*/}")
fi
for d in "$dev" "${dev%/*}"; do
    if ((${#IRQS[@]} == 0)) && [[ -n $dev && -d $d/msi_irqs ]]; then
        for m in "$d"/msi_irqs/*; do IRQS+=("${m##*/} -1"); done
    fi
done
if ((${#IRQS[@]} == 0)); then
    note "no IRQs found for $IFACE (a virtual device?); IRQ affinity unchanged"
elif ((${#CORES[@]} == 0)); then
    note "IRQs of $IFACE left where they are (give --cores to pin them)"
else
    rr=0
    ban=""
    for e in "${IRQS[@]}"; do
        read -r irq q <<<"$e"
        [[ -e /proc/irq/$irq/smp_affinity_list ]] || continue
        if ((q < 0)); then
            q=$rr
            rr=$((rr + 1))
        fi
        core=${CORES[q % ${#CORES[@]}]}
        write_file "IRQ $irq (queue $q) -> core $core" "$core" "/proc/irq/$irq/smp_affinity_list"
        ban+=" --banirq=$irq"
    done
    # irqbalance would move them back. Its configuration is the operator's: say what to add.
    if pidof irqbalance >/dev/null 2>&1; then
        note "irqbalance is running and would move these IRQs: add to /etc/default/irqbalance"
        note "  IRQBALANCE_ARGS=\"${ban# }\""
        note "  IRQBALANCE_BANNED_CPULIST=$CORES_ARG    # keeps other IRQs off the worker cores"
        note "  and restart irqbalance (or stop it on a dedicated probe)"
    fi
fi

# --- Hugepages (AF_XDP UMEM) ------------------------------------------------------------------
if [[ -n $HUGEPAGES ]]; then
    if write_file "reserve 2 MiB pages" "$HUGEPAGES" /proc/sys/vm/nr_hugepages && ((!DRY)); then
        got=$(cat /proc/sys/vm/nr_hugepages)
        if ((got < HUGEPAGES)); then
            note "only $got of $HUGEPAGES hugepages reserved (memory fragmented: reserve at boot)"
        fi
    fi
    note "to keep them: vm.nr_hugepages=$HUGEPAGES in /etc/sysctl.d/90-tapflow.conf"
fi

if ((DRY)); then
    echo "summary: $IFACE: $PLANNED changes planned, $NOTES notes (dry run)"
else
    echo "summary: $IFACE: $OK applied, $FAILED not done (see [not done] above), $NOTES notes"
fi
exit 0
