//! Benchmark data: a seeded clustered synthetic set, or vectors loaded from .fvecs/.npy;
//! exact ground truth by brute force; and writers for .fvecs/.ivecs so other libraries
//! can run on the same data.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use vectron_engine::Distance;
use vectron_engine::distance::Metric;

/// Base vectors, queries, and the exact k nearest base ids of each query.
pub struct Dataset {
    pub dim: usize,
    pub base: Vec<Vec<f32>>,
    pub queries: Vec<Vec<f32>>,
}

impl Dataset {
    /// Gaussian clusters: `clusters` centres drawn from N(0, 1) per dimension, each point a
    /// centre plus N(0, 0.35²) noise (enough overlap that the graph must route between
    /// clusters). Queries are drawn the same way, independently of the base.
    pub fn clustered(n: usize, queries: usize, dim: usize, clusters: usize, seed: u64) -> Dataset {
        let mut rng = StdRng::seed_from_u64(seed);
        let unit = Normal::new(0.0f32, 1.0).expect("valid normal");
        let centres: Vec<Vec<f32>> =
            (0..clusters.max(1)).map(|_| (0..dim).map(|_| unit.sample(&mut rng)).collect()).collect();
        let draw = |count: usize, rng: &mut StdRng| -> Vec<Vec<f32>> {
            (0..count)
                .map(|_| {
                    let c = &centres[rng.random_range(0..centres.len())];
                    c.iter().map(|x| x + 0.35 * unit.sample(rng)).collect()
                })
                .collect()
        };
        let base = draw(n, &mut rng);
        let queries = draw(queries, &mut rng);
        Dataset { dim, base, queries }
    }

    /// Loads base and query vectors from .fvecs or .npy files.
    pub fn load(base: &Path, queries: &Path) -> Result<Dataset> {
        let base = read_vectors(base)?;
        let queries = read_vectors(queries)?;
        let dim = base.first().map(Vec::len).context("base file holds no vectors")?;
        if base.iter().chain(&queries).any(|v| v.len() != dim) {
            bail!("vectors of different dimensions");
        }
        Ok(Dataset { dim, base, queries })
    }

    /// Normalises every vector (cosine is run on unit vectors).
    pub fn normalise(&mut self) {
        for v in self.base.iter_mut().chain(self.queries.iter_mut()) {
            vectron_engine::distance::normalize(v);
        }
    }

    /// Exact k nearest base ids per query, restricted to `allowed` when given.
    pub fn ground_truth(
        &self,
        distance: Distance,
        k: usize,
        allowed: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> Vec<Vec<u32>> {
        let metric = Metric::new(distance);
        self.queries
            .par_iter()
            .map(|q| {
                let mut all: Vec<(f32, u32)> = self
                    .base
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| allowed.is_none_or(|f| f(*i)))
                    .map(|(i, v)| (metric.distance(q, v), i as u32))
                    .collect();
                let k = k.min(all.len());
                if k > 0 {
                    all.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
                }
                all.truncate(k);
                all.sort_by(|a, b| a.0.total_cmp(&b.0));
                all.into_iter().map(|x| x.1).collect()
            })
            .collect()
    }

    /// Writes `base.fvecs`, `query.fvecs` and `groundtruth.ivecs` into `dir`.
    pub fn save(&self, dir: &Path, truth: &[Vec<u32>]) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        write_fvecs(&dir.join("base.fvecs"), &self.base)?;
        write_fvecs(&dir.join("query.fvecs"), &self.queries)?;
        let mut w = BufWriter::new(File::create(dir.join("groundtruth.ivecs"))?);
        for row in truth {
            w.write_all(&(row.len() as i32).to_le_bytes())?;
            for id in row {
                w.write_all(&(*id as i32).to_le_bytes())?;
            }
        }
        w.flush()?;
        Ok(())
    }
}

fn write_fvecs(path: &Path, vectors: &[Vec<f32>]) -> Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    for v in vectors {
        w.write_all(&(v.len() as i32).to_le_bytes())?;
        for x in v {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Reads .fvecs (`[i32 dim][f32; dim]` records) or .npy (2-D little-endian float32).
pub fn read_vectors(path: &Path) -> Result<Vec<Vec<f32>>> {
    let mut bytes = Vec::new();
    BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?).read_to_end(&mut bytes)?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => parse_npy(&bytes).with_context(|| format!("parsing {}", path.display())),
        _ => parse_fvecs(&bytes).with_context(|| format!("parsing {}", path.display())),
    }
}

fn parse_fvecs(bytes: &[u8]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 4 {
            bail!("truncated record header");
        }
        let dim = i32::from_le_bytes(rest[..4].try_into()?);
        if dim <= 0 || rest.len() < 4 + dim as usize * 4 {
            bail!("bad or truncated record (dim {dim})");
        }
        let body = &rest[4..4 + dim as usize * 4];
        out.push(body.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect());
        rest = &rest[4 + dim as usize * 4..];
    }
    Ok(out)
}

fn parse_npy(bytes: &[u8]) -> Result<Vec<Vec<f32>>> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("not an .npy file");
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => (u32::from_le_bytes(bytes[8..12].try_into()?) as usize, 12),
        v => bail!("unsupported .npy version {v}"),
    };
    let header = std::str::from_utf8(bytes.get(start..start + header_len).context("truncated header")?)?;
    if !header.contains("'descr': '<f4'") {
        bail!("only little-endian float32 arrays are supported (header: {header})");
    }
    if header.contains("'fortran_order': True") {
        bail!("Fortran-ordered arrays are not supported");
    }
    let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).context("no shape")?;
    let dims: Vec<usize> =
        shape.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else { bail!("expected a 2-D array, got shape ({shape})") };
    let data = &bytes[start + header_len..];
    if data.len() != rows * cols * 4 {
        bail!("data is {} bytes, shape needs {}", data.len(), rows * cols * 4);
    }
    Ok(data
        .chunks_exact(cols * 4)
        .map(|row| row.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fvecs_and_npy_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let vs = vec![vec![1.0, 2.0, 3.0], vec![-1.0, 0.5, 9.0]];
        write_fvecs(&dir.path().join("a.fvecs"), &vs).unwrap();
        assert_eq!(read_vectors(&dir.path().join("a.fvecs")).unwrap(), vs);

        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
        npy.extend_from_slice(header.as_bytes());
        vs.iter().flatten().for_each(|x| npy.extend_from_slice(&x.to_le_bytes()));
        std::fs::write(dir.path().join("a.npy"), npy).unwrap();
        assert_eq!(read_vectors(&dir.path().join("a.npy")).unwrap(), vs);
        assert!(parse_fvecs(&[3, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn ground_truth_is_sorted_nearest_first() {
        let d = Dataset::clustered(500, 5, 8, 4, 1);
        let gt = d.ground_truth(Distance::Euclid, 10, None);
        let m = Metric::new(Distance::Euclid);
        for (q, row) in d.queries.iter().zip(&gt) {
            let dists: Vec<f32> = row.iter().map(|&i| m.distance(q, &d.base[i as usize])).collect();
            assert!(dists.windows(2).all(|w| w[0] <= w[1]));
            let kth = *dists.last().unwrap();
            let closer = d.base.iter().filter(|v| m.distance(q, v) < kth).count();
            assert!(closer < 10);
        }
    }
}
