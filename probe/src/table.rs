//! Fixed-capacity flow table: an open-addressing index of `u64` entries over a slab of flows,
//! and an intrusive timer wheel.
//!
//! * Index: linear probing, at most 50 % full (2 buckets per flow), each entry packs the upper
//!   32 bits of the key hash (the tag, which also gives the home bucket) and the slab slot.
//!   Deletion is backward-shift, so there are no tombstones to degrade probing under churn.
//! * Slab: `Vec<T>` reserved once at the configured capacity and filled on demand, so memory is
//!   touched only for flows that exist; a free list recycles slots. Nothing reallocates.
//! * Wheel: each live flow sits in exactly one wheel slot, linked through `prev`/`next` slot
//!   numbers stored in the flow itself (no allocation, O(1) unlink). Expiry is lazy: a flow is
//!   scheduled once and re-checked when its slot comes round, never touched per packet.

pub const NIL: u32 = u32::MAX;

/// What the table needs from a flow entry.
pub trait Entry: Default {
    type Key: Eq;
    fn key(&self) -> &Self::Key;
    fn links(&mut self) -> &mut Links;
    fn links_ref(&self) -> &Links;
}

/// Wheel links embedded in each flow.
#[derive(Clone, Copy, Debug)]
pub struct Links {
    pub prev: u32,
    pub next: u32,
    /// Wheel slot the flow is linked into, NIL when not linked.
    pub slot: u32,
    /// Hash tag (upper 32 bits of the key hash), kept to find the index entry on removal.
    pub tag: u32,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            prev: NIL,
            next: NIL,
            slot: NIL,
            tag: 0,
        }
    }
}

pub enum Lookup {
    Found(u32),
    /// Not present; a free slot exists and was allocated and indexed.
    Inserted(u32),
    /// Not present and the slab is full.
    Full,
}

pub struct Table<T: Entry> {
    index: Vec<u64>,
    mask: usize,
    slab: Vec<T>,
    free: Vec<u32>,
    capacity: usize,
    live: usize,
    wheel: Vec<u32>,
    wheel_mask: usize,
}

