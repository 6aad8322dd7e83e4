//! Reusable visited sets for graph searches.
//!
//! PERF: a search marks nodes with the current generation tag instead of clearing a
//! bitmap; a set is reset by bumping the tag, and only zeroed when the 16-bit tag wraps.
//! Sets are pooled so a search allocates nothing.

use parking_lot::Mutex;

/// Marks which node ids a search has already seen.
#[derive(Debug, Default)]
pub struct VisitedSet {
    tags: Vec<u16>,
    current: u16,
}

impl VisitedSet {
    /// Forgets every mark and makes room for ids below `capacity`.
    fn reset(&mut self, capacity: usize) {
        if self.tags.len() < capacity {
            self.tags.resize(capacity, 0);
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.tags.fill(0);
            self.current = 1;
        }
    }

    /// Marks `id`; returns true if it was not marked before.
    #[inline]
    pub fn insert(&mut self, id: u32) -> bool {
        let tag = &mut self.tags[id as usize];
        if *tag == self.current {
            false
        } else {
            *tag = self.current;
            true
        }
    }

    /// Address of `id`'s mark, for prefetching.
    #[inline]
    pub fn slot_ptr(&self, id: u32) -> *const u16 {
        self.tags.as_ptr().wrapping_add(id as usize)
    }
}

/// A pool of visited sets shared by an index's searches.
#[derive(Debug, Default)]
pub struct VisitedPool {
    free: Mutex<Vec<VisitedSet>>,
}

impl VisitedPool {
    /// Takes a cleared set able to hold ids below `capacity`.
    pub fn get(&self, capacity: usize) -> VisitedSet {
        let mut set = self.free.lock().pop().unwrap_or_default();
        set.reset(capacity);
        set
    }

    /// Returns a set to the pool.
    pub fn put(&self, set: VisitedSet) {
        self.free.lock().push(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_forgotten_on_reset_even_across_wraparound() {
        let pool = VisitedPool::default();
        let mut set = pool.get(10);
        for round in 0..70_000u32 {
            let id = round % 10;
            assert!(set.insert(id), "round {round}: fresh set must accept {id}");
            assert!(!set.insert(id));
            pool.put(set);
            set = pool.get(10);
        }
    }
}
