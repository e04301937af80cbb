//! Routing curated records to Athena partitions and cutting the output into upload parts.
//! Pure: records in, [`OutputChunk`]s out; the pipeline uploads the chunks.
//!
//! Layout: `{curated}bucket={source bucket}/dt={YYYY-MM-DD}/hour={HH}/{log name}.ndjson.gz`,
//! by each record's own event time. Rejected lines go to one object per log object under
//! `{rejected}` with the same naming (see [`OutputPlan`]). Every key derives from the log
//! object alone, so a retry overwrites rather than duplicates.
//!
//! Memory is bounded: each open partition buffers at most one part ([`PART_SIZE`], after
//! compression), and at most [`MAX_OPEN_PARTITIONS`] are open at once. A log object whose
//! records span more partitions than that (rare: S3 delivers a few minutes per object)
//! closes the least recently used one; if that partition comes back, it continues in
//! `{log name}.2.ndjson.gz`, `.3`, and so on, which is still deterministic.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, Write};

use flate2::write::GzEncoder;

use crate::config::OutputCompression;
use crate::curate::{CurationSink, Rejected};
use crate::enrich::Enriched;

/// The size at which an output's buffer is cut into an upload part: S3's minimum part size.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// How many curated partitions one log object may have open at once.
pub const MAX_OPEN_PARTITIONS: usize = 4;

/// gzip level for outputs: level 1 still compresses this NDJSON about 7:1 (BENCHMARKS.md)
/// and is the cheapest level in CPU time, which is what Lambda bills for.
pub const GZIP_LEVEL: u32 = 1;

/// The bucket partition used when a record has no bucket field.
pub const UNKNOWN_BUCKET: &str = "_unknown";

/// Where one log object's outputs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPlan {
    /// `CURATED_PREFIX`.
    pub curated_prefix: String,
    /// The full key of the rejected-lines object.
    pub rejected_key: String,
    /// The log object's file name, reused for every output.
    pub name: String,
    /// Output compression.
    pub compression: OutputCompression,
}

/// A piece of output ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    /// A full part of `key`; more parts follow.
    Part {
        /// The output key.
        key: String,
        /// At least [`PART_SIZE`] bytes.
        bytes: Vec<u8>,
    },
    /// The final bytes of `key` (possibly empty when earlier parts hold everything).
    Last {
        /// The output key.
        key: String,
        /// The rest of the object.
        bytes: Vec<u8>,
        /// How many records (or rejected lines) the whole object holds.
        records: u64,
    },
}

enum Encoder {
    Gzip(Box<GzEncoder<Vec<u8>>>),
    Plain(Vec<u8>),
}

impl Encoder {
    fn new(compression: OutputCompression) -> Self {
        match compression {
            OutputCompression::Gzip => Encoder::Gzip(Box::new(GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_LEVEL),
            ))),
            OutputCompression::None => Encoder::Plain(Vec::new()),
        }
    }

    fn write_line(&mut self, json: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(json)?;
                e.write_all(b"\n")
            }
            Encoder::Plain(v) => {
                v.extend_from_slice(json);
                v.push(b'\n');
                Ok(())
            }
        }
    }

    fn buffered(&self) -> usize {
        match self {
            Encoder::Gzip(e) => e.get_ref().len(),
            Encoder::Plain(v) => v.len(),
        }
    }

    fn take_buffer(&mut self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => std::mem::take(e.get_mut()),
            Encoder::Plain(v) => std::mem::take(v),
        }
    }

    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Plain(v) => Ok(v),
        }
    }
}

struct OpenOutput {
    key: String,
    encoder: Encoder,
    records: u64,
}

impl OpenOutput {
    fn new(key: String, compression: OutputCompression) -> Self {
        Self {
            key,
            encoder: Encoder::new(compression),
            records: 0,
        }
    }

