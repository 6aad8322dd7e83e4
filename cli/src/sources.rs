//! The files `vectron import` reads, each as a stream of points with its length known
//! up front (for the progress bar and the batch count):
//!
//! - `.npy`: a 2-D float32 or float64 array in C order, one vector per row; ids are
//!   `--start-id` + the row number, no payloads;
//! - `.fvecs`: the TEXMEX format (each vector an int32 dimension then that many
//!   float32s, little-endian); ids as for `.npy`;
//! - `.jsonl`: one JSON object per line: the id field (a non-negative integer or a
//!   string), the vector field (an array of numbers), and the payload — the payload
//!   field's object, or else every other field;
//! - `.csv`: a header row; the id column, the vector column (a JSON array, or numbers
//!   separated by commas, semicolons or spaces), every other column a payload field
//!   (JSON numbers and `true`/`false` typed as such, so `007` stays text; empty cells
//!   left out); an id is a number when written as one (`7`, not `007`), else a string.
//!
//! - `.parquet`: columns chosen as for `.jsonl` ([`crate::parquet_file`]).
//!
//! A bad record stops the import with its file, line (or row) and what is wrong.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value};
use vectron_sdk::{Point, PointId};

use crate::Failure;
use crate::data::{parse_id, parse_vector_text};

/// A file format `vectron import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Npy,
    Fvecs,
    Jsonl,
    Csv,
    Parquet,
}

impl Kind {
    /// The format a file's extension names.
    pub fn of(path: &Path) -> Result<Kind, Failure> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_lowercase();
        match ext.as_str() {
            "npy" => Ok(Kind::Npy),
            "fvecs" => Ok(Kind::Fvecs),
            "jsonl" | "ndjson" => Ok(Kind::Jsonl),
            "csv" => Ok(Kind::Csv),
            "parquet" | "pq" => Ok(Kind::Parquet),
            _ => Err(Failure::invalid(format!(
                "{}: cannot tell the format from the extension; use --format npy|fvecs|jsonl|csv|parquet",
                path.display()
            ))),
        }
    }
}

/// Which fields hold what, in `.jsonl`, `.csv` and `.parquet` files.
#[derive(Debug, Clone)]
pub struct Fields {
    pub id: String,
    pub vector: String,
    /// `.jsonl` and `.parquet`: the field holding the payload object.
    pub payload: String,
}

/// A file's points, in order.
pub struct Source {
    /// How many points the file holds.
    pub total: u64,
    pub points: Box<dyn Iterator<Item = Result<Point, Failure>> + Send>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("total", &self.total).finish_non_exhaustive()
    }
}

/// Opens `path` as `kind`; `start_id` numbers the points of formats without ids.
pub fn open(path: &Path, kind: Kind, fields: &Fields, start_id: u64) -> Result<Source, Failure> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| Failure::invalid(format!("{name}: {e}")))?;
    match kind {
        Kind::Npy => npy(file, name, start_id),
        Kind::Fvecs => fvecs(file, name, start_id),
        Kind::Jsonl => jsonl(path, file, name, fields.clone()),
        Kind::Csv => csv_rows(path, file, name, fields.clone()),
        Kind::Parquet => crate::parquet_file::open(file, name, fields),
    }
}

fn npy(file: File, name: String, start_id: u64) -> Result<Source, Failure> {
    let bad = |e: std::io::Error| Failure::invalid(format!("{name}: not a .npy file: {e}"));
    let npy = npyz::NpyFile::new(BufReader::new(file)).map_err(bad)?;
    let shape = npy.shape().to_vec();
    let &[rows, dim] = shape.as_slice() else {
        return Err(Failure::invalid(format!(
            "{name}: a {}-D array; import needs 2-D (one vector per row)",
            shape.len()
        )));
    };
    if npy.order() == npyz::Order::Fortran {
        return Err(Failure::invalid(format!("{name}: Fortran order; save it with np.ascontiguousarray first")));
    }
    let dtype = npy.dtype().descr();
    let values: Box<dyn Iterator<Item = std::io::Result<f32>> + Send> = match npy.try_data::<f32>() {
        Ok(r) => Box::new(r),
        Err(npy) => match npy.try_data::<f64>() {
            Ok(r) => Box::new(r.map(|v| v.map(|x| x as f32))),
            Err(_) => return Err(Failure::invalid(format!("{name}: dtype {dtype}; import reads float32 or float64"))),
        },
    };
    let dim = usize::try_from(dim).map_err(|_| Failure::invalid(format!("{name}: dimension {dim}")))?;
    Ok(Source { total: rows, points: Box::new(Rows { values, dim, row: 0, rows, start_id, name }) })
}

