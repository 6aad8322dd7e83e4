//! Which shard owns a point: `hash(id)` (xxh3 of the id's storage encoding) falls in
//! exactly one shard's `[range_start, range_end)` of the 64-bit hash space, where
//! `range_end == 0` stands for 2^64. Contiguous ranges let a shard be split later
//! without rehashing the others. The hash is part of the on-disk contract: changing it
//! strands every stored point on the wrong shard.

use vectron_engine::PointId;

/// The routing hash of a point id.
pub fn point_hash(id: &PointId) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&id.encode())
}

/// The ranges of `count` equal shards, in order (`end == 0` means 2^64).
pub fn split_ranges(count: u32) -> Vec<(u64, u64)> {
    let count = u128::from(count.max(1));
    let span = 1u128 << 64;
    (0..count)
        .map(|i| {
            let start = (span * i / count) as u64;
            let end = if i + 1 == count { 0 } else { (span * (i + 1) / count) as u64 };
            (start, end)
        })
        .collect()
}

/// Whether `hash` falls in `[start, end)` (`end == 0` means 2^64).
pub fn range_contains(start: u64, end: u64, hash: u64) -> bool {
    hash >= start && (end == 0 || hash < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_hash_space_exactly_once() {
        for count in [1, 2, 3, 4, 7, 64, 1024] {
            let ranges = split_ranges(count);
            assert_eq!(ranges.len(), count as usize);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().unwrap().1, 0);
            for w in ranges.windows(2) {
                assert_eq!(w[0].1, w[1].0, "contiguous");
                assert!(w[0].0 < w[0].1);
            }
            for h in [0, 1, u64::MAX / 3, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
                assert_eq!(ranges.iter().filter(|(s, e)| range_contains(*s, *e, h)).count(), 1, "hash {h}");
            }
        }
    }

    #[test]
    fn the_hash_is_stable() {
        // Stored data depends on these values never changing.
        assert_eq!(point_hash(&PointId::Num(1)), xxhash_rust::xxh3::xxh3_64(&[0, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert_ne!(point_hash(&PointId::Num(1)), point_hash(&PointId::Str("1".into())));
    }
}
