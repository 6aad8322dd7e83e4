//! Kills a writing process with SIGKILL at random moments and checks, after reopening
//! the shard, that every acknowledged write is there (and every acknowledged delete
//! gone), that batches are atomic, and that search finds every stored point.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use vectron_engine::{PointId, SearchQuery, Shard, ShardId, Storage};
use vectron_tests::crash_vector;

/// Whether point `id` must exist once batches up to `acked` are acknowledged (and
/// must not, if its delete was acknowledged).
fn must_exist(id: u64, acked: u64) -> Option<bool> {
    let (b, j) = (id / 10, id % 10);
    if b > acked {
        return None; // not acknowledged: may or may not be there
    }
    // Odd offsets of an even batch are deleted by the next batch.
    if j % 2 == 1 && b % 2 == 0 {
        if b < acked {
            return Some(false);
        }
        return None; // its delete is in the unacknowledged batch
    }
    Some(true)
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut acked: Option<u64> = None;
    for round in 0..6 {
        let first = acked.map_or(0, |a| a + 1);
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .arg(dir.path())
            .arg(first.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn crash-writer");
        let stdout = child.stdout.take().unwrap();
        let kill_after = Duration::from_millis(rng.random_range(200..1500));
        let start = Instant::now();
        let mut lines = BufReader::new(stdout).lines();
        while start.elapsed() < kill_after {
            match lines.next() {
                Some(Ok(line)) => acked = Some(line.strip_prefix("ACK ").unwrap().parse().unwrap()),
                _ => panic!("crash-writer stopped on its own in round {round}"),
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements already printed before the kill still count.
        for line in lines.map_while(Result::ok) {
            acked = Some(line.strip_prefix("ACK ").unwrap().parse().unwrap());
        }
        let acked = acked.expect("at least one batch acknowledged");
        verify(dir.path(), acked, round);
    }
    assert!(acked.unwrap() > 20, "the writer made too little progress to test anything");
}

fn verify(dir: &std::path::Path, acked: u64, round: usize) {
    let storage = Storage::open(&dir.join("db"), Default::default()).unwrap();
    let shard = Shard::open(&storage, ShardId(3), &dir.join("graphs")).unwrap();
    let ids: Vec<PointId> = (0..(acked + 2) * 10).map(PointId::Num).collect();
    let found = shard.get(&ids, true, true).unwrap();
    let present: std::collections::HashMap<u64, _> =
        found.into_iter().map(|r| (if let PointId::Num(n) = r.id { n } else { unreachable!() }, r)).collect();
    for id in 0..(acked + 2) * 10 {
        match (must_exist(id, acked), present.get(&id)) {
            (Some(true), None) => panic!("round {round}: acknowledged point {id} lost (acked up to batch {acked})"),
            (Some(false), Some(_)) => panic!("round {round}: point {id} back after an acknowledged delete"),
            (_, Some(r)) => {
                assert_eq!(r.vector.as_deref(), Some(&crash_vector(id)[..]), "round {round}: point {id} vector");
                assert_eq!(r.payload.as_ref().unwrap()["b"], serde_json::json!(id / 10));
            }
            _ => {}
        }
    }
    // The unacknowledged batch is all-or-nothing for its upserts.
    let partial = (0..10).filter(|j| present.contains_key(&((acked + 1) * 10 + j))).count();
    assert!(partial == 0 || partial == 10, "round {round}: batch {} half applied ({partial}/10)", acked + 1);
    // Every stored point is reachable by search, and counts agree with the index.
    assert_eq!(shard.count(None).unwrap() as usize, present.len());
    for (id, r) in &present {
        let mut req = SearchQuery::new(r.vector.clone().unwrap(), 1);
        req.ef = Some(256);
        let hits = shard.search(&req).unwrap();
        assert_eq!(hits[0].id, PointId::Num(*id), "round {round}: point {id} not found by its own vector");
    }
    let c = shard.graph_connectivity();
    assert_eq!((c.orphans, c.unreachable), (0, 0), "round {round}: graph not connected after reopen");
    let f =
        vectron_engine::Filter::from_json(&serde_json::json!({"must": [{"key": "b", "match": {"value": 0}}]})).unwrap();
    if acked >= 1 {
        assert_eq!(shard.count(Some(&f)).unwrap(), 5, "round {round}: indexed count of batch 0");
    }
}