/// An .npy array's rows as points.
struct Rows {
    values: Box<dyn Iterator<Item = std::io::Result<f32>> + Send>,
    dim: usize,
    row: u64,
    rows: u64,
    start_id: u64,
    name: String,
}

impl Iterator for Rows {
    type Item = Result<Point, Failure>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.row == self.rows {
            return None;
        }
        let vector: std::io::Result<Vec<f32>> = self.values.by_ref().take(self.dim).collect();
        let row = self.row;
        self.row += 1;
        Some(match vector {
            Ok(v) if v.len() == self.dim => Ok(Point::new(self.start_id + row, v)),
            Ok(_) => Err(Failure::invalid(format!("{}: row {row}: the file ends early", self.name))),
            Err(e) => Err(Failure::invalid(format!("{}: row {row}: {e}", self.name))),
        })
    }
}

fn fvecs(file: File, name: String, start_id: u64) -> Result<Source, Failure> {
    let len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    if len == 0 {
        return Ok(Source { total: 0, points: Box::new(std::iter::empty()) });
    }
    let mut head = [0u8; 4];
    reader.read_exact(&mut head).map_err(|e| Failure::invalid(format!("{name}: {e}")))?;
    let dim = i32::from_le_bytes(head);
    let record = 4 + 4 * u64::try_from(dim).unwrap_or(0);
    if dim <= 0 || len % record != 0 {
        return Err(Failure::invalid(format!(
            "{name}: not an .fvecs file (first dimension {dim}, {len} bytes is not a whole number of records)"
        )));
    }
    let dim = dim as usize;
    let mut index = 0u64;
    let mut first = true;
    let points = std::iter::from_fn(move || {
        if index == len / record {
            return None;
        }
        let i = index;
        index += 1;
        if !std::mem::take(&mut first) {
            if let Err(e) = reader.read_exact(&mut head) {
                return Some(Err(Failure::invalid(format!("{name}: vector {i}: {e}"))));
            }
            if i32::from_le_bytes(head) as usize != dim {
                let d = i32::from_le_bytes(head);
                return Some(Err(Failure::invalid(format!("{name}: vector {i} has dimension {d}, the first {dim}"))));
            }
        }
        let mut bytes = vec![0u8; 4 * dim];
        if let Err(e) = reader.read_exact(&mut bytes) {
            return Some(Err(Failure::invalid(format!("{name}: vector {i}: {e}"))));
        }
        let vector = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Some(Ok(Point::new(start_id + i, vector)))
    });
    Ok(Source { total: len / record, points: Box::new(points) })
}

/// Non-empty lines of a text file (a first pass, for the total).
fn count_lines(path: &Path) -> Result<u64, Failure> {
    let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut n = 0;
    for line in reader.split(b'\n') {
        n += u64::from(!line?.iter().all(u8::is_ascii_whitespace));
    }
    Ok(n)
}

/// An id from JSON: a non-negative integer or a non-empty string.
fn json_id(v: &Value) -> Result<PointId, String> {
    match v {
        Value::Number(n) => n.as_u64().map(PointId::Num).ok_or_else(|| format!("id {n} is not a non-negative integer")),
        Value::String(s) if !s.is_empty() => Ok(PointId::Str(s.clone())),
        other => Err(format!("id {other} is not a non-negative integer or a string")),
    }
}

fn json_vector(v: &Value) -> Result<Vec<f32>, String> {
    let Value::Array(items) = v else { return Err(format!("the vector is {v}, not an array of numbers")) };
    items
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(|| format!("{x} in the vector is not a number")))
        .collect()
}

