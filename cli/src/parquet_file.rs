//! Parquet files, read by `vectron import` and written by `vectron export`, through the
//! Arrow implementation (`parquet`'s arrow reader and writer).
//!
//! Reading, a column each:
//! - the id column: integers (non-negative) or text (`Utf8`, `LargeUtf8`, `Utf8View`);
//!   a text id stays a string id, as it does in JSON Lines;
//! - the vector column: a list, large list or fixed-size list of numbers (any numeric
//!   type, cast to float32);
//! - the payload: the payload column if there is one — text holding a JSON object per
//!   row (what `export` writes), or a struct — and otherwise every other column, each a
//!   payload field converted to JSON as `arrow-json` does (nested lists and structs
//!   kept, nulls left out). A payload column beside other columns is refused, never
//!   dropped.
//!
//! Writing: `id` (uint64, or text when the first point has a string id; a collection
//! with both kinds is refused — export it to JSON Lines), `vector`
//! (fixed-size list of float32, left out with `--no-vectors`) and `payload` (the JSON
//! text, marked with Arrow's canonical `arrow.json` extension type; null without a
//! payload); snappy compression, row groups of about 64 MiB.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};
use vectron_sdk::{Point, PointId, Record};

use crate::sources::{Fields, Source};
use crate::{Exit, Failure};

/// Rows decoded at a time.
const READ_BATCH_ROWS: usize = 1024;

/// Opens a Parquet file as a stream of points.
pub fn open(file: File, name: String, fields: &Fields) -> Result<Source, Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::invalid(format!("{name}: {e}"));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(&e))?;
    let total = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let layout = Layout::of(builder.schema(), fields).map_err(|e| bad(&e))?;
    let batches = builder.with_batch_size(READ_BATCH_ROWS).build().map_err(|e| bad(&e))?;
    let reader = Reader { batches, layout, name, row: 0, pending: Vec::new().into_iter() };
    Ok(Source { total, points: Box::new(reader) })
}

/// Which columns hold what.
#[derive(Debug)]
struct Layout {
    id: usize,
    vector: usize,
    payload: PayloadColumns,
}

#[derive(Debug)]
enum PayloadColumns {
    /// One column named as the payload field: JSON text or a struct.
    One { column: usize, json_text: bool },
    /// Every column but the id and the vector, a field each (none: no payloads).
    Rest(Vec<usize>),
}

impl Layout {
    fn of(schema: &Schema, fields: &Fields) -> Result<Layout, String> {
        let have = || schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>();
        let column =
            |name: &str| schema.index_of(name).map_err(|_| format!("no {name:?} column (it has {:?})", have()));
        let (id, vector) = (column(&fields.id)?, column(&fields.vector)?);
        let id_type = schema.field(id).data_type();
        if !(id_type.is_integer() || is_text(id_type)) {
            return Err(format!("the id column {:?} is {id_type}; ids are integers or text", fields.id));
        }
        match schema.field(vector).data_type() {
            DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _)
                if item.data_type().is_numeric() => {}
            other => {
                return Err(format!("the vector column {:?} is {other}; vectors are lists of numbers", fields.vector));
            }
        }
        let rest: Vec<usize> = (0..schema.fields().len()).filter(|&i| i != id && i != vector).collect();
        let payload = match schema.index_of(&fields.payload) {
            Ok(column) if rest.len() > 1 => {
                let extra: Vec<&str> =
                    rest.iter().filter(|&&i| i != column).map(|&i| schema.field(i).name().as_str()).collect();
                return Err(format!(
                    "columns beside id, vector and {:?}: {extra:?} (put them in the payload, or name no payload column)",
                    fields.payload
                ));
            }
            Ok(column) => match schema.field(column).data_type() {
                t if is_text(t) => PayloadColumns::One { column, json_text: true },
                DataType::Struct(_) => PayloadColumns::One { column, json_text: false },
                other => {
                    return Err(format!(
                        "the payload column {:?} is {other}; it holds JSON objects as text, or a struct",
                        fields.payload
                    ));
                }
            },
            Err(_) => PayloadColumns::Rest(rest),
        };
        Ok(Layout { id, vector, payload })
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// A Parquet file's record batches, as points.
struct Reader {
    batches: ParquetRecordBatchReader,
    layout: Layout,
    name: String,
    /// Rows already decoded (of earlier batches).
    row: u64,
    pending: std::vec::IntoIter<Result<Point, Failure>>,
}

impl Iterator for Reader {
    type Item = Result<Point, Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(p) = self.pending.next() {
                return Some(p);
            }
            let batch = match self.batches.next()? {
                Ok(b) => b,
                Err(e) => return Some(Err(Failure::invalid(format!("{}: {e}", self.name)))),
            };
            let first = self.row;
            self.row += batch.num_rows() as u64;
            self.pending = match points(&batch, &self.layout) {
                Ok(points) => points.into_iter().map(Ok).collect::<Vec<_>>().into_iter(),
                Err((i, e)) => {
                    vec![Err(Failure::invalid(format!("{}: row {}: {e}", self.name, first + i as u64)))].into_iter()
                }
            };
        }
    }
}