#[inline]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl<T: Entry> Table<T> {
    pub fn new(capacity: usize, wheel_slots: usize) -> Table<T> {
        let capacity = capacity.clamp(1, (u32::MAX / 2) as usize);
        let buckets = (capacity * 2).next_power_of_two();
        let wheel_slots = wheel_slots.max(2).next_power_of_two();
        Table {
            index: vec![0; buckets],
            mask: buckets - 1,
            slab: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity.min(1 << 20)),
            capacity,
            live: 0,
            wheel: vec![NIL; wheel_slots],
            wheel_mask: wheel_slots - 1,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn len(&self) -> usize {
        self.live
    }
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    pub fn wheel_len(&self) -> usize {
        self.wheel.len()
    }

    /// Bytes of memory the table holds for `n` flows (index + slab), for reports.
    pub fn bytes_per_flow() -> usize {
        std::mem::size_of::<T>() + 2 * std::mem::size_of::<u64>()
    }

    #[inline]
    pub fn get(&self, i: u32) -> &T {
        &self.slab[i as usize]
    }
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut T {
        &mut self.slab[i as usize]
    }

    /// Hints the CPU to fetch the index bucket of `hash` (first stage of a batch).
    #[inline]
    pub fn prefetch_bucket(&self, hash: u64) {
        let b = tag_of(hash) as usize & self.mask;
        prefetch(&self.index[b]);
    }

    /// Hints the CPU to fetch the flow that `hash` most likely maps to (second stage).
    #[inline]
    pub fn prefetch_flow(&self, hash: u64) {
        let tag = tag_of(hash);
        let e = self.index[tag as usize & self.mask];
        if e != 0 && (e >> 32) as u32 == tag {
            let s = (e as u32 - 1) as usize;
            if s < self.slab.len() {
                prefetch(&self.slab[s]);
            }
        }
    }

    /// Finds `key`; if absent and there is room, allocates a slot (initialised by `init`) and
    /// indexes it.
    #[inline]
    pub fn lookup_or_insert(
        &mut self,
        hash: u64,
        key: &T::Key,
        init: impl FnOnce() -> T,
    ) -> Lookup {
        let tag = tag_of(hash);
        let mut b = tag as usize & self.mask;
        loop {
            let e = self.index[b];
            if e == 0 {
                break;
            }
            if (e >> 32) as u32 == tag {
                let s = e as u32 - 1;
                if self.slab[s as usize].key() == key {
                    return Lookup::Found(s);
                }
            }
            b = (b + 1) & self.mask;
        }
        let Some(s) = self.alloc(init) else {
            return Lookup::Full;
        };
        self.index[b] = (tag as u64) << 32 | (s as u64 + 1);
        self.slab[s as usize].links().tag = tag;
        Lookup::Inserted(s)
    }

    fn alloc(&mut self, init: impl FnOnce() -> T) -> Option<u32> {
        let s = if let Some(s) = self.free.pop() {
            self.slab[s as usize] = init();
            s
        } else if self.slab.len() < self.capacity {
            self.slab.push(init());
            (self.slab.len() - 1) as u32
        } else {
            return None;
        };
        self.live += 1;
        Some(s)
    }

    /// Slots indexed near the home bucket of `hash`: candidates for eviction that are cheap to
    /// reach (their index entries are already in cache).
    pub fn neighbours(&self, hash: u64, out: &mut [u32]) -> usize {
        let mut b = tag_of(hash) as usize & self.mask;
        let mut n = 0;
        let mut scanned = 0;
        while n < out.len() && scanned <= self.mask {
            let e = self.index[b];
            if e != 0 {
                out[n] = e as u32 - 1;
                n += 1;
            }
            b = (b + 1) & self.mask;
            scanned += 1;
        }
        n
    }

    /// Removes flow `s` from the index and the wheel and frees its slot.
    pub fn remove(&mut self, s: u32) {
        self.unlink(s);
        let tag = self.slab[s as usize].links_ref().tag;
        let want = (tag as u64) << 32 | (s as u64 + 1);
        let mut b = tag as usize & self.mask;
        // The entry is on the probe path from its home bucket; find it.
        let mut steps = 0;
        while self.index[b] != want {
            b = (b + 1) & self.mask;
            steps += 1;
            if steps > self.mask {
                debug_assert!(false, "flow {s} not in index");
                return;
            }
        }
        // Backward-shift deletion (Knuth 6.4 algorithm R).
        let mut hole = b;
        let mut j = b;
        loop {
            j = (j + 1) & self.mask;
            let e = self.index[j];
            if e == 0 {
                break;
            }
            let home = (e >> 32) as usize & self.mask;
            // Move e into the hole if its home is not cyclically in (hole, j].
            let in_range = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !in_range {
                self.index[hole] = e;
                hole = j;
            }
        }
        self.index[hole] = 0;
        self.free.push(s);
        self.live -= 1;
    }

    /// Links flow `s` into the wheel slot for `tick`.
    pub fn schedule(&mut self, s: u32, tick: u64) {
        self.unlink(s);
        let w = (tick as usize) & self.wheel_mask;
        let head = self.wheel[w];
        {
            let l = self.slab[s as usize].links();
            l.prev = NIL;
            l.next = head;
            l.slot = w as u32;
        }
        if head != NIL {
            self.slab[head as usize].links().prev = s;
        }
        self.wheel[w] = s;
    }

    fn unlink(&mut self, s: u32) {
        let l = *self.slab[s as usize].links_ref();
        if l.slot == NIL {
            return;
        }
        if l.prev != NIL {
            self.slab[l.prev as usize].links().next = l.next;
        } else {
            self.wheel[l.slot as usize] = l.next;
        }
        if l.next != NIL {
            self.slab[l.next as usize].links().prev = l.prev;
        }
        let m = self.slab[s as usize].links();
        m.prev = NIL;
        m.next = NIL;
        m.slot = NIL;
    }

    /// Detaches the whole list of the wheel slot for `tick` and returns its head; walk it with
    /// [`Table::detached_next`]. Flows re-scheduled while walking go into fresh lists.
    pub fn take_slot(&mut self, tick: u64) -> u32 {
        let w = (tick as usize) & self.wheel_mask;
        let head = self.wheel[w];
        self.wheel[w] = NIL;
        head
    }

    /// Next flow of a detached list, unlinking `s` from it.
    pub fn detached_next(&mut self, s: u32) -> u32 {
        let l = self.slab[s as usize].links();
        let next = l.next;
        l.prev = NIL;
        l.next = NIL;
        l.slot = NIL;
        if next != NIL {
            self.slab[next as usize].links().prev = NIL;
        }
        next
    }

    /// All live slots (for the final flush), in slab order.
    pub fn live_slots(&self) -> Vec<u32> {
        let mut free = vec![false; self.slab.len()];
        for &f in &self.free {
            free[f as usize] = true;
        }
        (0..self.slab.len() as u32)
            .filter(|&s| !free[s as usize])
            .collect()
    }
}