    fn write(&mut self, json: &[u8], ready: &mut VecDeque<OutputChunk>) -> io::Result<()> {
        self.encoder.write_line(json)?;
        self.records += 1;
        if self.encoder.buffered() >= PART_SIZE {
            ready.push_back(OutputChunk::Part {
                key: self.key.clone(),
                bytes: self.encoder.take_buffer(),
            });
        }
        Ok(())
    }

    fn close(self) -> io::Result<OutputChunk> {
        Ok(OutputChunk::Last {
            key: self.key,
            records: self.records,
            bytes: self.encoder.finish()?,
        })
    }
}

/// One curated partition: source bucket and hour.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionId {
    bucket: String,
    unix_hour: i64,
}

struct Partition {
    id: PartitionId,
    output: OpenOutput,
    last_used: u64,
}

/// Routes curated and rejected records into partitioned, part-sized output chunks.
pub struct OutputRouter {
    plan: OutputPlan,
    open: Vec<Partition>,
    /// How many times each partition has been opened, to name continuations.
    generations: Vec<(PartitionId, u32)>,
    rejected: Option<OpenOutput>,
    ready: VecDeque<OutputChunk>,
    clock: u64,
    error: Option<io::Error>,
}

impl OutputRouter {
    /// A router for one log object.
    pub fn new(plan: OutputPlan) -> Self {
        Self {
            plan,
            open: Vec::with_capacity(MAX_OPEN_PARTITIONS),
            generations: Vec::new(),
            rejected: None,
            ready: VecDeque::new(),
            clock: 0,
            error: None,
        }
    }

    /// Chunks ready to upload, oldest first.
    pub fn take_ready(&mut self) -> impl Iterator<Item = OutputChunk> + '_ {
        self.ready.drain(..)
    }

    /// The first encoding error, if any (writing to memory does not fail in practice).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Closes every output; the returned chunks end with one [`OutputChunk::Last`] per key.
    pub fn finish(mut self) -> io::Result<Vec<OutputChunk>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut chunks: Vec<OutputChunk> = self.ready.drain(..).collect();
        for partition in self.open.drain(..) {
            chunks.push(partition.output.close()?);
        }
        if let Some(rejected) = self.rejected.take() {
            chunks.push(rejected.close()?);
        }
        Ok(chunks)
    }

    fn partition_key(&self, id: &PartitionId, generation: u32) -> String {
        let hour = crate::access_log::LogTime::from_unix_seconds(id.unix_hour * 3600).utc();
        let continuation = if generation > 1 {
            format!(".{generation}")
        } else {
            String::new()
        };
        format!(
            "{}bucket={}/dt={:04}-{:02}-{:02}/hour={:02}/{}{}{}",
            self.plan.curated_prefix,
            id.bucket,
            hour.year,
            hour.month,
            hour.day,
            hour.hour,
            self.plan.name,
            continuation,
            self.plan.compression.suffix()
        )
    }

    /// The index of the open partition for `bucket` at `unix_hour`, opening it if needed.
    fn partition_index(&mut self, bucket: &str, unix_hour: i64) -> io::Result<usize> {
        if let Some(i) = self
            .open
            .iter()
            .position(|p| p.id.unix_hour == unix_hour && p.id.bucket == bucket)
        {
            return Ok(i);
        }
        if self.open.len() >= MAX_OPEN_PARTITIONS {
            let lru = self
                .open
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.last_used)
                .map_or(0, |(i, _)| i);
            let evicted = self.open.swap_remove(lru);
            self.ready.push_back(evicted.output.close()?);
        }
        let id = PartitionId {
            bucket: bucket.to_string(),
            unix_hour,
        };
        let generation = match self.generations.iter_mut().find(|(g, _)| *g == id) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.generations.push((id.clone(), 1));
                1
            }
        };
        let key = self.partition_key(&id, generation);
        self.open.push(Partition {
            id,
            output: OpenOutput::new(key, self.plan.compression),
            last_used: self.clock,
        });
        Ok(self.open.len() - 1)
    }

    fn route_curated(&mut self, record: &Enriched<'_>, json: &[u8]) -> io::Result<()> {
        let bucket = record
            .record
            .bucket
            .map_or(Cow::Borrowed(UNKNOWN_BUCKET), partition_safe);
        let unix_hour = record.record.time.unix_seconds().div_euclid(3600);
        let i = self.partition_index(&bucket, unix_hour)?;
        self.clock += 1;
        let partition = &mut self.open[i];
        partition.last_used = self.clock;
        partition.output.write(json, &mut self.ready)
    }

    fn route_rejected(&mut self, json: &[u8]) -> io::Result<()> {
        let plan = &self.plan;
        let rejected = self
            .rejected
            .get_or_insert_with(|| OpenOutput::new(plan.rejected_key.clone(), plan.compression));
        rejected.write(json, &mut self.ready)
    }
}

