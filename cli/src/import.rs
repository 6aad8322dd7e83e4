//! `vectron import COLLECTION FILE`: a file's points ([`crate::sources`]) upserted in
//! batches, several in flight, with a progress bar (points, rate, ETA) on stderr and a
//! summary at the end.
//!
//! Resumable: every acknowledged batch is recorded (at most every quarter second, and
//! when the import stops) in a small state file — by default under
//! `$XDG_STATE_HOME/vectron/imports/` (`~/.local/state/…`), named after the collection,
//! the file and the gateway. `--resume` skips the batches it lists, as long as the file,
//! gateway, collection (name, dimension, distance, shards), batch size and field choices
//! are the ones it was made for. A batch may have been applied without its
//! acknowledgement being recorded (a kill at the wrong moment): it is sent again, which
//! is harmless — upserts replace points by id. Batches in flight together land in any
//! order, so of an id the file names twice either record may be kept (with
//! `--parallel 1`, the last one, unless a resumed import re-sends an earlier batch it
//! was not sure of). A finished import
//! removes its state file; Ctrl-C stops sending, records what was acknowledged and
//! exits 130.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use clap::Args;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use vectron_sdk::Point;

use crate::output::{Format, Table, emit, progress};
use crate::profile::{Target, connect_to};
use crate::sources::{self, Fields, Kind};
use crate::{Exit, Failure, Outcome, files};

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub target: Target,
    pub collection: String,
    /// A .npy, .fvecs, .jsonl, .csv or .parquet file.
    pub file: PathBuf,
    /// The file's format [default: from its extension].
    #[arg(long, value_enum)]
    pub format: Option<Kind>,
    /// The id field (.jsonl) or column (.csv, .parquet).
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// The vector field (.jsonl) or column (.csv, .parquet).
    #[arg(long, default_value = "vector")]
    pub vector_field: String,
    /// The payload field (.jsonl) or column (.parquet); without it, every other field or
    /// column is the payload.
    #[arg(long, default_value = "payload")]
    pub payload_field: String,
    /// The id of the first row of a .npy or .fvecs file (the others follow).
    #[arg(long, default_value_t = 0)]
    pub start_id: u64,
    /// Points per upsert.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// Upserts in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,
    /// Skip the batches an earlier, interrupted run of the same import had acknowledged.
    #[arg(long)]
    pub resume: bool,
    /// Where acknowledged batches are recorded [default: under ~/.local/state/vectron/imports].
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// What an import's state file records: which import it is, and what was acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    import: Identity,
    batches: u64,
    /// Acknowledged batches, as sorted, disjoint `[start, end)` ranges.
    acknowledged: Vec<(u64, u64)>,
}

/// An import, as far as resuming it is concerned: the same file (path, size, mtime)
/// into the same collection of the same gateway, cut into the same batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    file: PathBuf,
    size: u64,
    modified_ms: u64,
    /// The gateway's URL: another cluster is another import.
    gateway: String,
    collection: String,
    /// Dimension, distance and shards: a collection re-created otherwise is another one.
    collection_shape: String,
    format: String,
    batch_size: u32,
    start_id: u64,
    id_field: String,
    vector_field: String,
    payload_field: String,
}

fn ranges(set: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &i in set {
        match out.last_mut() {
            Some((_, end)) if *end == i => *end += 1,
            _ => out.push((i, i + 1)),
        }
    }
    out
}

fn from_ranges(ranges: &[(u64, u64)]) -> BTreeSet<u64> {
    ranges.iter().flat_map(|&(a, b)| a..b).collect()
}

fn state_dir() -> Result<PathBuf, Failure> {
    Ok(files::base_dir("XDG_STATE_HOME", ".local/state")?.join("imports"))
}

/// The default state file of importing `file` (canonical) into `collection` at
/// `gateway`.
fn default_state_file(collection: &str, file: &Path, gateway: &str) -> Result<PathBuf, Failure> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let safe = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect::<String>()
    };
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(file.as_os_str().as_encoded_bytes());
    hasher.update(gateway.as_bytes());
    let tag = hasher.finalize();
    Ok(state_dir()?.join(format!("{}-{}-{tag:08x}.json", safe(collection), safe(&name))))
}

fn load_state(path: &Path) -> Result<Option<State>, Failure> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Failure::invalid(format!("{}: not an import state file: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::new(Exit::Failed, format!("{}: {e}", path.display()))),
    }
}