#[inline(always)]
fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults and reads no memory architecturally.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::x86_64::_mm_prefetch(
            p as *const T as *const i8,
            core::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct E {
        k: u64,
        l: Links,
    }
    impl Entry for E {
        type Key = u64;
        fn key(&self) -> &u64 {
            &self.k
        }
        fn links(&mut self) -> &mut Links {
            &mut self.l
        }
        fn links_ref(&self) -> &Links {
            &self.l
        }
    }

    // A deliberately weak hash so that keys collide in the index and exercise probing.
    fn h(k: u64) -> u64 {
        (k % 7) << 32 | k
    }

    #[test]
    fn insert_find_remove_with_collisions() {
        let mut t: Table<E> = Table::new(64, 8);
        for k in 0..64u64 {
            match t.lookup_or_insert(h(k), &k, || E {
                k,
                ..Default::default()
            }) {
                Lookup::Inserted(_) => {}
                _ => panic!("insert {k}"),
            }
        }
        assert!(matches!(
            t.lookup_or_insert(h(99), &99, E::default),
            Lookup::Full
        ));
        // Remove every third key; the rest must still be found (backward shift kept chains).
        for k in (0..64u64).step_by(3) {
            let Lookup::Found(s) = t.lookup_or_insert(h(k), &k, E::default) else {
                panic!("find {k}")
            };
            t.remove(s);
        }
        for k in 0..64u64 {
            let found = matches!(t.lookup_or_insert(h(k), &k, E::default), Lookup::Found(_));
            if k % 3 == 0 {
                // Re-inserted now (a slot was free).
                assert!(!found, "{k} should have been removed");
            } else {
                assert!(found, "{k} lost after removals");
            }
        }
        assert_eq!(t.len(), 64);
    }

    #[test]
    fn wheel_schedule_take_and_unlink() {
        let mut t: Table<E> = Table::new(16, 4);
        let mut slots = vec![];
        for k in 0..6u64 {
            let Lookup::Inserted(s) = t.lookup_or_insert(h(k), &k, || E {
                k,
                ..Default::default()
            }) else {
                panic!()
            };
            t.schedule(s, k % 2);
            slots.push(s);
        }
        // Removing a flow unlinks it from its wheel list.
        t.remove(slots[2]);
        let mut seen = vec![];
        let mut s = t.take_slot(0);
        while s != NIL {
            seen.push(t.get(s).k);
            s = t.detached_next(s);
        }
        seen.sort();
        assert_eq!(seen, vec![0, 4]);
        assert_eq!(t.take_slot(4), NIL, "slot 0 was detached");
        // Tick 5 maps to slot 1 of 4: flows 1, 3, 5.
        let mut n = 0;
        let mut s = t.take_slot(5);
        while s != NIL {
            n += 1;
            s = t.detached_next(s);
        }
        assert_eq!(n, 3);
    }
}
