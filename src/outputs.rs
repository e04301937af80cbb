//! Routing curated records to Athena partitions and cutting the output into upload parts.
//! Pure: records in, [`OutputChunk`]s out; the pipeline uploads the chunks. The only
//! outside thing it touches is a [`Spill`] the caller hands it (a temporary file in the
//! function, an in-memory cursor in tests).
//!
//! Layout: `{curated}bucket={source bucket}/dt={YYYY-MM-DD}/hour={HH}/{name}.ndjson.zst`
//! (`.ndjson.gz` or `.ndjson` with the other [`OutputCompression`]s),
//! by each record's own event time, where `{name}` is the log object's file name and a
//! short hash of its full key (see [`crate::logkey::output_name`]). Rejected lines go to
//! one object per log object under `{rejected}` (see [`OutputPlan`]). Every key derives
//! from the log object alone, so a retry overwrites rather than duplicates.
//!
//! **One object per partition per log object, whatever the record order.** A partition's
//! output is buffered until the end of the log object, or cut into multipart parts of at
//! least [`PART_SIZE`] bytes as it grows; it is never closed early. Only [`OPEN_MEMBERS`]
//! partitions have a compressor at a time: when another partition needs one, the least
//! recently used partition's *member* (a zstd frame, or a gzip member) is finished and
//! the compressor is reset and reused. A partition that comes back starts a new member
//! appended to the same output. Both formats allow concatenated members: `zstd -d`,
//! DuckDB, Arrow and Athena read frames in a row as one stream, and gzip, `zcat`,
//! Python's `gzip`, DuckDB and Athena do the same for gzip members.
//!
//! **Bounded memory, whatever the record order.** All partitions' buffered (compressed)
//! bytes share one budget ([`BUFFER_BUDGET`], counted as allocated capacity). A partition
//! that reaches [`PART_SIZE`] is cut into a part at once. When the total passes the budget,
//! the largest buffers are moved to the [`Spill`] (largest first) until the total is at
//! most half the budget; they come back when their partition reaches a part or at the end.
//! The space of bytes read back is reused, so the spill holds at most the bytes still
//! waiting, which is below `PART_SIZE` per partition and never more than the output.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::codec::MemberEncoder;
use crate::config::OutputCompression;
use crate::curate::{CurationSink, Rejected};
use crate::enrich::Enriched;
use crate::recent::RecentAnswers;

/// The size at which an output's buffer is cut into an upload part: S3's minimum part size.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// The bytes all of one log object's output buffers may hold (allocated capacity) before
/// the largest are spilled: room for three partitions close to a part, well inside a
/// 128 MB function next to the runtime, the SDK and the alert detectors.
pub const BUFFER_BUDGET: usize = 16 * 1024 * 1024;

/// How many partitions have a compressor at once: more than S3's usual few minutes
/// per log object (and the five-way interleaving the tests use) need, few enough that the
/// compressors' state (about 300 KiB each for gzip, about 1.3 MiB for zstd, plus
/// [`crate::codec::STAGE_BYTES`] of gathered records) stays small.
pub const OPEN_MEMBERS: usize = 8;

/// The bucket partition used when a record has no bucket field.
pub const UNKNOWN_BUCKET: &str = "_unknown";

/// The longest bucket partition value: S3's longest bucket name. Longer values (only
/// S3-compatible stores or hostile lines have them) keep a prefix and a hash.
pub const MAX_BUCKET_PARTITION: usize = 63;

/// The longest `bucket=…/dt=YYYY-MM-DD/hour=HH/` part of any output key, so that names
/// can be fitted to S3's key limit before any record is seen.
pub const MAX_PARTITION_PATH: usize =
    "bucket=".len() + MAX_BUCKET_PARTITION + "/dt=YYYY-MM-DD/hour=HH/".len();

/// Where one log object's outputs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPlan {
    /// `CURATED_PREFIX`.
    pub curated_prefix: String,
    /// The full key of the rejected-lines object.
    pub rejected_key: String,
    /// The output file name (without suffix), unique to the log object, reused for every
    /// output.
    pub name: String,
    /// Output compression.
    pub compression: OutputCompression,
}

