//! Sorted curated lines in, Parquet files out, as upload parts: zstd, dictionary
//! encoding, statistics for every column, `time` declared as the sort order.
//!
//! Bounded memory: a row group ends at [`LakeLimits::row_group_bytes`] of NDJSON or
//! [`LakeLimits::row_group_rows`] rows, whichever comes first, and only the row group in
//! progress is held (encoded), plus the bytes of finished row groups until the caller
//! takes them as parts. A file ends at the first row group boundary past
//! [`LakeLimits::file_bytes`].

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use arrow_json::reader::{Decoder, ReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::schema::{COLUMNS, arrow_schema};

/// The sizes the writer works to. Production uses [`LakeLimits::default`]; tests shrink
/// them to cut row groups, parts and files with small inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LakeLimits {
    /// NDJSON bytes per row group (the uncompressed size, near enough).
    pub row_group_bytes: usize,
    /// Rows per row group.
    pub row_group_rows: usize,
    /// A file is closed at the first row group boundary past this many bytes.
    pub file_bytes: usize,
    /// Finished bytes are handed out as an upload part once there are this many.
    pub part_bytes: usize,
}

impl Default for LakeLimits {
    fn default() -> Self {
        Self {
            row_group_bytes: 64 * 1024 * 1024,
            row_group_rows: 1_000_000,
            file_bytes: 256 * 1024 * 1024,
            part_bytes: crate::outputs::PART_SIZE,
        }
    }
}

/// Rows that could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A curated line does not fit the lake's schema (a value of the wrong type).
    #[error("a record does not fit the lake schema: {0}")]
    Schema(String),
    /// The Parquet writer failed.
    #[error("parquet: {0}")]
    Parquet(String),
}

impl From<arrow_schema::ArrowError> for EncodeError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        EncodeError::Schema(e.to_string())
    }
}

impl From<parquet::errors::ParquetError> for EncodeError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        EncodeError::Parquet(e.to_string())
    }
}

/// What the writer has ready for the uploader.
#[derive(Debug, PartialEq, Eq)]
pub enum LakeOutput {
    /// Bytes of the current file, at least `part_bytes` of them.
    Part(Vec<u8>),
    /// The current file's last bytes (any size), and how many rows the file holds.
    FileEnd {
        /// The rest of the file, footer included.
        tail: Vec<u8>,
        /// Rows in the whole file, as its footer records them.
        rows: u64,
    },
}

/// The bytes a writer has produced and the caller has not taken yet.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The file being written.
struct OpenFile {
    writer: ArrowWriter<SharedBuffer>,
    buffer: SharedBuffer,
}

/// Turns sorted curated lines into Parquet files, as parts to upload.
pub struct LakeWriter {
    limits: LakeLimits,
    properties: WriterProperties,
    decoder: Decoder,
    file: Option<OpenFile>,
    group_bytes: usize,
    group_rows: usize,
    ready: Vec<LakeOutput>,
}

/// Rows the JSON decoder gathers before they are handed to the Parquet writer.
const DECODE_BATCH: usize = 4096;

