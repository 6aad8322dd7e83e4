//! How commands print (and ask): aligned tables (kubectl-style: a header row, no borders) for
//! people, or `-o json` — one JSON document on stdout — for scripts. Progress and
//! errors go to stderr, so stdout stays parseable.

use std::io::IsTerminal;

use serde_json::Value;

use crate::{Exit, Failure};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Rows under a header, columns aligned.
#[derive(Debug)]
pub struct Table(comfy_table::Table);

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING);
        t.set_header(headers.iter().map(|h| h.to_uppercase()));
        Table(t)
    }

    /// Two columns, FIELD and VALUE, for one object.
    pub fn fields(rows: &[(&str, String)]) -> Table {
        let mut t = Table::new(&["field", "value"]);
        for (field, value) in rows {
            t.row(vec![(*field).to_owned(), value.clone()]);
        }
        t
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.0.add_row(cells);
    }

    fn render(&self) -> String {
        // Each line as comfy-table pads it, without the outer margins.
        self.0.to_string().lines().map(|l| l.trim_end().strip_prefix(' ').unwrap_or(l).to_owned() + "\n").collect()
    }
}

/// A progress bar of `len` points on stderr (rate and ETA), or none when `hidden`
/// (indicatif also draws nothing when stderr is not a terminal).
pub fn progress(len: u64, hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let template = "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} points, {per_sec}, ETA {eta}";
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Prints `value` as JSON, or `table()` for people.
pub fn emit(format: Format, value: &Value, table: impl FnOnce() -> Table) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
        Format::Table => print!("{}", table().render()),
    }
}

/// A compact one-line rendering of a JSON value for a table cell (strings unquoted).
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Asks on the terminal; refuses without one (scripts pass `--yes`).
pub fn confirm(question: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::invalid(format!("{question} Pass --yes to do it without asking.")));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") { Ok(()) } else { Err(Failure::new(Exit::Failed, "not confirmed")) }
}

/// Milliseconds since the epoch as an RFC 3339 time (UTC), for tables; 0 is empty.
pub fn time_ms(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_under_an_upper_case_header() {
        let mut t = Table::new(&["name", "points"]);
        t.row(vec!["docs".into(), "12".into()]);
        t.row(vec!["a-much-longer-name".into(), "3".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NAME"), "{text}");
        let column = |l: &str| l.find(char::is_numeric).or_else(|| l.find("POINTS")).unwrap();
        assert!(lines.iter().all(|l| column(l) == column(lines[0])), "aligned:\n{text}");
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(time_ms(0), "");
        assert_eq!(time_ms(1_000), "1970-01-01T00:00:01Z");
        assert_eq!(time_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(time_ms(1_796_169_600_000 + 3_723_000), "2026-12-02T01:02:03Z");
    }
}