/// The sizes the router works to. Production uses [`Limits::default`]; tests shrink them
/// to exercise cutting and spilling with small inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A partition's buffer is cut into a part at this size ([`PART_SIZE`]).
    pub part_size: usize,
    /// All buffers together ([`BUFFER_BUDGET`]); must exceed `part_size`.
    pub budget: usize,
    /// Open compressed members, zstd frames or gzip members ([`OPEN_MEMBERS`]).
    pub open_members: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            part_size: PART_SIZE,
            budget: BUFFER_BUDGET,
            open_members: OPEN_MEMBERS,
        }
    }
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
    /// Emitted only by [`OutputRouter::finish`], once per output.
    Last {
        /// The output key.
        key: String,
        /// The rest of the object.
        bytes: Vec<u8>,
        /// How many records (or rejected lines) the whole object holds.
        records: u64,
    },
}

/// Random-access scratch space for buffers over the budget: a temporary file in the
/// function (`/tmp` on Lambda), a `Cursor<Vec<u8>>` in tests.
pub trait Spill: Send {
    /// Writes `bytes` at `offset` (at most the current end).
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Fills `buf` from `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl<T: Read + Write + Seek + Send> Spill for T {
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.seek(SeekFrom::Start(offset))?;
        self.write_all(bytes)
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.seek(SeekFrom::Start(offset))?;
        self.read_exact(buf)
    }
}

/// Opens the spill the first time one is needed.
pub type SpillFactory = Box<dyn FnMut() -> io::Result<Box<dyn Spill>> + Send>;

/// What the router did, for the log line and the tests' bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Output objects (partitions and the rejects) so far.
    pub outputs: usize,
    /// Buffered bytes (capacity) now.
    pub buffered: usize,
    /// The most buffered bytes (capacity) seen between two records.
    pub peak_buffered: usize,
    /// Bytes moved to the spill.
    pub spilled: u64,
    /// The spill's size: its largest offset written.
    pub spill_size: u64,
    /// Compressed members (zstd frames or gzip members) started (more than `outputs` when
    /// partitions took turns).
    pub members: u64,
    /// Parts cut before the end.
    pub parts: u64,
}

#[derive(Debug, Clone, Copy)]
struct Extent {
    offset: u64,
    len: u64,
}

/// The spill and its free space.
struct SpillSpace {
    file: Box<dyn Spill>,
    end: u64,
    free: Vec<Extent>,
}

impl SpillSpace {
    /// Writes `bytes` into free space (reused first), appending the extents to `into`.
    fn store(&mut self, mut bytes: &[u8], into: &mut Vec<Extent>) -> io::Result<()> {
        while !bytes.is_empty() {
            let want = bytes.len() as u64;
            let extent = match self.free.pop() {
                Some(free) if free.len > want => {
                    self.free.push(Extent {
                        offset: free.offset + want,
                        len: free.len - want,
                    });
                    Extent {
                        offset: free.offset,
                        len: want,
                    }
                }
                Some(free) => free,
                None => {
                    let extent = Extent {
                        offset: self.end,
                        len: want,
                    };
                    self.end += want;
                    extent
                }
            };
            let (now, rest) = bytes.split_at(extent.len as usize);
            self.file.write_at(extent.offset, now)?;
            bytes = rest;
            match into.last_mut() {
                Some(last) if last.offset + last.len == extent.offset => last.len += extent.len,
                _ => into.push(extent),
            }
        }
        Ok(())
    }

    /// Appends the bytes of `extents` to `out` and frees them.
    fn load(&mut self, extents: &mut Vec<Extent>, out: &mut Vec<u8>) -> io::Result<()> {
        for extent in extents.drain(..) {
            let start = out.len();
            out.resize(start + extent.len as usize, 0);
            self.file.read_at(extent.offset, &mut out[start..])?;
            self.free.push(extent);
        }
        Ok(())
    }
}

/// Which output a partition is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Curated { bucket: Box<str>, unix_hour: i64 },
    Rejected,
}

/// One output being built.
struct Partition {
    target: Target,
    records: u64,
    /// Bytes not yet cut or spilled; they follow the spilled ones.
    buf: Vec<u8>,
    spilled: Vec<Extent>,
    spilled_len: u64,
    /// The compressor slot of its open member.
    slot: Option<usize>,
}

impl Partition {
    fn pending(&self) -> u64 {
        self.spilled_len + self.buf.len() as u64
    }
}

/// How many (bucket, hour) → partition answers the router keeps at hand.
const RECENT_PARTITIONS: usize = 4;

/// A reusable compressor and the partition whose member it is writing.
struct Slot {
    encoder: MemberEncoder,
    owner: Option<usize>,
    last_used: u64,
}

/// Routes curated and rejected records into partitioned, part-sized output chunks.
pub struct OutputRouter {
    plan: OutputPlan,
    limits: Limits,
    partitions: Vec<Partition>,
    /// Curated partitions by bucket, then hour.
    index: HashMap<Box<str>, HashMap<i64, usize>>,
    rejected: Option<usize>,
    /// The partitions recent records went to, by their bucket as logged and their hour:
    /// most records go to one of a few, found without re-checking the name or hashing.
    recent: RecentAnswers<(i64, usize), RECENT_PARTITIONS>,
    slots: Vec<Slot>,
    spill: Option<SpillSpace>,
    spill_factory: Option<SpillFactory>,
    ready: VecDeque<OutputChunk>,
    stats: RouterStats,
    clock: u64,
    error: Option<io::Error>,
}

impl OutputRouter {
    /// A router for one log object with the production limits and no spill: buffers over
    /// the budget then stay in memory (the CLI and tests with small inputs).
    pub fn new(plan: OutputPlan) -> Self {
        Self::with_limits(plan, Limits::default(), None)
    }

    /// A router with explicit limits and a spill for buffers over the budget.
    pub fn with_limits(plan: OutputPlan, limits: Limits, spill: Option<SpillFactory>) -> Self {
        Self {
            plan,
            limits,
            partitions: Vec::new(),
            index: HashMap::new(),
            rejected: None,
            recent: RecentAnswers::default(),
            slots: Vec::new(),
            spill: None,
            spill_factory: spill,
            ready: VecDeque::new(),
            stats: RouterStats::default(),
            clock: 0,
            error: None,
        }
    }

    /// What the router has done so far.
    pub fn stats(&self) -> RouterStats {
        self.stats
    }

    /// Chunks ready to upload, oldest first (only [`OutputChunk::Part`]s before the end).
    pub fn take_ready(&mut self) -> impl Iterator<Item = OutputChunk> + '_ {
        self.ready.drain(..)
    }

    /// The first encoding or spill error, if any.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Closes every output. The chunks come one at a time, so only one output's last
    /// bytes are in memory at once: first any parts not yet taken, then one
    /// [`OutputChunk::Last`] per output, in the order the outputs were opened.
    pub fn finish(mut self) -> io::Result<Finishing> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        for s in 0..self.slots.len() {
            self.close_member(s)?;
        }
        self.slots.clear();
        Ok(Finishing {
            router: self,
            next: 0,
        })
    }

    fn route_curated(&mut self, record: &Enriched<'_>, json: &[u8]) -> io::Result<()> {
        let logged = record.record.bucket.unwrap_or(UNKNOWN_BUCKET);
        let unix_hour = record.record.time.unix_seconds().div_euclid(3600);
        let i = match self.recent.find(logged, |&(hour, _)| hour == unix_hour) {
            Some(&(_, i)) => i,
            None => {
                let i = self.curated_index(&partition_safe(logged), unix_hour);
                self.recent.remember(logged, (unix_hour, i));
                i
            }
        };
        self.write(i, json)
    }

    fn route_rejected(&mut self, json: &[u8]) -> io::Result<()> {
        let i = match self.rejected {
            Some(i) => i,
            None => {
                let i = self.open(Target::Rejected);
                self.rejected = Some(i);
                i
            }
        };
        self.write(i, json)
    }

    /// The partition for `bucket` (made [`partition_safe`]) at `unix_hour`, opened if new.
    fn curated_index(&mut self, bucket: &str, unix_hour: i64) -> usize {
        let found = self
            .index
            .get(bucket)
            .and_then(|hours| hours.get(&unix_hour));
        match found {
            Some(&i) => i,
            None => {
                let i = self.open(Target::Curated {
                    bucket: bucket.into(),
                    unix_hour,
                });
                self.index
                    .entry(bucket.into())
                    .or_default()
                    .insert(unix_hour, i);
                i
            }
        }
    }

    fn open(&mut self, target: Target) -> usize {
        self.partitions.push(Partition {
            target,
            records: 0,
            buf: Vec::new(),
            spilled: Vec::new(),
            spilled_len: 0,
            slot: None,
        });
        self.stats.outputs += 1;
        self.partitions.len() - 1
    }

    /// Appends one line to partition `i`, then cuts a part or spills as the limits say.
    fn write(&mut self, i: usize, json: &[u8]) -> io::Result<()> {
        match self.plan.compression {
            OutputCompression::None => {
                let p = &mut self.partitions[i];
                let (cap, limit) = (p.buf.capacity(), self.limits.part_size);
                grow(&mut p.buf, json.len() + 1, limit);
                p.buf.extend_from_slice(json);
                p.buf.push(b'\n');
                self.stats.buffered = self.stats.buffered - cap + p.buf.capacity();
            }
            OutputCompression::Gzip | OutputCompression::Zstd => {
                let s = self.member_slot(i)?;
                let slot = &mut self.slots[s];
                slot.encoder.push_record(json)?;
                let out = slot.encoder.output_mut();
                if !out.is_empty() {
                    let p = &mut self.partitions[i];
                    append(&mut p.buf, out, self.limits.part_size, &mut self.stats);
                    out.clear();
                }
            }
        }
        self.partitions[i].records += 1;
        if self.partitions[i].pending() >= self.limits.part_size as u64 {
            self.cut_part(i)?;
        }
        if self.stats.buffered > self.limits.budget {
            self.spill_largest()?;
        }
        self.stats.peak_buffered = self.stats.peak_buffered.max(self.stats.buffered);
        Ok(())
    }

    /// The compressor slot writing partition `i`'s current member; starts a member,
    /// finishing the least recently used one if every slot is taken.
    fn member_slot(&mut self, i: usize) -> io::Result<usize> {
        self.clock += 1;
        if let Some(s) = self.partitions[i].slot {
            self.slots[s].last_used = self.clock;
            return Ok(s);
        }
        let s = if self.slots.len() < self.limits.open_members.max(1) {
            let encoder = match self.plan.compression {
                OutputCompression::Zstd => MemberEncoder::zstd()?,
                _ => MemberEncoder::gzip(),
            };
            self.slots.push(Slot {
                encoder,
                owner: None,
                last_used: 0,
            });
            self.slots.len() - 1
        } else {
            let lru = (0..self.slots.len())
                .min_by_key(|&s| self.slots[s].last_used)
                .unwrap_or(0);
            self.close_member(lru)?;
            lru
        };
        let slot = &mut self.slots[s];
        slot.owner = Some(i);
        slot.last_used = self.clock;
        self.partitions[i].slot = Some(s);
        self.stats.members += 1;
        Ok(s)
    }

    /// Finishes the member slot `s` is writing (gzip: deflate end, CRC-32 and length;
    /// zstd: the frame's end) into its partition, and resets the compressor for reuse.
    fn close_member(&mut self, s: usize) -> io::Result<()> {
        let slot = &mut self.slots[s];
        let Some(owner) = slot.owner.take() else {
            return Ok(());
        };
        slot.encoder.finish_member()?;
        let out = slot.encoder.output_mut();
        let p = &mut self.partitions[owner];
        p.slot = None;
        append(&mut p.buf, out, self.limits.part_size, &mut self.stats);
        out.clear();
        Ok(())
    }

    /// Queues everything partition `i` holds as one upload part.
    ///
    /// A partition that filled one part is likely to fill the next, so its new buffer is
    /// allocated at a part's size at once, when the budget has room for it: grown from
    /// empty, it would be copied a dozen times on the way (every part's bytes twice over).
    fn cut_part(&mut self, i: usize) -> io::Result<()> {
        let bytes = self.take_pending(i)?;
        self.stats.parts += 1;
        let key = self.key(i);
        self.ready.push_back(OutputChunk::Part { key, bytes });
        let whole_part = self.limits.part_size + PART_SLACK;
        if self.stats.buffered + whole_part <= self.limits.budget {
            let p = &mut self.partitions[i];
            p.buf.reserve_exact(whole_part);
            self.stats.buffered += p.buf.capacity();
        }
        Ok(())
    }

    /// Everything partition `i` holds, spilled bytes first; its buffer is left empty.
    fn take_pending(&mut self, i: usize) -> io::Result<Vec<u8>> {
        let p = &mut self.partitions[i];
        self.stats.buffered -= p.buf.capacity();
        let buf = std::mem::take(&mut p.buf);
        if p.spilled.is_empty() {
            return Ok(buf);
        }
        let mut bytes = Vec::with_capacity(p.spilled_len as usize + buf.len());
        if let Some(spill) = self.spill.as_mut() {
            spill.load(&mut p.spilled, &mut bytes)?;
        }
        p.spilled_len = 0;
        bytes.extend_from_slice(&buf);
        Ok(bytes)
    }

    /// Moves the largest buffers to the spill until at most half the budget is buffered.
    /// Without a spill, the buffers stay (only the CLI and small tests run without one).
    fn spill_largest(&mut self) -> io::Result<()> {
        if self.spill.is_none() {
            let Some(factory) = self.spill_factory.as_mut() else {
                return Ok(());
            };
            tracing::info!(
                budget = self.limits.budget,
                "output buffers over budget: spilling the largest to a temporary file"
            );
            self.spill = Some(SpillSpace {
                file: factory()?,
                end: 0,
                free: Vec::new(),
            });
        }
        let Some(spill) = self.spill.as_mut() else {
            return Ok(());
        };
        let mut order: Vec<usize> = (0..self.partitions.len())
            .filter(|&i| !self.partitions[i].buf.is_empty())
            .collect();
        order.sort_unstable_by_key(|&i| Reverse(self.partitions[i].buf.capacity()));
        for i in order {
            if self.stats.buffered <= self.limits.budget / 2 {
                break;
            }
            let p = &mut self.partitions[i];
            spill.store(&p.buf, &mut p.spilled)?;
            p.spilled_len += p.buf.len() as u64;
            self.stats.spilled += p.buf.len() as u64;
            self.stats.buffered -= p.buf.capacity();
            p.buf = Vec::new();
        }
        self.stats.spill_size = spill.end;
        Ok(())
    }

    /// The output key of partition `i`.
    fn key(&self, i: usize) -> String {
        let (bucket, unix_hour) = match &self.partitions[i].target {
            Target::Rejected => return self.plan.rejected_key.clone(),
            Target::Curated { bucket, unix_hour } => (bucket, *unix_hour),
        };
        let hour = crate::access_log::LogTime::from_unix_seconds(unix_hour * 3600).utc();
        format!(
            "{}bucket={}/dt={:04}-{:02}-{:02}/hour={:02}/{}{}",
            self.plan.curated_prefix,
            bucket,
            hour.year,
            hour.month,
            hour.day,
            hour.hour,
            self.plan.name,
            self.plan.compression.suffix()
        )
    }
}

/// Appends `bytes` to a partition buffer, growing it within bounds and counting the
/// capacity it adds.
fn append(buf: &mut Vec<u8>, bytes: &[u8], part_size: usize, stats: &mut RouterStats) {
    let cap = buf.capacity();
    grow(buf, bytes.len(), part_size);
    buf.extend_from_slice(bytes);
    stats.buffered = stats.buffered - cap + buf.capacity();
}

/// Room past a part's size that a buffer may take: the part is cut after the record (or
/// compressed block) that crosses it.
const PART_SLACK: usize = 64 * 1024;

/// Makes room for `additional` bytes: by half again (from 256 bytes), but never far past
/// a part, where the buffer is cut, so no buffer doubles to twice a part.
fn grow(buf: &mut Vec<u8>, additional: usize, part_size: usize) {
    let needed = buf.len() + additional;
    if needed <= buf.capacity() {
        return;
    }
    let ceiling = (part_size + PART_SLACK).max(needed);
    let target = (buf.capacity() + buf.capacity() / 2)
        .max(256)
        .max(needed)
        .min(ceiling);
    buf.reserve_exact(target - buf.len());
}

/// The outputs of a finished router, one [`OutputChunk`] at a time.
pub struct Finishing {
    router: OutputRouter,
    next: usize,
}

impl Finishing {
    /// What the router did, now that every member is finished.
    pub fn stats(&self) -> RouterStats {
        self.router.stats
    }
}

impl Iterator for Finishing {
    type Item = io::Result<OutputChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(chunk) = self.router.ready.pop_front() {
            return Some(Ok(chunk));
        }
        let i = self.next;
        if i >= self.router.partitions.len() {
            return None;
        }
        self.next += 1;
        let records = self.router.partitions[i].records;
        let key = self.router.key(i);
        Some(self.router.take_pending(i).map(|bytes| OutputChunk::Last {
            key,
            bytes,
            records,
        }))
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
/// S3-compatible stores allow more; anything outside `[A-Za-z0-9._-]` becomes `_`, and a
/// value longer than [`MAX_BUCKET_PARTITION`] keeps its start and a hash of the whole.
pub fn partition_safe(bucket: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let mut value = if bucket.chars().all(safe) {
        Cow::Borrowed(bucket)
    } else {
        Cow::Owned(
            bucket
                .chars()
                .map(|c| if safe(c) { c } else { '_' })
                .collect(),
        )
    };
    if value.len() > MAX_BUCKET_PARTITION {
        let hash = crate::logkey::short_hash(bucket);
        let keep = MAX_BUCKET_PARTITION - hash.len() - 1;
        // Only ASCII is left, so any byte offset is a character boundary.
        value = Cow::Owned(format!("{}-{hash}", &value[..keep]));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::parse_line;
    use crate::enrich::Lineage;
    use std::collections::BTreeMap;
    use std::io::{Cursor, Read};

    fn line(bucket: &str, time: &str) -> String {
        format!(
            r#"owner {bucket} [{time} +0000] 192.0.2.1 - REQ REST.GET.OBJECT k "GET /k HTTP/1.1" 200 - 1 1 1 1 "-" "curl/8" -"#
        )
    }

    fn plan(compression: OutputCompression) -> OutputPlan {
        OutputPlan {
            curated_prefix: "curated/".into(),
            rejected_key: "rejected/x.ndjson.gz".into(),
            name: "2026-11-20-14-05-12-ABC.0123456789ab".into(),
            compression,
        }
    }

    fn memory_spill() -> Option<SpillFactory> {
        Some(Box::new(|| {
            Ok(Box::new(Cursor::new(Vec::new())) as Box<dyn Spill>)
        }))
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

    fn finish(router: OutputRouter) -> Vec<OutputChunk> {
        router
            .finish()
            .unwrap()
            .collect::<io::Result<Vec<_>>>()
            .unwrap()
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

    fn gunzip(bytes: &[u8]) -> String {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn records_go_to_their_own_hour_and_bucket() {
        let mut router = OutputRouter::new(plan(OutputCompression::None));
        feed(&mut router, &line("b1", "20/Nov/2026:14:59:59"));
        feed(&mut router, &line("b1", "20/Nov/2026:15:00:00"));
        feed(&mut router, &line("b2", "20/Nov/2026:14:00:00"));
        feed(&mut router, &line("b1", "20/Nov/2026:14:30:00"));
        let mut keys = last_keys(&finish(router));
        keys.sort();
        let key = |p: &str| format!("curated/{p}/2026-11-20-14-05-12-ABC.0123456789ab.ndjson");
        assert_eq!(
            keys,
            vec![
                (key("bucket=b1/dt=2026-11-20/hour=14"), 2),
                (key("bucket=b1/dt=2026-11-20/hour=15"), 1),
                (key("bucket=b2/dt=2026-11-20/hour=14"), 1),
            ]
        );
    }

    #[test]
    fn partitions_taking_turns_still_give_one_gzip_object_each() {
        // Twelve partitions in turn, with compressors for only two: each partition's
        // output is many gzip members in one object, never a second object.
        let limits = Limits {
            open_members: 2,
            ..Limits::default()
        };
        let mut router =
            OutputRouter::with_limits(plan(OutputCompression::Gzip), limits, memory_spill());
        for round in 0..50 {
            for h in 0..12 {
                let text = line("b", &format!("20/Nov/2026:{h:02}:{round:02}:00"));
                feed(&mut router, &text);
            }
        }
        assert_eq!(router.take_ready().count(), 0, "nothing is closed early");
        let finishing = router.finish().unwrap();
        let stats = finishing.stats();
        let chunks = finishing.collect::<io::Result<Vec<_>>>().unwrap();
        assert_eq!(chunks.len(), 12);
        assert_eq!(stats.outputs, 12);
        assert_eq!(stats.members, 600, "every record started a member");
        for chunk in chunks {
            let OutputChunk::Last {
                key,
                bytes,
                records,
            } = chunk
            else {
                panic!("a part")
            };
            assert_eq!(records, 50);
            let text = gunzip(&bytes);
            assert_eq!(text.lines().count(), 50, "{key}");
            assert!(text.lines().all(|l| l.contains(" [20/Nov/2026:")));
        }
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
        assert!(router.stats().peak_buffered <= BUFFER_BUDGET);
        for chunk in finish(router) {
            if let OutputChunk::Last { bytes, records, .. } = chunk {
                assert_eq!(records, expected_lines);
                object.extend(bytes);
            }
        }
        assert_eq!(gunzip(&object).lines().count() as u64, expected_lines);
    }

    #[test]
    fn over_the_budget_the_largest_buffers_spill_and_come_back_in_order() {
        let limits = Limits {
            part_size: 8 * 1024,
            budget: 16 * 1024,
            open_members: 1,
        };
        let mut router =
            OutputRouter::with_limits(plan(OutputCompression::None), limits, memory_spill());
        let mut expected: Vec<Vec<String>> = vec![Vec::new(); 40];
        let mut objects: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut rng = crate::generate::SplitMix64::new(7);
        for n in 0..4_000 {
            let h = rng.below(40) as usize;
            let text = line(
                "b",
                &format!("{:02}/Nov/2026:{:02}:00:00", 1 + h / 24, h % 24),
            );
            let json = format!(
                "{{\"n\":{n},\"pad\":\"{}\"}}",
                "x".repeat(rng.below(300) as usize)
            );
            feed_json(&mut router, &text, json.as_bytes());
            expected[h].push(json);
            assert!(
                router.stats().buffered <= limits.budget,
                "{:?}",
                router.stats()
            );
            for chunk in router.take_ready() {
                let OutputChunk::Part { key, bytes } = chunk else {
                    panic!("a last chunk before the end")
                };
                assert!(bytes.len() >= limits.part_size);
                objects.entry(key).or_default().extend(bytes);
            }
        }
        let stats = router.stats();
        assert!(stats.spilled > 0 && stats.parts > 0, "{stats:?}");
        // Space read back for parts is reused: the spill is smaller than what went in.
        assert!(stats.spill_size < stats.spilled, "{stats:?}");
        let mut lasts = 0;
        for chunk in finish(router) {
            if let OutputChunk::Last { key, bytes, .. } = chunk {
                objects.entry(key).or_default().extend(bytes);
                lasts += 1;
            }
        }
        assert_eq!(lasts, 40);
        for (h, lines) in expected.iter().enumerate() {
            let key = format!(
                "curated/bucket=b/dt=2026-11-{:02}/hour={:02}/2026-11-20-14-05-12-ABC.0123456789ab.ndjson",
                1 + h / 24,
                h % 24
            );
            let text = String::from_utf8(objects[&key].clone()).unwrap();
            assert_eq!(
                text.lines().collect::<Vec<_>>(),
                *lines,
                "{key}: order kept"
            );
        }
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
        let chunks = finish(router);
        assert_eq!(last_keys(&chunks), vec![("rejected/x.ndjson.gz".into(), 2)]);
        let OutputChunk::Last { bytes, .. } = &chunks[0] else {
            panic!("a part")
        };
        assert_eq!(gunzip(bytes), "{\"a\":1}\n{\"a\":2}\n");
    }

    #[test]
    fn partition_values_are_made_safe() {
        assert_eq!(partition_safe("my.bucket-1"), "my.bucket-1");
        assert_eq!(partition_safe("we/ird name"), "we_ird_name");
        let long = "b".repeat(200);
        let safe = partition_safe(&long);
        assert_eq!(safe.len(), MAX_BUCKET_PARTITION);
        assert_ne!(safe, partition_safe(&"b".repeat(201)));
    }
}