/// A record batch's points; an error names the row (within the batch).
fn points(batch: &RecordBatch, layout: &Layout) -> Result<Vec<Point>, RowError> {
    let ids = ids(batch.column(layout.id))?;
    let vectors = vectors(batch.column(layout.vector))?;
    let payloads = payloads(batch, &layout.payload)?;
    Ok(ids
        .into_iter()
        .zip(vectors)
        .zip(payloads)
        .map(|((id, vector), payload)| Point { id, vector, payload })
        .collect())
}

/// A failure to decode a batch: the row (within the batch) and what is wrong.
type RowError = (usize, String);

fn ids(column: &ArrayRef) -> Result<Vec<PointId>, RowError> {
    let null = |i| (i, "no id (null)".to_owned());
    if is_text(column.data_type()) {
        let text = arrow_cast::cast(column, &DataType::Utf8).map_err(|e| (0, e.to_string()))?;
        return text
            .as_string::<i32>()
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                None => Err(null(i)),
                Some("") => Err((i, "an empty id".to_owned())),
                Some(s) => Ok(PointId::Str(s.to_owned())),
            })
            .collect();
    }
    let signed = column.data_type().is_signed_integer();
    let wide = arrow_cast::cast(column, if signed { &DataType::Int64 } else { &DataType::UInt64 })
        .map_err(|e| (0, e.to_string()))?;
    if signed {
        let values = wide.as_primitive::<arrow_array::types::Int64Type>();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                None => Err(null(i)),
                Some(n) => u64::try_from(n).map(PointId::Num).map_err(|_| (i, format!("id {n} is negative"))),
            })
            .collect()
    } else {
        let values = wide.as_primitive::<arrow_array::types::UInt64Type>();
        values.iter().enumerate().map(|(i, v)| v.map(PointId::Num).ok_or_else(|| null(i))).collect()
    }
}

fn vectors(column: &ArrayRef) -> Result<Vec<Vec<f32>>, RowError> {
    let rows = column.len();
    // Each row's [start, end) in the flat values.
    let (values, bounds): (ArrayRef, Vec<(usize, usize)>) = match column.data_type() {
        DataType::List(_) => {
            let list = column.as_list::<i32>();
            let o = list.value_offsets();
            (list.values().clone(), (0..rows).map(|i| (o[i] as usize, o[i + 1] as usize)).collect())
        }
        DataType::LargeList(_) => {
            let list = column.as_list::<i64>();
            let o = list.value_offsets();
            (list.values().clone(), (0..rows).map(|i| (o[i] as usize, o[i + 1] as usize)).collect())
        }
        DataType::FixedSizeList(_, n) => {
            let list = column.as_fixed_size_list();
            let n = *n as usize;
            let start = list.offset() * n;
            (list.values().clone(), (0..rows).map(|i| (start + i * n, start + (i + 1) * n)).collect())
        }
        other => return Err((0, format!("the vector column is {other}"))),
    };
    let floats = arrow_cast::cast(&values, &DataType::Float32).map_err(|e| (0, e.to_string()))?;
    let floats = floats.as_primitive::<Float32Type>();
    (0..rows)
        .map(|i| {
            if column.is_null(i) {
                return Err((i, "no vector (null)".to_owned()));
            }
            let (start, end) = bounds[i];
            if floats.slice(start, end - start).null_count() > 0 {
                return Err((i, "a null in the vector".to_owned()));
            }
            Ok(floats.values()[start..end].to_vec())
        })
        .collect()
}