/// A JSON Lines record as a point.
fn json_point(mut obj: Map<String, Value>, fields: &Fields) -> Result<Point, String> {
    let id = json_id(&obj.remove(&fields.id).ok_or_else(|| format!("no {:?} field", fields.id))?)?;
    let vector = json_vector(&obj.remove(&fields.vector).ok_or_else(|| format!("no {:?} field", fields.vector))?)?;
    let payload = match obj.remove(&fields.payload) {
        Some(Value::Object(p)) if obj.is_empty() => Some(p),
        Some(Value::Object(_)) => {
            let extra: Vec<&String> = obj.keys().collect();
            return Err(format!(
                "fields beside id, vector and {:?}: {extra:?} (put them in the payload)",
                fields.payload
            ));
        }
        Some(Value::Null) | None => (!obj.is_empty()).then_some(obj),
        Some(other) => return Err(format!("the {:?} field is {other}, not an object", fields.payload)),
    };
    Ok(Point { id, vector, payload })
}

fn jsonl(path: &Path, file: File, name: String, fields: Fields) -> Result<Source, Failure> {
    let total = count_lines(path)?;
    let mut lines = BufReader::with_capacity(1 << 20, file).lines().enumerate();
    let points = std::iter::from_fn(move || {
        loop {
            let (i, line) = lines.next()?;
            let at = |e: String| Failure::invalid(format!("{name}:{}: {e}", i + 1));
            let line = match line {
                Ok(l) => l,
                Err(e) => return Some(Err(at(e.to_string()))),
            };
            if line.trim_ascii().is_empty() {
                continue;
            }
            return Some(match serde_json::from_str::<Value>(&line) {
                Ok(Value::Object(obj)) => json_point(obj, &fields).map_err(at),
                Ok(other) => Err(at(format!("{other} is not a JSON object"))),
                Err(e) => Err(at(format!("not JSON: {e}"))),
            });
        }
    });
    Ok(Source { total, points: Box::new(points) })
}

/// A CSV cell as a payload value: a JSON number (so `007`, `+1` or `.5` stay text) or
/// `true`/`false` typed as such, anything else text.
fn csv_value(cell: &str) -> Value {
    match serde_json::from_str::<Value>(cell) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(cell.to_owned()),
    }
}