/// Writes the state whole or not at all.
fn save_state(path: &Path, state: &State) -> Result<(), Failure> {
    files::write_private(path, &serde_json::to_vec(state).unwrap_or_default())
}

/// One batch to upsert: its index in the file's batches, and its points.
type Batch = (u64, Vec<Point>);

/// Reads the file on a thread of its own, sending the batches not yet acknowledged.
fn read_batches(
    source: sources::Source,
    batch_size: usize,
    skip: BTreeSet<u64>,
    out: tokio::sync::mpsc::Sender<Result<Batch, Failure>>,
) {
    let mut points = source.points;
    let mut index = 0u64;
    loop {
        let mut batch = Vec::with_capacity(batch_size);
        for p in points.by_ref().take(batch_size) {
            match p {
                Ok(p) => batch.push(p),
                Err(e) => {
                    let _ = out.blocking_send(Err(e));
                    return;
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        if !skip.contains(&index) && out.blocking_send(Ok((index, batch))).is_err() {
            return;
        }
        index += 1;
    }
}

/// Runs `vectron import`.
pub async fn run(a: ImportArgs) -> Outcome {
    let kind = match a.format {
        Some(k) => k,
        None => Kind::of(&a.file)?,
    };
    let file = std::fs::canonicalize(&a.file).map_err(|e| Failure::invalid(format!("{}: {e}", a.file.display())))?;
    let meta = std::fs::metadata(&file)?;
    let modified_ms =
        meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as u64);
    let (client, gateway) = connect_to(&a.target).await?;
    // Fails early on a collection that is not there (or a credential that may not read it).
    let config = client.get_collection(&a.collection).await?.config.unwrap_or_default();
    let dimension = config.dimension;
    let identity = Identity {
        file: file.clone(),
        size: meta.len(),
        modified_ms,
        gateway: gateway.clone(),
        collection: a.collection.clone(),
        collection_shape: format!(
            "{} dimensions, distance {}, {} shards",
            config.dimension, config.distance, config.shard_count
        ),
        format: format!("{kind:?}").to_lowercase(),
        batch_size: a.batch_size,
        start_id: a.start_id,
        id_field: a.id_field.clone(),
        vector_field: a.vector_field.clone(),
        payload_field: a.payload_field.clone(),
    };
    let state_path = match &a.state_file {
        Some(p) => p.clone(),
        None => default_state_file(&a.collection, &file, &gateway)?,
    };
    let earlier = load_state(&state_path)?;
    let acknowledged = match (&earlier, a.resume) {
        (Some(s), true) if s.import == identity => from_ranges(&s.acknowledged),
        (Some(s), true) => {
            return Err(Failure::new(
                Exit::Conflict,
                format!(
                    "{} records another import ({} into {:?} at {}, batches of {}), or the file or the collection \
                     changed since; remove it or run without --resume",
                    state_path.display(),
                    s.import.file.display(),
                    s.import.collection,
                    s.import.gateway,
                    s.import.batch_size
                ),
            ));
        }
        (None, true) => {
            eprintln!(
                "note: nothing to resume ({} does not exist): starting from the first batch",
                state_path.display()
            );
            BTreeSet::new()
        }
        (_, false) => BTreeSet::new(),
    };
    if earlier.is_some() && !a.resume {
        eprintln!("note: starting over; --resume would skip what {} records", state_path.display());
    }

    let fields = Fields { id: a.id_field.clone(), vector: a.vector_field.clone(), payload: a.payload_field.clone() };
    let (path, start_id) = (file.clone(), a.start_id);
    let source = tokio::task::spawn_blocking(move || sources::open(&path, kind, &fields, start_id))
        .await
        .map_err(|e| Failure::new(Exit::Failed, e.to_string()))??;
    let total = source.total;
    let batch_size = a.batch_size as usize;
    let batches = total.div_ceil(batch_size as u64);
    let batch_len = |i: u64| if i + 1 == batches { total - i * batch_size as u64 } else { batch_size as u64 };
    let acknowledged: BTreeSet<u64> = acknowledged.into_iter().filter(|&i| i < batches).collect();
    let skipped_points: u64 = acknowledged.iter().map(|&i| batch_len(i)).sum();
    let skipped_batches = acknowledged.len() as u64;

    let (tx, rx) = tokio::sync::mpsc::channel(a.parallel as usize * 2);
    let skip = acknowledged.clone();
    let reader = std::thread::spawn(move || read_batches(source, batch_size, skip, tx));

    let bar = progress(total - skipped_points, a.no_progress || a.target.output == Format::Json);
    let started = Instant::now();
    let mut state = State { import: identity, batches, acknowledged: ranges(&acknowledged) };
    let mut done = acknowledged;
    let mut sent_points = 0u64;
    let mut last_save = Instant::now();
    let name = a.collection.clone();
    // Boxed, so that dropping it (below) drops the receiver, which stops the reader.
    let mut upserts = Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(|batch| {
                let (client, name) = (client.clone(), name.clone());
                async move {
                    let (index, points) = batch?;
                    let first = points.first().map(|p| p.id.to_string()).unwrap_or_default();
                    let n = points.len() as u64;
                    client.upsert(&name, points).await.map_err(|e| {
                        let f = Failure::from(e);
                        Failure::new(f.exit, format!("batch {index} (from point {first}): {}", f.message))
                    })?;
                    Ok::<_, Failure>((index, n))
                }
            })
            .buffer_unordered(a.parallel as usize),
    );
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let mut failure: Option<Failure> = None;
    loop {
        tokio::select! {
            next = upserts.next() => match next {
                None => break,
                Some(Ok((index, n))) => {
                    done.insert(index);
                    sent_points += n;
                    bar.inc(n);
                    if last_save.elapsed() >= Duration::from_millis(250) {
                        state.acknowledged = ranges(&done);
                        save_state(&state_path, &state)?;
                        last_save = Instant::now();
                    }
                }
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
            },
            _ = &mut interrupt => {
                failure = Some(Failure::new(Exit::Interrupted, "interrupted"));
                break;
            }
        }
    }
    // Stop the reader (its channel closes) and whatever was still in flight.
    drop(upserts);
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let complete = failure.is_none() && done.len() as u64 == batches;
    if complete {
        if let Err(e) = std::fs::remove_file(&state_path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("warning: {}: {e}", state_path.display());
        }
    } else {
        state.acknowledged = ranges(&done);
        save_state(&state_path, &state)?;
    }
    let rate = sent_points as f64 / elapsed.as_secs_f64().max(1e-9);
    let summary = json!({
        "collection": a.collection, "file": file, "dimension": dimension,
        "points": total, "imported": sent_points, "skipped": skipped_points,
        "batches": batches, "batches_acknowledged": done.len(), "batches_skipped": skipped_batches,
        "seconds": elapsed.as_secs_f64(), "points_per_second": rate, "complete": complete,
        "state_file": (!complete).then(|| state_path.clone()),
    });
    emit(a.target.output, &summary, || {
        Table::fields(&[
            ("collection", a.collection.clone()),
            ("file", file.display().to_string()),
            ("points", total.to_string()),
            ("imported", format!("{sent_points} in {:.1} s ({rate:.0} points/s)", elapsed.as_secs_f64())),
            ("skipped", format!("{skipped_points} ({skipped_batches} batches acknowledged before)")),
            ("complete", complete.to_string()),
        ])
    });
    match failure {
        Some(mut f) => {
            f.message = format!(
                "{}; {} of {batches} batches acknowledged, recorded in {} (run again with --resume)",
                f.message,
                done.len(),
                state_path.display()
            );
            Err(f)
        }
        None if !complete => Err(Failure::new(Exit::Failed, "the file ended before every batch was read")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_batches_round_trip_as_ranges() {
        let set: BTreeSet<u64> = [0, 1, 2, 5, 7, 8].into_iter().collect();
        assert_eq!(ranges(&set), vec![(0, 3), (5, 6), (7, 9)]);
        assert_eq!(from_ranges(&ranges(&set)), set);
        assert!(ranges(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn state_files_are_named_for_the_collection_and_the_file() {
        let a = default_state_file("docs", Path::new("/data/a b.jsonl"), "http://db:8081").unwrap();
        let b = default_state_file("docs", Path::new("/other/a b.jsonl"), "http://db:8081").unwrap();
        let c = default_state_file("docs", Path::new("/data/a b.jsonl"), "http://staging:8081").unwrap();
        assert_ne!(a, c, "another gateway: another import");
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("docs-a_b.jsonl-") && name.ends_with(".json"), "{name}");
        assert_ne!(a, b, "same name, other folder: another import");
    }
}
