//! `vectron export COLLECTION FILE`: every point (or those a filter matches) as JSON
//! Lines — `{"id", "vector", "payload"}` per line, what `vectron import` reads — page by
//! page, with a progress bar. The file appears whole at the end (written beside it and
//! renamed), so an interrupted export leaves nothing that looks complete.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use crate::data::{parse_filter, record_json};
use crate::output::{Format, Table, emit, progress};
use crate::profile::{Target, connect};
use crate::{Exit, Failure, Outcome};

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub target: Target,
    pub collection: String,
    /// The file to write (.jsonl; `-`: stdout).
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

/// Runs `vectron export`.
pub async fn run(a: ExportArgs) -> Outcome {
    let to_stdout = a.file.as_os_str() == "-";
    if !to_stdout {
        let ext = a.file.extension().and_then(|e| e.to_str()).unwrap_or_default().to_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => {}
            "parquet" => return Err(Failure::invalid("Parquet export is not supported yet: export to .jsonl")),
            _ => return Err(Failure::invalid(format!("{}: export writes .jsonl files", a.file.display()))),
        }
    }
    let filter = parse_filter(a.filter.as_deref())?;
    let client = connect(&a.target).await?;
    let total = client.count(&a.collection, filter.as_ref()).await?;
    let tmp = a.file.with_extension("jsonl.partial");
    let failed = |e: std::io::Error| Failure::new(Exit::Failed, format!("{}: {e}", a.file.display()));
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(BufWriter::new(std::fs::File::create(&tmp).map_err(failed)?))
    };
    let bar = progress(total, a.no_progress || a.target.output == Format::Json || to_stdout);
    let started = Instant::now();
    let mut written = 0u64;
    let mut cursor = None;
    let result: Outcome = async {
        loop {
            let (page, next) =
                client.scroll_with(&a.collection, filter.as_ref(), a.page_size, cursor, !a.no_vectors).await?;
            for r in &page {
                serde_json::to_writer(&mut out, &record_json(r)).map_err(|e| failed(e.into()))?;
                out.write_all(b"\n").map_err(failed)?;
            }
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
    let flushed = out.flush().map_err(failed);
    drop(out);
    if let Err(e) = result.and(flushed) {
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
