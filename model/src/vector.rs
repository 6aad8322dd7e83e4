//! Vector rules the edges and the engine share: the portable dot product, cosine's
//! normalisation, and the checks a point passes before any shard writes it (the
//! gateway refuses a batch whole with the same rules the shard applies).

use crate::error::{Result, ValidationError};
use crate::types::{Distance, Point, ShardConfig};

/// Portable dot product, also the reference the engine's SIMD kernels are tested
/// against.
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for l in 0..8 {
            acc[l] += a[i * 8 + l] * b[i * 8 + l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// The norm cosine divides by, if it can: `None` when it is zero or overflows.
fn direction_norm(v: &[f32]) -> Option<f32> {
    let norm = dot_scalar(v, v).sqrt();
    (norm != 0.0 && norm.is_finite()).then_some(norm)
}

/// Scales `v` to unit length in place. Returns false (leaving `v` alone) when its norm is
/// zero, which cosine cannot compare.
pub fn normalize(v: &mut [f32]) -> bool {
    let Some(norm) = direction_norm(v) else { return false };
    let inv = 1.0 / norm;
    v.iter_mut().for_each(|x| *x *= inv);
    true
}

/// Checks a vector against a collection: non-empty, its dimension, finite values, and
/// (cosine) a direction.
pub fn check_vector(config: &ShardConfig, v: &[f32]) -> Result<()> {
    if v.is_empty() {
        return Err(ValidationError::InvalidVector { reason: "vector is empty".into() });
    }
    if v.len() != config.dimension {
        return Err(ValidationError::DimensionMismatch { expected: config.dimension, got: v.len() });
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(ValidationError::InvalidVector { reason: format!("element {i} is {}", v[i]) });
    }
    if config.distance == Distance::Cosine && direction_norm(v).is_none() {
        return Err(ValidationError::InvalidVector { reason: "zero vector has no direction for cosine".into() });
    }
    Ok(())
}

/// Checks one point as its shard will (id, vector, payload size and depth).
pub fn check_point(config: &ShardConfig, p: &Point) -> Result<()> {
    p.id.validate()?;
    check_vector(config, &p.vector)?;
    if let Some(payload) = &p.payload {
        payload.check_limits(config.limits.max_payload_bytes, config.limits.max_payload_depth)?;
    }
    Ok(())
}