impl LakeWriter {
    /// A writer cutting row groups, parts and files at `limits`.
    pub fn new(limits: LakeLimits) -> Result<Self, EncodeError> {
        let time_column = COLUMNS
            .iter()
            .position(|(name, _)| *name == "time")
            .unwrap_or(0) as i32;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(limits.row_group_rows))
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: time_column,
                descending: false,
                nulls_first: false,
            }]))
            .set_created_by(format!("bucketlog {}", env!("CARGO_PKG_VERSION")))
            .build();
        // Strict: a field the lake has no column for is an error, never silently dropped
        // (a new curated field must be added to the schema).
        let decoder = ReaderBuilder::new(arrow_schema())
            .with_strict_mode(true)
            .with_batch_size(DECODE_BATCH)
            .build_decoder()?;
        Ok(Self {
            limits,
            properties,
            decoder,
            file: None,
            group_bytes: 0,
            group_rows: 0,
            ready: Vec::new(),
        })
    }

    /// Adds one curated line (without its newline), in sorted order.
    pub fn push(&mut self, line: &[u8]) -> Result<(), EncodeError> {
        if self.file.is_none() {
            let buffer = SharedBuffer::default();
            let writer = ArrowWriter::try_new(
                buffer.clone(),
                arrow_schema(),
                Some(self.properties.clone()),
            )?;
            self.file = Some(OpenFile { writer, buffer });
        }
        self.feed(line)?;
        self.feed(b"\n")?;
        self.group_bytes += line.len() + 1;
        self.group_rows += 1;
        if self.group_bytes >= self.limits.row_group_bytes
            || self.group_rows >= self.limits.row_group_rows
        {
            self.end_row_group()?;
        }
        Ok(())
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), EncodeError> {
        while !bytes.is_empty() {
            let used = self.decoder.decode(bytes)?;
            bytes = &bytes[used..];
            if !bytes.is_empty() || self.decoder.len() >= DECODE_BATCH {
                self.write_decoded()?;
            }
        }
        Ok(())
    }

    fn write_decoded(&mut self) -> Result<(), EncodeError> {
        if let Some(batch) = self.decoder.flush()?
            && let Some(file) = &mut self.file
        {
            file.writer.write(&batch)?;
        }
        Ok(())
    }

    fn end_row_group(&mut self) -> Result<(), EncodeError> {
        self.write_decoded()?;
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        file.writer.flush()?;
        self.group_bytes = 0;
        self.group_rows = 0;
        if file.writer.bytes_written() >= self.limits.file_bytes {
            self.end_file()?;
        } else if file.buffer.len() >= self.limits.part_bytes {
            self.ready.push(LakeOutput::Part(file.buffer.take()));
        }
        Ok(())
    }

    fn end_file(&mut self) -> Result<(), EncodeError> {
        self.write_decoded()?;
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let metadata = file.writer.close()?;
        let rows = metadata
            .row_groups()
            .iter()
            .map(|g| g.num_rows().max(0) as u64)
            .sum();
        self.group_bytes = 0;
        self.group_rows = 0;
        self.ready.push(LakeOutput::FileEnd {
            tail: file.buffer.take(),
            rows,
        });
        Ok(())
    }

    /// What is ready to upload, in order.
    pub fn take_ready(&mut self) -> std::vec::Drain<'_, LakeOutput> {
        self.ready.drain(..)
    }

    /// Ends the last file; a writer that was given no rows produces no file.
    pub fn finish(&mut self) -> Result<(), EncodeError> {
        self.end_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(time: &str, n: u64) -> String {
        format!(
            r#"{{"bucket_owner":"o","bucket":"b","time":"{time}","http_status":403,"bytes_sent":{n},"acl_required":true,"extra_fields":["x","y"],"unparsed_fields":{{"acl_required":"Maybe"}},"source_line":{n}}}"#
        )
    }

    fn collect(limits: LakeLimits, lines: &[String]) -> Vec<LakeOutput> {
        let mut writer = LakeWriter::new(limits).unwrap();
        let mut out = Vec::new();
        for l in lines {
            writer.push(l.as_bytes()).unwrap();
            out.extend(writer.take_ready());
        }
        writer.finish().unwrap();
        out.extend(writer.take_ready());
        out
    }

    fn rows_of(outputs: &[LakeOutput]) -> Vec<u64> {
        outputs
            .iter()
            .filter_map(|o| match o {
                LakeOutput::FileEnd { rows, .. } => Some(*rows),
                LakeOutput::Part(_) => None,
            })
            .collect()
    }

    #[test]
    fn no_rows_make_no_file() {
        assert!(collect(LakeLimits::default(), &[]).is_empty());
    }

    #[test]
    fn files_are_cut_at_row_group_boundaries_and_count_every_row() {
        let lines: Vec<String> = (0..5000)
            .map(|n| record("2026-11-20T14:00:00Z", n))
            .collect();
        let limits = LakeLimits {
            row_group_bytes: 1024 * 1024,
            row_group_rows: 1000,
            file_bytes: 8 * 1024,
            part_bytes: 4 * 1024,
        };
        let outputs = collect(limits, &lines);
        let rows = rows_of(&outputs);
        assert!(rows.len() > 1, "{rows:?}");
        assert_eq!(rows.iter().sum::<u64>(), 5000);
        assert!(rows.iter().all(|r| r % 1000 == 0), "{rows:?}");
        // Each file starts with Parquet's magic and ends with it.
        let mut file = Vec::new();
        for o in &outputs {
            match o {
                LakeOutput::Part(bytes) => file.extend_from_slice(bytes),
                LakeOutput::FileEnd { tail, .. } => {
                    file.extend_from_slice(tail);
                    assert_eq!(&file[..4], b"PAR1");
                    assert_eq!(&file[file.len() - 4..], b"PAR1");
                    file.clear();
                }
            }
        }
    }

    #[test]
    fn row_groups_end_at_their_byte_bound_too() {
        let lines: Vec<String> = (0..3000)
            .map(|n| record("2026-11-20T14:00:00Z", n))
            .collect();
        let bytes_per_group = lines[0].len() * 500;
        let limits = LakeLimits {
            row_group_bytes: bytes_per_group,
            row_group_rows: 1_000_000,
            file_bytes: usize::MAX,
            part_bytes: usize::MAX,
        };
        let mut writer = LakeWriter::new(limits).unwrap();
        for l in &lines {
            writer.push(l.as_bytes()).unwrap();
        }
        let open = writer.file.as_ref().unwrap();
        let groups: Vec<i64> = open
            .writer
            .flushed_row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert!(groups.len() >= 5, "{groups:?}");
        assert!(groups.iter().all(|&n| n <= 500), "{groups:?}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_an_error_not_a_null() {
        let mut writer = LakeWriter::new(LakeLimits::default()).unwrap();
        let bad = r#"{"time":"2026-11-20T14:00:00Z","http_status":"four hundred"}"#;
        let result = writer.push(bad.as_bytes()).and_then(|()| writer.finish());
        assert!(matches!(result, Err(EncodeError::Schema(_))), "{result:?}");
        let mut writer = LakeWriter::new(LakeLimits::default()).unwrap();
        let unknown = r#"{"time":"2026-11-20T14:00:00Z","client_planet":"Mars"}"#;
        let result = writer
            .push(unknown.as_bytes())
            .and_then(|()| writer.finish());
        assert!(
            matches!(&result, Err(EncodeError::Schema(m)) if m.contains("client_planet")),
            "{result:?}"
        );
    }
}