fn csv_rows(path: &Path, file: File, name: String, fields: Fields) -> Result<Source, Failure> {
    let mut counter = csv::Reader::from_path(path).map_err(|e| Failure::invalid(format!("{name}: {e}")))?;
    let mut total = 0u64;
    let mut record = csv::ByteRecord::new();
    while counter.read_byte_record(&mut record).map_err(|e| Failure::invalid(format!("{name}: {e}")))? {
        total += 1;
    }
    let mut reader = csv::Reader::from_reader(BufReader::with_capacity(1 << 20, file));
    let headers = reader.headers().map_err(|e| Failure::invalid(format!("{name}: {e}")))?.clone();
    let column = |field: &str| {
        headers.iter().position(|h| h == field).ok_or_else(|| {
            let have: Vec<&str> = headers.iter().collect();
            Failure::invalid(format!("{name}: no {field:?} column (the header has {have:?})"))
        })
    };
    let (id_col, vector_col) = (column(&fields.id)?, column(&fields.vector)?);
    let mut records = reader.into_records();
    let points = std::iter::from_fn(move || {
        let record = records.next()?;
        let row = |e: String, line: Option<u64>| {
            Failure::invalid(format!("{name}:{}: {e}", line.map_or("?".to_owned(), |l| l.to_string())))
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => return Some(Err(row(e.to_string(), e.position().map(|p| p.line())))),
        };
        let line = record.position().map(|p| p.line());
        let id_cell = record.get(id_col).unwrap_or_default();
        if id_cell.is_empty() {
            return Some(Err(row(format!("empty {:?}", fields.id), line)));
        }
        let id = parse_id(id_cell);
        let vector = match parse_vector_text(&record.get(vector_col).unwrap_or_default().replace(';', " ")) {
            Ok(v) => v,
            Err(e) => return Some(Err(row(format!("the vector: {e}"), line))),
        };
        let payload: Map<String, Value> = headers
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|(i, (_, cell))| *i != id_col && *i != vector_col && !cell.is_empty())
            .map(|(_, (h, cell))| (h.to_owned(), csv_value(cell)))
            .collect();
        Some(Ok(Point { id, vector, payload: (!payload.is_empty()).then_some(payload) }))
    });
    Ok(Source { total, points: Box::new(points) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Fields {
        Fields { id: "id".into(), vector: "vector".into(), payload: "payload".into() }
    }

    fn read(path: &Path, kind: Kind) -> Result<Vec<Point>, Failure> {
        let source = open(path, kind, &fields(), 100)?;
        let total = source.total;
        let points = source.points.collect::<Result<Vec<_>, _>>()?;
        assert_eq!(points.len() as u64, total, "the total counted up front");
        Ok(points)
    }

    #[test]
    fn every_format_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let vectors: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32, -0.5, 1e-3 * i as f32]).collect();

        let fv = dir.path().join("v.fvecs");
        let mut bytes = Vec::new();
        for v in &vectors {
            bytes.extend_from_slice(&3i32.to_le_bytes());
            v.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
        }
        std::fs::write(&fv, &bytes).unwrap();
        let got = read(&fv, Kind::Fvecs).unwrap();
        assert_eq!(got.iter().map(|p| p.vector.clone()).collect::<Vec<_>>(), vectors);
        assert_eq!(got[4].id, PointId::Num(104), "ids from --start-id");
        std::fs::write(&fv, &bytes[..bytes.len() - 2]).unwrap();
        assert!(read(&fv, Kind::Fvecs).unwrap_err().message.contains("not an .fvecs file"));

        let npy = dir.path().join("v.npy");
        let mut out = Vec::new();
        {
            use npyz::WriterBuilder;
            let mut w =
                npyz::WriteOptions::<f64>::new().default_dtype().shape(&[5, 3]).writer(&mut out).begin_nd().unwrap();
            w.extend(vectors.iter().flatten().map(|&x| f64::from(x))).unwrap();
            w.finish().unwrap();
        }
        std::fs::write(&npy, &out).unwrap();
        let got = read(&npy, Kind::Npy).unwrap();
        assert_eq!(got.iter().map(|p| p.vector.clone()).collect::<Vec<_>>(), vectors, "float64 read as float32");

        let jl = dir.path().join("p.jsonl");
        std::fs::write(
            &jl,
            "{\"id\": 1, \"vector\": [1, 2], \"payload\": {\"a\": 1}}\n\n{\"id\": \"x\", \"vector\": [3, 4], \"tag\": \"t\"}\n",
        )
        .unwrap();
        let got = read(&jl, Kind::Jsonl).unwrap();
        assert_eq!(got[0], Point::new(1u64, vec![1.0, 2.0]).with_payload(json!({"a": 1})));
        assert_eq!(got[1], Point::new("x", vec![3.0, 4.0]).with_payload(json!({"tag": "t"})), "other fields: payload");
        std::fs::write(&jl, "{\"id\": 1, \"vector\": [1]}\n{\"id\": -3, \"vector\": [1]}\n").unwrap();
        let e = read(&jl, Kind::Jsonl).unwrap_err();
        assert!(e.message.contains("p.jsonl:2:") && e.message.contains("-3"), "{}", e.message);
        std::fs::write(&jl, "{\"id\": 1, \"vector\": [1], \"payload\": {}, \"extra\": 2}\n").unwrap();
        assert!(read(&jl, Kind::Jsonl).unwrap_err().message.contains("extra"), "never dropped silently");

        let csv = dir.path().join("p.csv");
        std::fs::write(
            &csv,
            "id,vector,n,price,ok,name,empty\n7,\"[1, 2]\",3,2.5,true,ann,\nk,1;2,-4,0,false,\"b, c\",\n",
        )
        .unwrap();
        let got = read(&csv, Kind::Csv).unwrap();
        assert_eq!(
            got[0],
            Point::new(7u64, vec![1.0, 2.0]).with_payload(json!({"n": 3, "price": 2.5, "ok": true, "name": "ann"}))
        );
        assert_eq!(
            got[1],
            Point::new("k", vec![1.0, 2.0]).with_payload(json!({"n": -4, "price": 0, "ok": false, "name": "b, c"}))
        );
        std::fs::write(&csv, "id,vector,zip\n007,[1],00123\n").unwrap();
        let got = read(&csv, Kind::Csv).unwrap();
        assert_eq!(got[0], Point::new("007", vec![1.0]).with_payload(json!({"zip": "00123"})), "text stays text");
        std::fs::write(&csv, "key,vector\n1,[1]\n").unwrap();
        assert!(read(&csv, Kind::Csv).unwrap_err().message.contains("no \"id\" column"));

        assert_eq!(Kind::of(Path::new("a.NPY")).unwrap(), Kind::Npy);
        assert_eq!(Kind::of(Path::new("a.parquet")).unwrap(), Kind::Parquet);
        assert!(Kind::of(Path::new("a.bin")).is_err());
    }
}
