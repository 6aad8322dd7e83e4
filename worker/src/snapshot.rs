//! A shard snapshot as a file, so no snapshot is ever held in memory whole: the leader
//! writes one page of points at a time into an unnamed temporary file (it disappears
//! when the last handle closes, crash or not), openraft sends it in chunks, and the
//! follower receives the chunks into a file of its own and restores from it one page
//! at a time.
//!
//! Format: frames of `u32` little-endian length, `u32` CRC-32 of the body, and a
//! MessagePack body — first the shard's config, then pages of points, then an empty
//! frame marking the end. [`SnapshotReader::new`] checks every frame's length and
//! checksum and the end marker before anything is restored, so a truncated or damaged
//! file is refused and the replica it was meant for stays as it was.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use vectron_common::raft::codec::{decode, encode};
use vectron_engine::{Point, ShardConfig};

/// Why a snapshot file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("snapshot file I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("snapshot file is corrupt: {0}")]
    Corrupt(String),
}

/// Largest frame accepted when reading (a page of points is far smaller).
const MAX_FRAME: u32 = 1 << 30;

/// An unnamed file in `dir` for a snapshot.
pub fn temp_file(dir: &Path) -> Result<File, SnapshotFileError> {
    std::fs::create_dir_all(dir)?;
    Ok(tempfile::tempfile_in(dir)?)
}

/// Writes a snapshot into a file, a page at a time.
pub struct SnapshotWriter {
    out: BufWriter<File>,
    bytes: u64,
}

impl SnapshotWriter {
    /// Starts a snapshot of a shard with `config` in `file`.
    pub fn new(file: File, config: &ShardConfig) -> Result<SnapshotWriter, SnapshotFileError> {
        let mut w = SnapshotWriter { out: BufWriter::with_capacity(1 << 20, file), bytes: 0 };
        w.frame(config)?;
        Ok(w)
    }

    fn frame<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SnapshotFileError> {
        let body = encode(value).map_err(|e| SnapshotFileError::Corrupt(e.to_string()))?;
        let len = u32::try_from(body.len())
            .ok()
            .filter(|&l| l <= MAX_FRAME)
            .ok_or_else(|| SnapshotFileError::Corrupt(format!("a frame of {} bytes", body.len())))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&crc32fast::hash(&body).to_le_bytes())?;
        self.out.write_all(&body)?;
        self.bytes += 8 + body.len() as u64;
        Ok(())
    }

    pub fn page(&mut self, points: &[Point]) -> Result<(), SnapshotFileError> {
        if points.is_empty() { Ok(()) } else { self.frame(points) }
    }

    /// Ends the snapshot; returns the file rewound to its start, and its size.
    pub fn finish(mut self) -> Result<(File, u64), SnapshotFileError> {
        self.out.write_all(&0u32.to_le_bytes())?;
        self.out.write_all(&crc32fast::hash(&[]).to_le_bytes())?;
        self.bytes += 8;
        let mut file = self.out.into_inner().map_err(|e| SnapshotFileError::Io(e.into_error()))?;
        file.flush()?;
        file.seek(SeekFrom::Start(0))?;
        Ok((file, self.bytes))
    }
}

/// Reads a snapshot back: its config, then its pages.
pub struct SnapshotReader {
    input: BufReader<File>,
    done: bool,
}

fn truncated(e: std::io::Error) -> SnapshotFileError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => SnapshotFileError::Corrupt("truncated".into()),
        _ => e.into(),
    }
}

/// One frame's body (empty for the end marker), its length and checksum checked.
fn read_frame(input: &mut impl Read, body: &mut Vec<u8>) -> Result<(), SnapshotFileError> {
    let mut head = [0u8; 8];
    input.read_exact(&mut head).map_err(truncated)?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len > MAX_FRAME {
        return Err(SnapshotFileError::Corrupt(format!("a frame of {len} bytes")));
    }
    body.resize(len as usize, 0);
    input.read_exact(body).map_err(truncated)?;
    if crc32fast::hash(body) != crc {
        return Err(SnapshotFileError::Corrupt("checksum mismatch".into()));
    }
    Ok(())
}

impl SnapshotReader {
    /// Opens the snapshot in `file` after checking all of it (every frame's length and
    /// checksum, and the end marker); returns the shard's config.
    pub fn new(mut file: File) -> Result<(SnapshotReader, ShardConfig), SnapshotFileError> {
        file.seek(SeekFrom::Start(0))?;
        let mut check = BufReader::with_capacity(1 << 20, &mut file);
        let mut body = Vec::new();
        let mut frames = 0u64;
        loop {
            read_frame(&mut check, &mut body)?;
            if body.is_empty() {
                break;
            }
            frames += 1;
        }
        if frames == 0 {
            return Err(SnapshotFileError::Corrupt("no shard config".into()));
        }
        file.seek(SeekFrom::Start(0))?;
        let mut r = SnapshotReader { input: BufReader::with_capacity(1 << 20, file), done: false };
        let config = r.frame()?.ok_or_else(|| SnapshotFileError::Corrupt("no shard config".into()))?;
        Ok((r, config))
    }

    fn frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, SnapshotFileError> {
        let mut body = Vec::new();
        read_frame(&mut self.input, &mut body)?;
        if body.is_empty() {
            return Ok(None);
        }
        decode(&body).map(Some).map_err(|e| SnapshotFileError::Corrupt(e.to_string()))
    }

    /// The next page of points; `None` at the end marker.
    pub fn next_page(&mut self) -> Result<Option<Vec<Point>>, SnapshotFileError> {
        if self.done {
            return Ok(None);
        }
        let page = self.frame()?;
        self.done = page.is_none();
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use vectron_engine::{Distance, PointId};

    use super::*;

    fn page(ids: std::ops::Range<u64>) -> Vec<Point> {
        ids.map(|i| Point { id: PointId::Num(i), vector: vec![i as f32, 0.5], payload: None }).collect()
    }

    #[test]
    fn pages_round_trip_and_damaged_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = ShardConfig::new(2, Distance::Cosine);
        let mut w = SnapshotWriter::new(temp_file(dir.path()).unwrap(), &config).unwrap();
        let pages = [page(0..3), page(3..4), page(10..20)];
        for p in &pages {
            w.page(p).unwrap();
        }
        w.page(&[]).unwrap();
        let (file, bytes) = w.finish().unwrap();
        assert_eq!(file.metadata().unwrap().len(), bytes);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the file has no name");

        let (mut r, read_config) = SnapshotReader::new(file.try_clone().unwrap()).unwrap();
        assert_eq!(read_config, config);
        let mut got = Vec::new();
        while let Some(p) = r.next_page().unwrap() {
            got.push(p);
        }
        assert_eq!(got, pages);
        assert!(r.next_page().unwrap().is_none());

        // Cut anywhere before the end marker: refused, never a partial restore.
        for cut in [0, 3, 10, bytes - 1] {
            file.set_len(cut).unwrap();
            let outcome = SnapshotReader::new(file.try_clone().unwrap()).and_then(|(mut r, _)| while_pages(&mut r));
            assert!(matches!(outcome, Err(SnapshotFileError::Corrupt(_))), "cut at {cut}: {outcome:?}");
        }
    }

    fn while_pages(r: &mut SnapshotReader) -> Result<(), SnapshotFileError> {
        while r.next_page()?.is_some() {}
        Ok(())
    }
}
