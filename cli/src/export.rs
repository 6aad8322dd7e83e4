//! `vectron export COLLECTION FILE`: every point (or those a filter matches), page by
//! page with a progress bar, as JSON Lines — `{"id", "vector", "payload"}` per line —
//! or as Parquet ([`crate::parquet_file`]), both what `vectron import` reads. The file
//! appears whole at the end (written beside it and renamed), so an interrupted export
//! leaves nothing that looks complete.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use vectron_sdk::Record;

use crate::data::{parse_filter, record_json};
use crate::output::{Format, Table, emit, progress};
use crate::parquet_file::ParquetSink;
use crate::profile::{Target, connect};
use crate::{Exit, Failure, Outcome};

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub target: Target,
    pub collection: String,
    /// The file to write (.jsonl or .parquet; `-`: JSON Lines on stdout).
    pub file: PathBuf,
    /// Only the points this filter (JSON, as in the HTTP API) matches.
    #[arg(long)]
    pub filter: Option<String>,
    /// Leave the vectors out (ids and payloads only).
    #[arg(long)]
    pub no_vectors: bool,
    /// Points per page read.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Where an export's records go.
enum Sink {
    Jsonl(Box<dyn Write>),
    Parquet(Box<ParquetSink<BufWriter<std::fs::File>>>),
}

impl Sink {
    fn write(&mut self, page: &[Record], failed: &impl Fn(std::io::Error) -> Failure) -> Result<(), Failure> {
        match self {
            Sink::Jsonl(out) => {
                for r in page {
                    serde_json::to_writer(&mut *out, &record_json(r)).map_err(|e| failed(e.into()))?;
                    out.write_all(b"\n").map_err(failed)?;
                }
                Ok(())
            }
            Sink::Parquet(sink) => sink.write(page),
        }
    }

    /// Flushes everything written (and a Parquet file's footer).
    fn finish(self, failed: &impl Fn(std::io::Error) -> Failure) -> Result<(), Failure> {
        match self {
            Sink::Jsonl(mut out) => out.flush().map_err(failed),
            Sink::Parquet(sink) => sink.finish()?.flush().map_err(failed),
        }
    }
}

/// Runs `vectron export`.
pub async fn run(a: ExportArgs) -> Outcome {
    let to_stdout = a.file.as_os_str() == "-";
    let ext = a.file.extension().and_then(|e| e.to_str()).unwrap_or_default().to_lowercase();
    let parquet = match ext.as_str() {
        _ if to_stdout => false,
        "jsonl" | "ndjson" => false,
        "parquet" | "pq" => true,
        _ => return Err(Failure::invalid(format!("{}: export writes .jsonl or .parquet files", a.file.display()))),
    };
    let filter = parse_filter(a.filter.as_deref())?;
    let client = connect(&a.target).await?;
    let total = client.count(&a.collection, filter.as_ref()).await?;
    let tmp = a.file.with_extension(format!("{ext}.partial"));
    let failed = |e: std::io::Error| Failure::new(Exit::Failed, format!("{}: {e}", a.file.display()));
    // A Parquet file's vector column has the collection's dimension.
    let dimension = if parquet && !a.no_vectors {
        Some(client.get_collection(&a.collection).await?.config.unwrap_or_default().dimension as usize)
    } else {
        None
    };
    let mut sink = if to_stdout {
        Sink::Jsonl(Box::new(BufWriter::new(std::io::stdout().lock())))
    } else {
        let file = BufWriter::new(std::fs::File::create(&tmp).map_err(failed)?);
        if parquet { Sink::Parquet(Box::new(ParquetSink::new(file, dimension))) } else { Sink::Jsonl(Box::new(file)) }
    };
    let bar = progress(total, a.no_progress || a.target.output == Format::Json || to_stdout);
    let started = Instant::now();
    let mut written = 0u64;
    let mut cursor = None;
    let result: Outcome = async {
        loop {
            let (page, next) =
                client.scroll_with(&a.collection, filter.as_ref(), a.page_size, cursor, !a.no_vectors).await?;
            sink.write(&page, &failed)?;
            written += page.len() as u64;
            bar.inc(page.len() as u64);
            cursor = next;
            if cursor.is_none() {
                return Ok(());
            }
        }
    }
    .await;
    bar.finish_and_clear();
    if let Err(e) = result.and_then(|()| sink.finish(&failed)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if !to_stdout {
        std::fs::rename(&tmp, &a.file).map_err(failed)?;
        let secs = started.elapsed().as_secs_f64();
        let summary = json!({"collection": a.collection, "file": a.file, "points": written, "seconds": secs});
        emit(a.target.output, &summary, || {
            Table::fields(&[
                ("collection", a.collection.clone()),
                ("file", a.file.display().to_string()),
                ("points", format!("{written} in {secs:.1} s")),
            ])
        });
    }
    Ok(())
}
