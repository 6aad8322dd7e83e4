//! Helper for the crash test: opens (or creates) a shard under DIR and writes batches
//! forever, printing `ACK <batch>` after each write returns. Batch b upserts points
//! b*10 .. b*10+9 (vector = `crash_vector(id)`, payload {"b": b}) and, for odd b, deletes the
//! points of batch b-1 with an odd offset. The parent SIGKILLs it at a random moment.
//!
//! Usage: crash-writer DIR FIRST_BATCH

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::json;
use vectron_engine::types::{PayloadIndexKind, PayloadIndexSpec, Tuning};
use vectron_engine::{Distance, Point, PointId, Shard, ShardConfig, ShardId, Storage, WriteOp};
use vectron_tests::{CRASH_DIM, crash_vector};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().context("DIR")?);
    let first: u64 = args.next().context("FIRST_BATCH")?.parse()?;
    let storage = Storage::open(&dir.join("db"), Default::default())?;
    let mut config = ShardConfig::new(CRASH_DIM, Distance::Euclid);
    config.payload_indexes = vec![PayloadIndexSpec { key: "b".into(), kind: PayloadIndexKind::Integer }];
    // Save the graph often so kills land in the middle of graph writes too.
    config.tuning = Tuning { persist_every_writes: 200, ..Tuning::default() };
    let shard = Shard::create(&storage, ShardId(3), config, &dir.join("graphs"))?;
    let stdout = std::io::stdout();
    for b in first.. {
        let points = (0..10)
            .map(|j| Point {
                id: PointId::Num(b * 10 + j),
                vector: crash_vector(b * 10 + j),
                payload: json!({"b": b}).as_object().map(vectron_engine::Payload::from_map),
            })
            .collect();
        // Log index = batch number * 2 (+1 for the delete), so replays are visible.
        shard.apply(b * 2 + 2, WriteOp::Upsert(points))?;
        if b % 2 == 1 {
            let gone = (0..10).filter(|j| j % 2 == 1).map(|j| PointId::Num((b - 1) * 10 + j)).collect();
            shard.apply(b * 2 + 3, WriteOp::Delete(gone))?;
        }
        let mut out = stdout.lock();
        writeln!(out, "ACK {b}")?;
        out.flush()?;
    }
    Ok(())
}