impl CurationSink for OutputRouter {
    fn curated(&mut self, record: &Enriched<'_>, json: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.route_curated(record, json)
        {
            self.error = Some(e);
        }
    }

    fn rejected(&mut self, _rejected: &Rejected<'_>, json: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.route_rejected(json)
        {
            self.error = Some(e);
        }
    }
}

/// Makes a bucket name safe as a Hive partition value: S3 bucket names already are, but
/// S3-compatible stores allow more; anything outside `[A-Za-z0-9._-]` becomes `_`.
pub fn partition_safe(bucket: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if bucket.chars().all(safe) {
        return Cow::Borrowed(bucket);
    }
    Cow::Owned(
        bucket
            .chars()
            .map(|c| if safe(c) { c } else { '_' })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::parse_line;
    use crate::enrich::Lineage;
    use std::io::Read;

    fn line(bucket: &str, time: &str) -> String {
        format!(
            r#"owner {bucket} [{time} +0000] 192.0.2.1 - REQ REST.GET.OBJECT k "GET /k HTTP/1.1" 200 - 1 1 1 1 "-" "curl/8" -"#
        )
    }

    fn plan(compression: OutputCompression) -> OutputPlan {
        OutputPlan {
            curated_prefix: "curated/".into(),
            rejected_key: "rejected/x.ndjson.gz".into(),
            name: "2026-11-20-14-05-12-ABC".into(),
            compression,
        }
    }

    fn feed(router: &mut OutputRouter, text: &str) {
        feed_json(router, text, text.as_bytes());
    }

    /// Routes the record parsed from `text` (for its bucket and time) with `json` as output.
    fn feed_json(router: &mut OutputRouter, text: &str, json: &[u8]) {
        let record = parse_line(text).unwrap();
        let enriched = Enriched::new(
            record,
            Lineage {
                source_object: None,
                source_line: 1,
            },
            false,
        );
        router.curated(&enriched, json);
    }

    fn last_keys(chunks: &[OutputChunk]) -> Vec<(String, u64)> {
        chunks
            .iter()
            .filter_map(|c| match c {
                OutputChunk::Last { key, records, .. } => Some((key.clone(), *records)),
                OutputChunk::Part { .. } => None,
            })
            .collect()
    }

    #[test]
    fn records_go_to_their_own_hour_and_bucket() {
        let mut router = OutputRouter::new(plan(OutputCompression::None));
        feed(&mut router, &line("b1", "20/Nov/2026:14:59:59"));
        feed(&mut router, &line("b1", "20/Nov/2026:15:00:00"));
        feed(&mut router, &line("b2", "20/Nov/2026:14:00:00"));
        feed(&mut router, &line("b1", "20/Nov/2026:14:30:00"));
        let mut keys = last_keys(&router.finish().unwrap());
        keys.sort();
        assert_eq!(
            keys,
            vec![
                (
                    "curated/bucket=b1/dt=2026-11-20/hour=14/2026-11-20-14-05-12-ABC.ndjson".into(),
                    2
                ),
                (
                    "curated/bucket=b1/dt=2026-11-20/hour=15/2026-11-20-14-05-12-ABC.ndjson".into(),
                    1
                ),
                (
                    "curated/bucket=b2/dt=2026-11-20/hour=14/2026-11-20-14-05-12-ABC.ndjson".into(),
                    1
                ),
            ]
        );
    }

    #[test]
    fn too_many_partitions_evict_the_least_recent_and_continue_deterministically() {
        let mut router = OutputRouter::new(plan(OutputCompression::None));
        for h in 0..=MAX_OPEN_PARTITIONS {
            feed(
                &mut router,
                &line("b", &format!("20/Nov/2026:{h:02}:00:00")),
            );
        }
        // Hour 00 was evicted when the fifth hour opened; it comes back as `.2`.
        let evicted = last_keys(&router.take_ready().collect::<Vec<_>>());
        assert_eq!(
            evicted,
            vec![(
                "curated/bucket=b/dt=2026-11-20/hour=00/2026-11-20-14-05-12-ABC.ndjson".into(),
                1
            )]
        );
        feed(&mut router, &line("b", "20/Nov/2026:00:30:00"));
        let keys = last_keys(&router.finish().unwrap());
        assert!(keys.contains(&(
            "curated/bucket=b/dt=2026-11-20/hour=00/2026-11-20-14-05-12-ABC.2.ndjson".into(),
            1
        )));
        // Reopening hour 00 evicted hour 01, the least recent; every key appears once.
        assert_eq!(keys.len(), MAX_OPEN_PARTITIONS + 1);
        let mut unique: Vec<_> = keys.iter().map(|(k, _)| k.clone()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
    }

    #[test]
    fn big_outputs_are_cut_into_parts_and_reassemble_to_valid_gzip() {
        let mut router = OutputRouter::new(plan(OutputCompression::Gzip));
        let text = line("b", "20/Nov/2026:14:00:00");
        // Incompressible-ish payload so the compressed buffer passes PART_SIZE quickly.
        let mut rng = crate::generate::SplitMix64::new(1);
        let mut parts = 0;
        let mut object = Vec::new();
        let mut expected_lines = 0;
        while parts < 2 {
            let noise: String = (0..2000)
                .map(|_| char::from(b'a' + (rng.below(26) as u8)))
                .collect();
            let json = format!("{{\"noise\":\"{noise}\"}}");
            feed_json(&mut router, &text, json.as_bytes());
            expected_lines += 1;
            for chunk in router.take_ready() {
                if let OutputChunk::Part { bytes, .. } = chunk {
                    assert!(bytes.len() >= PART_SIZE);
                    object.extend(bytes);
                    parts += 1;
                }
            }
        }
        for chunk in router.finish().unwrap() {
            if let OutputChunk::Last { bytes, records, .. } = chunk {
                assert_eq!(records, expected_lines);
                object.extend(bytes);
            }
        }
        let mut text = String::new();
        flate2::read::GzDecoder::new(&object[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count() as u64, expected_lines);
    }

    #[test]
    fn rejected_lines_share_one_object() {
        let mut router = OutputRouter::new(plan(OutputCompression::Gzip));
        let raw = b"junk";
        let rejected = Rejected {
            lineage: Lineage {
                source_object: None,
                source_line: 3,
            },
            reason: crate::curate::RejectReason::LineTooLong { limit: 1 },
            raw,
            truncated: false,
        };
        router.rejected(&rejected, b"{\"a\":1}");
        router.rejected(&rejected, b"{\"a\":2}");
        assert_eq!(
            last_keys(&router.finish().unwrap()),
            vec![("rejected/x.ndjson.gz".into(), 2)]
        );
    }

    #[test]
    fn partition_values_are_made_safe() {
        assert_eq!(partition_safe("my.bucket-1"), "my.bucket-1");
        assert_eq!(partition_safe("we/ird name"), "we_ird_name");
    }
}