fn payloads(batch: &RecordBatch, columns: &PayloadColumns) -> Result<Vec<Option<Map<String, Value>>>, RowError> {
    match columns {
        PayloadColumns::Rest(cols) if cols.is_empty() => Ok(vec![None; batch.num_rows()]),
        PayloadColumns::Rest(cols) => {
            let rows = json_rows(&batch.project(cols).map_err(|e| (0, e.to_string()))?)?;
            Ok(rows.into_iter().map(|m| (!m.is_empty()).then_some(m)).collect())
        }
        PayloadColumns::One { column, json_text: true } => {
            let text = arrow_cast::cast(batch.column(*column), &DataType::Utf8).map_err(|e| (0, e.to_string()))?;
            text.as_string::<i32>()
                .iter()
                .enumerate()
                .map(|(i, s)| match s.map(serde_json::from_str::<Value>) {
                    None => Ok(None),
                    Some(Ok(Value::Object(m))) => Ok(Some(m)),
                    Some(Ok(Value::Null)) => Ok(None),
                    Some(Ok(other)) => Err((i, format!("the payload {other} is not a JSON object"))),
                    Some(Err(e)) => Err((i, format!("the payload is not JSON: {e}"))),
                })
                .collect()
        }
        PayloadColumns::One { column, json_text: false } => {
            let name = batch.schema().field(*column).name().clone();
            let rows = json_rows(&batch.project(&[*column]).map_err(|e| (0, e.to_string()))?)?;
            Ok(rows
                .into_iter()
                .map(|mut m| match m.remove(&name) {
                    Some(Value::Object(p)) if !p.is_empty() => Some(p),
                    _ => None,
                })
                .collect())
        }
    }
}

/// Each row of a batch as a JSON object (`arrow-json`'s encoding; nulls left out).
fn json_rows(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, RowError> {
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    writer.write(batch).map_err(|e| (0, format!("a payload column: {e}")))?;
    writer.finish().map_err(|e| (0, e.to_string()))?;
    let text = writer.into_inner();
    let rows: Vec<Map<String, Value>> = text
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(i, line)| serde_json::from_slice(line).map_err(|e| (i, e.to_string())))
        .collect::<Result<_, _>>()?;
    // A row whose fields are all null is an empty line's `{}`: still one row.
    debug_assert_eq!(rows.len(), batch.num_rows());
    Ok(rows)
}

/// An export's Parquet file: its writer, made at the first page (the id column's type
/// follows the first page's ids).
pub struct ParquetSink<W: Write + Send> {
    out: Option<W>,
    writer: Option<ArrowWriter<W>>,
    schema: Option<SchemaRef>,
    /// The vector column's size (`None`: vectors left out).
    dimension: Option<usize>,
}

impl<W: Write + Send> ParquetSink<W> {
    pub fn new(out: W, dimension: Option<usize>) -> ParquetSink<W> {
        ParquetSink { out: Some(out), writer: None, schema: None, dimension }
    }

