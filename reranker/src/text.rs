//! Text scoring over a candidate set: a tokenizer and Okapi BM25 with the candidates as
//! the corpus (document frequencies and the average length are the candidates'), as a
//! reranker sees them: it has the few hundred documents a search returned, not an index.

use std::collections::HashMap;
use std::hash::Hash;

/// BM25's term-frequency saturation.
pub const K1: f32 = 1.2;
/// BM25's length normalisation.
pub const B: f32 = 0.75;

/// Lower-cased alphanumeric runs (Unicode-aware): `"Fast, cheap-ish DBs!"` →
/// `["fast", "cheap", "ish", "dbs"]`.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// Turns texts into token ids over one vocabulary (a query and its candidates), so
/// each distinct token is allocated once: [`Tokenizer::ids`] is [`tokens`] with each
/// token numbered by first appearance.
#[derive(Debug, Default)]
pub struct Tokenizer {
    vocabulary: HashMap<String, u32>,
    token: String,
}

impl Tokenizer {
    pub fn ids(&mut self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for run in text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()) {
            self.token.clear();
            if run.is_ascii() {
                self.token.extend(run.chars().map(|c| c.to_ascii_lowercase()));
            } else {
                self.token.push_str(&run.to_lowercase());
            }
            let id = match self.vocabulary.get(self.token.as_str()) {
                Some(&id) => id,
                None => {
                    let id = self.vocabulary.len() as u32;
                    self.vocabulary.insert(self.token.clone(), id);
                    id
                }
            };
            out.push(id);
        }
        out
    }
}

/// BM25 of one query over a fixed set of documents of tokens `T` (strings, or ids from
/// a [`Tokenizer`]).
#[derive(Debug, Clone)]
pub struct Bm25<T = String> {
    /// Per document: term → count.
    counts: Vec<HashMap<T, u32>>,
    lengths: Vec<usize>,
    average_length: f32,
    /// Term → documents containing it.
    document_frequency: HashMap<T, usize>,
}

impl<T: Hash + Eq + Clone> Bm25<T> {
    /// Indexes `documents` (already tokenized).
    pub fn new(documents: &[Vec<T>]) -> Bm25<T> {
        let mut document_frequency: HashMap<T, usize> = HashMap::new();
        let counts: Vec<HashMap<T, u32>> = documents
            .iter()
            .map(|d| {
                let mut c: HashMap<T, u32> = HashMap::new();
                for t in d {
                    *c.entry(t.clone()).or_default() += 1;
                }
                for t in c.keys() {
                    *document_frequency.entry(t.clone()).or_default() += 1;
                }
                c
            })
            .collect();
        let lengths: Vec<usize> = documents.iter().map(Vec::len).collect();
        let total: usize = lengths.iter().sum();
        let average_length = if documents.is_empty() { 0.0 } else { total as f32 / documents.len() as f32 };
        Bm25 { counts, lengths, average_length, document_frequency }
    }

    /// Inverse document frequency, the non-negative form (Lucene's):
    /// `ln(1 + (N − n + 0.5) / (n + 0.5))`.
    fn idf(&self, term: &T) -> f32 {
        let n = self.document_frequency.get(term).copied().unwrap_or(0) as f32;
        let total = self.counts.len() as f32;
        (1.0 + (total - n + 0.5) / (n + 0.5)).ln()
    }

    /// The score of document `doc` for `query` (tokenized; a repeated query term counts
    /// each time).
    pub fn score(&self, doc: usize, query: &[T]) -> f32 {
        let counts = &self.counts[doc];
        let norm = if self.average_length > 0.0 { self.lengths[doc] as f32 / self.average_length } else { 0.0 };
        query
            .iter()
            .map(|t| {
                let f = counts.get(t).copied().unwrap_or(0) as f32;
                if f == 0.0 {
                    return 0.0;
                }
                self.idf(t) * f * (K1 + 1.0) / (f + K1 * (1.0 - B + B * norm))
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_are_lowercased_alphanumeric_runs() {
        assert_eq!(tokens("Fast, cheap-ish DBs!"), vec!["fast", "cheap", "ish", "dbs"]);
        assert_eq!(tokens("Größe 42"), vec!["größe", "42"]);
        assert!(tokens(" -- ").is_empty());
        // Ids: the same tokens, numbered by first appearance.
        let mut t = Tokenizer::default();
        assert_eq!(t.ids("Fast, cheap-ish FAST Größe"), vec![0, 1, 2, 0, 3]);
        assert_eq!(t.ids("größe fast new"), vec![3, 0, 4]);
    }

    /// The textbook formula, computed from scratch for one document.
    fn naive(documents: &[Vec<String>], doc: usize, query: &[String]) -> f32 {
        let n_docs = documents.len() as f32;
        let avg = documents.iter().map(Vec::len).sum::<usize>() as f32 / n_docs;
        let mut score = 0.0;
        for q in query {
            let n = documents.iter().filter(|d| d.contains(q)).count() as f32;
            let idf = (1.0 + (n_docs - n + 0.5) / (n + 0.5)).ln();
            let f = documents[doc].iter().filter(|t| *t == q).count() as f32;
            if f == 0.0 {
                continue; // the term adds nothing (and with only empty documents avg is 0)
            }
            score += idf * f * (K1 + 1.0) / (f + K1 * (1.0 - B + B * documents[doc].len() as f32 / avg));
        }
        score
    }

    proptest! {
        #[test]
        fn bm25_matches_the_formula(
            documents in prop::collection::vec(prop::collection::vec("[a-e]", 0..12), 1..8),
            query in prop::collection::vec("[a-f]", 1..4),
        ) {
            let index = Bm25::new(&documents);
            // Over token ids, the same scores.
            let mut t = Tokenizer::default();
            let ids: Vec<Vec<u32>> = documents.iter().map(|d| t.ids(&d.join(" "))).collect();
            let query_ids = t.ids(&query.join(" "));
            let by_id = Bm25::new(&ids);
            for doc in 0..documents.len() {
                let (got, want) = (index.score(doc, &query), naive(&documents, doc, &query));
                prop_assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{got} vs {want}");
                prop_assert!((by_id.score(doc, &query_ids) - got).abs() <= 1e-5 * got.abs().max(1.0));
            }
        }
    }

    #[test]
    fn rarer_terms_and_shorter_documents_score_higher() {
        let docs: Vec<Vec<String>> =
            ["rust vector database", "rust rust rust web framework for everything", "python data"]
                .iter()
                .map(|d| tokens(d))
                .collect();
        let index = Bm25::new(&docs);
        let q = tokens("rust database");
        assert!(index.score(0, &q) > index.score(1, &q), "a rare term and a short document win");
        assert_eq!(index.score(2, &q), 0.0);
    }
}
