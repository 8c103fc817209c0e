// SPDX-License-Identifier: GPL-2.0
/*
 * tapflow XDP program: steers every packet of an RX queue to the AF_XDP socket bound to that
 * queue, optionally drops packets to/from configured prefixes first, and counts what it did.
 *
 * Self-contained on purpose: only <linux/bpf.h> from linux-libc-dev is needed (no libbpf
 * headers), so the build needs nothing but clang. Built by capture-backends/build.rs.
 */
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

/* Helper ids are stable kernel ABI (enum bpf_func_id). */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_meta;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;

/*
 * Per-packet receive time, passed to user space in the XDP metadata area just before the
 * frame (AF_XDP copies metadata in copy mode too). AF_XDP has no timestamp of its own, and
 * per-packet times keep RTT/jitter exact and let a worker order the packets of two tap legs.
 * Keep in sync with capture-backends/src/xdp/socket.rs (META_MAGIC, struct layout).
 */
#define TF_META_MAGIC 0x7466746d65746131ULL /* "1atemtft" little-endian: "tftmeta1" */
struct tf_meta {
	__u64 ts; /* CLOCK_MONOTONIC ns */
	__u64 magic;
};

/* Keep in sync with capture-backends/src/xdp (MAX_QUEUES, NCOUNTERS, counter order). */
#define MAX_QUEUES 64
#define NCOUNTERS 4
#define C_SEEN 0
#define C_REDIRECTED 1
#define C_PASSED 2
#define C_FILTERED 3
/* Slot MAX_QUEUES counts packets from queues >= MAX_QUEUES (which no socket can serve). */
#define COUNTER_SLOTS ((MAX_QUEUES + 1) * NCOUNTERS)
#define MAX_PREFIXES 1024

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} tf_counters SEC(".maps");

struct lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};
struct lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__type(key, struct lpm_v4);
	__type(value, __u8);
} tf_drop_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6);
	__type(value, __u8);
} tf_drop_v6 SEC(".maps");

/*
 * Set by the loader before the program is verified (.rodata): with no prefixes configured the
 * verifier removes the parsing and lookups entirely.
 */
const volatile __u32 tf_filter_v4 = 0;
const volatile __u32 tf_filter_v6 = 0;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define be16(x) __builtin_bswap16(x)
#else
#define be16(x) (x)
#endif

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

static __always_inline void count(__u32 slot, __u32 counter)
{
	__u32 key = slot * NCOUNTERS + counter;
	__u64 *v = bpf_map_lookup_elem(&tf_counters, &key);

	/* Per-CPU slot: no other CPU writes it, a plain increment is enough. */
	if (v)
		*v += 1;
}

/* Whether the packet's IPv4/IPv6 source or destination is in a drop prefix. */
static __always_inline int filtered(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p = data;
	__u16 proto;
	int i;

	if (p + ETH_HLEN > (__u8 *)end)
		return 0;
	proto = *(__u16 *)(p + 12);
	p += ETH_HLEN;

	/* Up to two VLAN tags (802.1Q, or 802.1ad outer + 802.1Q inner). */
#pragma unroll
	for (i = 0; i < 2; i++) {
		if (proto != be16(ETH_P_8021Q) && proto != be16(ETH_P_8021AD))
			break;
		if (p + 4 > (__u8 *)end)
			return 0;
		proto = *(__u16 *)(p + 2);
		p += 4;
	}

	if (proto == be16(ETH_P_IP)) {
		struct lpm_v4 key = { .prefixlen = 32 };

		if (!tf_filter_v4 || p + 20 > (__u8 *)end)
			return 0;
		__builtin_memcpy(key.addr, p + 12, 4); /* saddr */
		if (bpf_map_lookup_elem(&tf_drop_v4, &key))
			return 1;
		__builtin_memcpy(key.addr, p + 16, 4); /* daddr */
		return bpf_map_lookup_elem(&tf_drop_v4, &key) != 0;
	}
	if (proto == be16(ETH_P_IPV6)) {
		struct lpm_v6 key = { .prefixlen = 128 };

		if (!tf_filter_v6 || p + 40 > (__u8 *)end)
			return 0;
		__builtin_memcpy(key.addr, p + 8, 16); /* saddr */
		if (bpf_map_lookup_elem(&tf_drop_v6, &key))
			return 1;
		__builtin_memcpy(key.addr, p + 24, 16); /* daddr */
		return bpf_map_lookup_elem(&tf_drop_v6, &key) != 0;
	}
	return 0;
}

SEC("xdp")
int tapflow_xdp(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	__u32 slot = queue < MAX_QUEUES ? queue : MAX_QUEUES;
	long action;

	count(slot, C_SEEN);
	if ((tf_filter_v4 || tf_filter_v6) && filtered(ctx)) {
		count(slot, C_FILTERED);
		return XDP_DROP;
	}
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct tf_meta)) == 0) {
		struct tf_meta *m = (void *)(long)ctx->data_meta;
		if ((void *)(m + 1) <= (void *)(long)ctx->data) {
			m->ts = bpf_ktime_get_ns();
			m->magic = TF_META_MAGIC;
		}
	}
	/* An empty XSKMAP slot (no socket on this queue) hands the packet to the stack. */
	action = bpf_redirect_map(&xsks_map, queue, XDP_PASS);
	count(slot, action == XDP_REDIRECT ? C_REDIRECTED : C_PASSED);
	return action;
}

char _license[] SEC("license") = "GPL";
