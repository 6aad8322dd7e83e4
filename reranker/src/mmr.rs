//! Maximal marginal relevance (Carbonell & Goldstein, 1998): picks candidates one at a
//! time, each maximising `λ · relevance − (1 − λ) · max similarity to those already
//! picked`, so a result list covers more than one near-duplicate cluster. `λ = 1` keeps
//! the relevance order; `λ = 0` only spreads.
//!
//! Relevance is the candidates' vector score normalised to [0, 1] over the set (so λ
//! weighs comparable quantities whatever the distance); similarity is the cosine of their
//! vectors. Each pick updates every remaining candidate's largest similarity once:
//! O(n · k) similarities for k picks of n, not O(n · k²).

/// The first `k` picks, as indexes into the candidates, best first, with each pick's
/// marginal score. `relevance[i]` is candidate `i`'s score (higher is better) and
/// `vectors[i]` its vector.
pub fn select(relevance: &[f32], vectors: &[&[f32]], lambda: f32, k: usize) -> Vec<(usize, f32)> {
    let n = relevance.len().min(vectors.len());
    let relevance = normalised(&relevance[..n]);
    let norms: Vec<f32> = vectors[..n].iter().map(|v| dot(v, v).sqrt()).collect();
    let mut closest = vec![f32::NEG_INFINITY; n];
    let mut picked = vec![false; n];
    let mut out = Vec::with_capacity(k.min(n));
    while out.len() < k.min(n) {
        let marginal = |i: usize| {
            let penalty = if out.is_empty() { 0.0 } else { closest[i] };
            lambda * relevance[i] - (1.0 - lambda) * penalty
        };
        let Some(best) = (0..n).filter(|&i| !picked[i]).max_by(|&a, &b| {
            marginal(a).total_cmp(&marginal(b)).then(b.cmp(&a)) // ties: the earlier candidate
        }) else {
            break;
        };
        out.push((best, marginal(best)));
        picked[best] = true;
        for i in (0..n).filter(|&i| !picked[i]) {
            closest[i] = closest[i].max(cosine(vectors[i], vectors[best], norms[i], norms[best]));
        }
    }
    out
}

/// Scores scaled to [0, 1] (all equal: all 1).
fn normalised(scores: &[f32]) -> Vec<f32> {
    let (lo, hi) = scores.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    // All equal (or none, or a NaN among them): nothing to tell them apart by.
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![1.0; scores.len()];
    }
    scores.iter().map(|s| (s - lo) / (hi - lo)).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Cosine similarity; 0 against a zero vector.
fn cosine(a: &[f32], b: &[f32], norm_a: f32, norm_b: f32) -> f32 {
    if norm_a == 0.0 || norm_b == 0.0 {
        return 0.0;
    }
    dot(a, b) / (norm_a * norm_b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, recomputing every similarity to every pick at every step.
    fn brute_force(relevance: &[f32], vectors: &[Vec<f32>], lambda: f32, k: usize) -> Vec<usize> {
        let relevance = normalised(relevance);
        let mut picked: Vec<usize> = Vec::new();
        while picked.len() < k.min(relevance.len()) {
            let score = |i: usize| {
                let penalty = picked
                    .iter()
                    .map(|&j| {
                        let (a, b) = (&vectors[i], &vectors[j]);
                        cosine(a, b, dot(a, a).sqrt(), dot(b, b).sqrt())
                    })
                    .fold(f32::NEG_INFINITY, f32::max);
                lambda * relevance[i] - (1.0 - lambda) * if picked.is_empty() { 0.0 } else { penalty }
            };
            let best = (0..relevance.len())
                .filter(|i| !picked.contains(i))
                .max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a)))
                .unwrap();
            picked.push(best);
        }
        picked
    }

    proptest! {
        #[test]
        fn incremental_selection_is_the_greedy_definition(
            candidates in prop::collection::vec((-1.0f32..1.0, prop::collection::vec(-1.0f32..1.0, 3)), 1..20),
            lambda in 0.0f32..=1.0,
            k in 1usize..25,
        ) {
            let relevance: Vec<f32> = candidates.iter().map(|c| c.0).collect();
            let vectors: Vec<Vec<f32>> = candidates.iter().map(|c| c.1.clone()).collect();
            let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
            let got: Vec<usize> = select(&relevance, &refs, lambda, k).into_iter().map(|(i, _)| i).collect();
            prop_assert_eq!(got, brute_force(&relevance, &vectors, lambda, k));
        }
    }

    #[test]
    fn lambda_one_keeps_the_vector_order_and_lower_lambdas_spread() {
        // Two near-duplicates at the top, a different one third.
        let relevance = [0.9, 0.89, 0.5];
        let (a, a2, b) = ([1.0, 0.0], [0.99, 0.01], [0.0, 1.0]);
        let vectors: Vec<&[f32]> = vec![&a, &a2, &b];
        let order = |lambda| select(&relevance, &vectors, lambda, 3).into_iter().map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(order(1.0), vec![0, 1, 2]);
        assert_eq!(order(0.5), vec![0, 2, 1], "the duplicate is pushed below the different one");
    }
}
