//! Distance kernels. The index works with an internal distance where lower is closer:
//! `1 - a·b` for cosine (vectors are normalised on write), `-a·b` for dot, `|a-b|²` for
//! euclid. [`Distance::score`](crate::types::Distance::score) turns it into the score
//! clients see.
//!
//! PERF: the kernels are chosen once per index ([`Metric::new`]) by runtime CPU
//! detection: AVX-512 (64 floats per iteration) or AVX2+FMA (32), each with four
//! independent accumulators so the FMA latency is hidden, else portable code.

use crate::types::Distance;

type Kernel = fn(&[f32], &[f32]) -> f32;

/// A distance function bound to the best kernel for this CPU.
#[derive(Clone, Copy)]
pub struct Metric {
    distance: Distance,
    dot: Kernel,
    l2sq: Kernel,
}

impl std::fmt::Debug for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metric").field("distance", &self.distance).finish()
    }
}

impl Metric {
    pub fn new(distance: Distance) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Metric { distance, dot: x86::dot_avx512, l2sq: x86::l2sq_avx512 };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Metric { distance, dot: x86::dot_avx2, l2sq: x86::l2sq_avx2 };
            }
        }
        Metric { distance, dot: dot_scalar, l2sq: l2sq_scalar }
    }

    pub fn kind(&self) -> Distance {
        self.distance
    }

    /// Internal distance between `a` and `b` (same length); lower is closer.
    #[inline]
    pub fn distance(&self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        match self.distance {
            Distance::Cosine => 1.0 - (self.dot)(a, b),
            Distance::Dot => -(self.dot)(a, b),
            Distance::Euclid => (self.l2sq)(a, b),
        }
    }
}

pub use vectron_model::vector::{dot_scalar, normalize};

/// Portable squared euclidean distance.
pub fn l2sq_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for l in 0..8 {
            let d = a[i * 8 + l] - b[i * 8 + l];
            acc[l] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        let d = a[i] - b[i];
        s += d * d;
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! One kernel per instruction set, generic over what it sums: `L2 = false` sums
    //! `a·b`, `L2 = true` sums `(a-b)²` (the branch is resolved at compile time).
    use std::arch::x86_64::*;

    pub fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only installed by `Metric::new` after AVX2 and FMA were detected.
        unsafe { sum_avx2::<false>(a, b) }
    }

    pub fn l2sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { sum_avx2::<true>(a, b) }
    }

    pub fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: only installed by `Metric::new` after AVX-512F was detected.
        unsafe { sum_avx512::<false>(a, b) }
    }

    pub fn l2sq_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: as above.
        unsafe { sum_avx512::<true>(a, b) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn step_avx2<const L2: bool>(x: __m256, y: __m256, acc: __m256) -> __m256 {
        if L2 {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        } else {
            _mm256_fmadd_ps(x, y, acc)
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_avx2<const L2: bool>(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 32 <= n, resp. i + 8 <= n, bound every read.
        while i + 32 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let off = i + 8 * k;
                let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(off)), _mm256_loadu_ps(pb.add(off))) };
                *acc = step_avx2::<L2>(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
            acc[0] = step_avx2::<L2>(x, y, acc[0]);
            i += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let mut sum = _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
        for j in i..n {
            sum += if L2 { (a[j] - b[j]) * (a[j] - b[j]) } else { a[j] * b[j] };
        }
        sum
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn step_avx512<const L2: bool>(x: __m512, y: __m512, acc: __m512) -> __m512 {
        if L2 {
            let d = _mm512_sub_ps(x, y);
            _mm512_fmadd_ps(d, d, acc)
        } else {
            _mm512_fmadd_ps(x, y, acc)
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn sum_avx512<const L2: bool>(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): i + 64 <= n, resp. i + 16 <= n, bound every read; the
        // masked tail load reads only lanes below n.
        while i + 64 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let off = i + 16 * k;
                let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(off)), _mm512_loadu_ps(pb.add(off))) };
                *acc = step_avx512::<L2>(x, y, *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
            acc[0] = step_avx512::<L2>(x, y, acc[0]);
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
            let (x, y) = unsafe { (_mm512_maskz_loadu_ps(mask, pa.add(i)), _mm512_maskz_loadu_ps(mask, pb.add(i))) };
            acc[1] = step_avx512::<L2>(x, y, acc[1]);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    proptest! {
        #[test]
        fn kernels_match_naive(v in (0usize..300).prop_flat_map(|n| (
            proptest::collection::vec(-10f32..10.0, n),
            proptest::collection::vec(-10f32..10.0, n),
        ))) {
            let (a, b) = v;
            let tol = 1e-3 * (1.0 + a.len() as f64);
            let dot = Metric::new(Distance::Dot);
            prop_assert!((-dot.distance(&a, &b) as f64 - naive_dot(&a, &b)).abs() < tol);
            let l2 = Metric::new(Distance::Euclid);
            let want: f64 = a.iter().zip(&b).map(|(x, y)| ((*x - *y) as f64).powi(2)).sum();
            prop_assert!((l2.distance(&a, &b) as f64 - want).abs() < tol * 10.0);
            // Every kernel this CPU can run, not just the one `Metric::new` picks.
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    prop_assert!((x86::dot_avx2(&a, &b) as f64 - naive_dot(&a, &b)).abs() < tol);
                    prop_assert!((x86::l2sq_avx2(&a, &b) as f64 - want).abs() < tol * 10.0);
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    prop_assert!((x86::dot_avx512(&a, &b) as f64 - naive_dot(&a, &b)).abs() < tol);
                    prop_assert!((x86::l2sq_avx512(&a, &b) as f64 - want).abs() < tol * 10.0);
                }
            }
        }
    }

    #[test]
    fn cosine_of_normalised_vectors() {
        let mut a = vec![3.0, 4.0];
        let mut b = vec![4.0, 3.0];
        assert!(normalize(&mut a) && normalize(&mut b));
        let m = Metric::new(Distance::Cosine);
        let score = Distance::Cosine.score(m.distance(&a, &b));
        assert!((score - 0.96).abs() < 1e-6);
        assert!(!normalize(&mut [0.0, 0.0]));
    }
}