    fn start(&mut self, text_ids: bool) -> Result<(), Failure> {
        let id_type = if text_ids { DataType::Utf8 } else { DataType::UInt64 };
        let mut fields = vec![Field::new("id", id_type, false)];
        if let Some(dim) = self.dimension {
            let item = Arc::new(Field::new("item", DataType::Float32, false));
            fields.push(Field::new("vector", DataType::FixedSizeList(item, dim as i32), false));
        }
        let payload = Field::new("payload", DataType::Utf8, true)
            .with_metadata([("ARROW:extension:name".to_owned(), "arrow.json".to_owned())].into_iter().collect());
        fields.push(payload);
        let schema = Arc::new(Schema::new(fields));
        let row_bytes = 16 + 4 * self.dimension.unwrap_or(0);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some((64 << 20) / row_bytes))
            .build();
        let out = self.out.take().expect("started once");
        self.writer = Some(ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(failed)?);
        self.schema = Some(schema);
        Ok(())
    }

    /// Appends a page of records.
    pub fn write(&mut self, page: &[Record]) -> Result<(), Failure> {
        if self.writer.is_none() {
            self.start(page.first().is_some_and(|r| matches!(r.id, PointId::Str(_))))?;
        }
        let schema = self.schema.clone().expect("started");
        let text_ids = schema.field(0).data_type() == &DataType::Utf8;
        // One kind of id per file: a number in a text column would come back a string.
        if let Some(other) = page.iter().find(|r| matches!(r.id, PointId::Str(_)) != text_ids) {
            let (this, column) = if text_ids { ("a numeric", "text") } else { ("a string", "numbers") };
            return Err(Failure::new(
                Exit::Failed,
                format!(
                    "point {} has {this} id, but this export's id column holds {column} (the first point's kind); \
                     export a collection with both kinds of ids to .jsonl",
                    serde_json::json!(other.id)
                ),
            ));
        }
        let id: ArrayRef = if text_ids {
            Arc::new(StringArray::from_iter_values(page.iter().filter_map(|r| match &r.id {
                PointId::Str(s) => Some(s.as_str()),
                PointId::Num(_) => None,
            })))
        } else {
            Arc::new(UInt64Array::from_iter_values(page.iter().filter_map(|r| match r.id {
                PointId::Num(n) => Some(n),
                PointId::Str(_) => None,
            })))
        };
        let mut columns = vec![id];
        if let Some(dim) = self.dimension {
            let mut flat = Vec::with_capacity(page.len() * dim);
            for r in page {
                match &r.vector {
                    Some(v) if v.len() == dim => flat.extend_from_slice(v),
                    _ => {
                        return Err(Failure::new(
                            Exit::Failed,
                            format!("point {:?} came without a vector of {dim} numbers", r.id),
                        ));
                    }
                }
            }
            let DataType::FixedSizeList(item, _) = schema.field(1).data_type() else { unreachable!("vector column") };
            let list = FixedSizeListArray::try_new(item.clone(), dim as i32, Arc::new(Float32Array::from(flat)), None)
                .map_err(failed)?;
            columns.push(Arc::new(list));
        }
        let payloads = StringArray::from_iter(
            page.iter().map(|r| r.payload.as_ref().map(|p| Value::Object(p.clone()).to_string())),
        );
        columns.push(Arc::new(payloads));
        let batch = RecordBatch::try_new(schema, columns).map_err(failed)?;
        self.writer.as_mut().expect("started").write(&batch).map_err(failed)
    }

    /// Writes the footer; returns the underlying writer.
    pub fn finish(mut self) -> Result<W, Failure> {
        if self.writer.is_none() {
            self.start(false)?;
        }
        self.writer.take().expect("started").into_inner().map_err(failed)
    }
}

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Failed, format!("writing Parquet: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{FixedSizeListBuilder, Float64Builder, ListBuilder};
    use arrow_array::{BooleanArray, Int32Array, Int64Array, StructArray};
    use serde_json::json;

    fn fields() -> Fields {
        Fields { id: "id".into(), vector: "vector".into(), payload: "payload".into() }
    }

    fn write(path: &std::path::Path, batch: &RecordBatch) {
        let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
    }

    fn read(path: &std::path::Path) -> Result<Vec<Point>, Failure> {
        let source = open(File::open(path).unwrap(), path.display().to_string(), &fields())?;
        let total = source.total;
        let points = source.points.collect::<Result<Vec<_>, _>>()?;
        assert_eq!(points.len() as u64, total);
        Ok(points)
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn columns_become_ids_vectors_and_payload_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let mut vectors = ListBuilder::new(Float64Builder::new());
        for v in [[1.0, 2.0], [3.0, 4.5]] {
            vectors.values().append_slice(&v);
            vectors.append(true);
        }
        let tags = StructArray::from(vec![(
            Arc::new(Field::new("lang", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![Some("en"), None])) as ArrayRef,
        )]);
        write(
            &path,
            &batch(vec![
                ("id", Arc::new(Int32Array::from(vec![7, 8]))),
                ("vector", Arc::new(vectors.finish())),
                ("n", Arc::new(Int64Array::from(vec![Some(3), None]))),
                ("ok", Arc::new(BooleanArray::from(vec![true, false]))),
                ("name", Arc::new(StringArray::from(vec!["ann", "007"]))),
                ("meta", Arc::new(tags)),
            ]),
        );
        let got = read(&path).unwrap();
        assert_eq!(
            got[0],
            Point::new(7u64, vec![1.0, 2.0])
                .with_payload(json!({"n": 3, "ok": true, "name": "ann", "meta": {"lang": "en"}}))
        );
        assert_eq!(
            got[1],
            Point::new(8u64, vec![3.0, 4.5]).with_payload(json!({"ok": false, "name": "007", "meta": {}})),
            "nulls left out, text stays text"
        );
    }

    #[test]
    fn what_export_writes_import_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.parquet");
        let record = |id: PointId, i: u64| Record {
            id,
            vector: Some(vec![i as f32, -1.5, 0.25]),
            payload: i
                .is_multiple_of(2)
                .then(|| json!({"i": i, "s": "x\"y", "l": [1, {"a": null}]}))
                .and_then(|v| v.as_object().cloned()),
        };
        let as_points = |records: &[Record]| -> Vec<Point> {
            records
                .iter()
                .map(|r| Point { id: r.id.clone(), vector: r.vector.clone().unwrap(), payload: r.payload.clone() })
                .collect()
        };
        for text in [false, true] {
            let records: Vec<Record> = (0..2500u64)
                .map(|i| record(if text { PointId::Str(format!("p{i}")) } else { PointId::Num(i) }, i))
                .collect();
            let mut sink = ParquetSink::new(File::create(&path).unwrap(), Some(3));
            for page in records.chunks(1000) {
                sink.write(page).unwrap();
            }
            sink.finish().unwrap();
            assert_eq!(read(&path).unwrap(), as_points(&records), "text ids: {text}; payloads exact");
        }

        // One kind of id per file: the other kind is refused, not converted.
        let mixed = [record(PointId::Num(1), 1), record(PointId::Str("two".into()), 2)];
        for (first, then) in [(&mixed[0], &mixed[1]), (&mixed[1], &mixed[0])] {
            let mut sink = ParquetSink::new(Vec::new(), None);
            sink.write(std::slice::from_ref(first)).unwrap();
            let e = sink.write(std::slice::from_ref(then)).unwrap_err();
            assert!(e.message.contains(".jsonl"), "{}", e.message);
        }
        let e = ParquetSink::new(Vec::new(), None).write(&mixed).unwrap_err();
        assert!(e.message.contains("\"two\""), "{}", e.message);

        // An empty export is still a readable file.
        let empty = dir.path().join("empty.parquet");
        ParquetSink::new(File::create(&empty).unwrap(), Some(3)).finish().unwrap();
        assert_eq!(read(&empty).unwrap(), vec![]);
    }

    #[test]
    fn bad_columns_and_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.parquet");
        let mut fixed = FixedSizeListBuilder::new(Float64Builder::new(), 2);
        fixed.values().append_slice(&[1.0, 2.0]);
        fixed.append(true);
        fixed.values().append_slice(&[1.0, 2.0]);
        fixed.append(true);
        let vector = Arc::new(fixed.finish()) as ArrayRef;
        write(&path, &batch(vec![("id", Arc::new(Int64Array::from(vec![1, -2]))), ("vector", vector.clone())]));
        let e = read(&path).unwrap_err();
        assert!(e.message.ends_with("row 1: id -2 is negative"), "{}", e.message);

        write(&path, &batch(vec![("key", Arc::new(Int64Array::from(vec![1, 2]))), ("vector", vector.clone())]));
        assert!(read(&path).unwrap_err().message.contains("no \"id\" column"));

        write(
            &path,
            &batch(vec![
                ("id", Arc::new(Int64Array::from(vec![1, 2]))),
                ("vector", vector.clone()),
                ("payload", Arc::new(StringArray::from(vec!["{}", "{}"]))),
                ("extra", Arc::new(Int64Array::from(vec![1, 2]))),
            ]),
        );
        assert!(read(&path).unwrap_err().message.contains("\"extra\""), "never dropped silently");

        write(
            &path,
            &batch(vec![
                ("id", Arc::new(Int64Array::from(vec![1, 2]))),
                ("vector", vector.clone()),
                ("payload", Arc::new(StringArray::from(vec!["{\"a\": 1}", "[1]"]))),
            ]),
        );
        assert!(read(&path).unwrap_err().message.ends_with("row 1: the payload [1] is not a JSON object"));

        write(
            &path,
            &batch(vec![
                ("id", Arc::new(Int64Array::from(vec![1, 2]))),
                ("vector", Arc::new(StringArray::from(vec!["[1]", "[2]"]))),
            ]),
        );
        assert!(read(&path).unwrap_err().message.contains("vectors are lists of numbers"));
    }
}
