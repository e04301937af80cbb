//! Curated lines in, the same lines out in `time` order, in bounded memory.
//!
//! Lines are copied into one buffer until it holds [`SortLimits::buffer_bytes`]; the
//! buffer is then sorted and written to a run (a temporary file, gzip level 1), and
//! reused. At the end the runs (and what is still buffered) are merged. A partition that
//! fits the buffer, the usual case, never touches a file. Ties keep their input order, so
//! the same inputs in the same order always give the same output.
//!
//! The sort key is the record's `time` field, which the curator writes as the third
//! field, as `"time":"YYYY-MM-DDTHH:MM:SSZ"`: the first occurrence of `"time":"` in a
//! curated line is that field (the two fields before it are strings, where a quote is
//! always escaped), and RFC 3339 times in UTC with whole seconds sort as text.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};

use flate2::Compression;
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;

/// A sort key: the 20 bytes of `YYYY-MM-DDTHH:MM:SSZ`.
pub type TimeKey = [u8; 20];

/// Scratch space for one sorted run: a temporary file in the function, a `Cursor` in
/// tests.
pub trait RunFile: Read + Write + Seek + Send {}

impl<T: Read + Write + Seek + Send> RunFile for T {}

/// Opens the file for a new run.
pub type RunFactory = Box<dyn FnMut() -> io::Result<Box<dyn RunFile>> + Send>;

/// How much the sorter holds before it writes a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortLimits {
    /// Line bytes (plus a small fixed cost per line) buffered before a run is written.
    pub buffer_bytes: usize,
}

/// The bookkeeping cost of one buffered line, counted against the buffer.
const ENTRY_COST: usize = std::mem::size_of::<Entry>();

/// A line that is not a curated record: it has no `time` the sorter can read.
#[derive(Debug, thiserror::Error)]
pub enum SortError {
    /// The line has no `"time":"YYYY-MM-DDTHH:MM:SSZ"`.
    #[error("line {line} has no RFC 3339 UTC `time` field")]
    NoTime {
        /// The 1-based line number within its object.
        line: u64,
    },
    /// A run could not be written or read back.
    #[error("sort run: {0}")]
    Io(#[from] io::Error),
}

/// Finds the sort key of one curated line.
pub fn time_key(line: &[u8]) -> Option<TimeKey> {
    let at = memchr::memmem::find(line, b"\"time\":\"")? + 8;
    let value = line.get(at..at + 21)?;
    let shape = b"dddd-dd-ddTdd:dd:ddZ\"";
    let fits = value.iter().zip(shape).all(|(b, s)| match s {
        b'd' => b.is_ascii_digit(),
        other => b == other,
    });
    if !fits {
        return None;
    }
    let mut key = [0; 20];
    key.copy_from_slice(&value[..20]);
    Some(key)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: TimeKey,
    start: usize,
    end: usize,
}

/// Collects lines and gives them back sorted by time.
pub struct LineSorter {
    limits: SortLimits,
    arena: Vec<u8>,
    entries: Vec<Entry>,
    runs: Vec<Box<dyn RunFile>>,
    factory: RunFactory,
    lines: u64,
}

impl LineSorter {
    /// A sorter that writes runs to files from `factory` once `limits` are reached.
    pub fn new(limits: SortLimits, factory: RunFactory) -> Self {
        Self {
            limits,
            arena: Vec::new(),
            entries: Vec::new(),
            runs: Vec::new(),
            factory,
            lines: 0,
        }
    }

    /// Adds one line (without its newline); `number` names it in the error.
    pub fn push(&mut self, line: &[u8], number: u64) -> Result<(), SortError> {
        let key = time_key(line).ok_or(SortError::NoTime { line: number })?;
        let start = self.arena.len();
        self.arena.extend_from_slice(line);
        self.entries.push(Entry {
            key,
            start,
            end: self.arena.len(),
        });
        self.lines += 1;
        if self.arena.len() + self.entries.len() * ENTRY_COST >= self.limits.buffer_bytes {
            self.write_run()?;
        }
        Ok(())
    }

    /// Lines pushed so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Runs written to files so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn sort_buffer(&mut self) {
        // Stable: equal times keep their input order.
        self.entries.sort_by_key(|e| e.key);
    }

    fn write_run(&mut self) -> Result<(), SortError> {
        self.sort_buffer();
        let mut file = (self.factory)()?;
        {
            let mut gz = GzEncoder::new(&mut file, Compression::new(1));
            for e in &self.entries {
                let line = &self.arena[e.start..e.end];
                gz.write_all(&e.key)?;
                gz.write_all(&(line.len() as u32).to_le_bytes())?;
                gz.write_all(line)?;
            }
            gz.finish()?;
        }
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        self.arena.clear();
        self.entries.clear();
        Ok(())
    }

    /// Every line pushed, in time order.
    pub fn finish(mut self) -> Result<SortedLines, SortError> {
        self.sort_buffer();
        let mut sources = Vec::with_capacity(self.runs.len() + 1);
        for file in self.runs.drain(..) {
            sources.push(Source::Run(Box::new(RunReader::new(file))));
        }
        let memory = Source::Memory {
            arena: std::mem::take(&mut self.arena),
            entries: std::mem::take(&mut self.entries).into_iter(),
        };
        // The buffer holds the last lines pushed, so it is the last source: ties between
        // sources keep input order when sources are taken in order.
        sources.push(memory);
        let mut merged = SortedLines {
            sources,
            heap: BinaryHeap::new(),
            current: Vec::new(),
        };
        for index in 0..merged.sources.len() {
            merged.advance(index)?;
        }
        Ok(merged)
    }
}

/// A run read back: key, length, line, repeated, gzip-compressed.
struct RunReader {
    reader: BufReader<MultiGzDecoder<BufReader<Box<dyn RunFile>>>>,
    line: Vec<u8>,
}

impl RunReader {
    fn new(file: Box<dyn RunFile>) -> Self {
        Self {
            reader: BufReader::with_capacity(
                64 * 1024,
                MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, file)),
            ),
            line: Vec::new(),
        }
    }

    fn next(&mut self) -> io::Result<Option<TimeKey>> {
        if self.reader.fill_buf()?.is_empty() {
            return Ok(None);
        }
        let mut key = [0; 20];
        self.reader.read_exact(&mut key)?;
        let mut len = [0; 4];
        self.reader.read_exact(&mut len)?;
        self.line.resize(u32::from_le_bytes(len) as usize, 0);
        self.reader.read_exact(&mut self.line)?;
        Ok(Some(key))
    }
}

enum Source {
    Run(Box<RunReader>),
    Memory {
        arena: Vec<u8>,
        entries: std::vec::IntoIter<Entry>,
    },
}

/// The head of one source in the merge: ordered by time, then by source index.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    key: TimeKey,
    source: usize,
    start: usize,
    end: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.key, self.source).cmp(&(other.key, other.source))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The merged lines, taken one at a time.
pub struct SortedLines {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<Head>>,
    current: Vec<u8>,
}

impl SortedLines {
    fn advance(&mut self, index: usize) -> io::Result<()> {
        let head = match &mut self.sources[index] {
            Source::Run(run) => run.next()?.map(|key| Head {
                key,
                source: index,
                start: 0,
                end: 0,
            }),
            Source::Memory { entries, .. } => entries.next().map(|e| Head {
                key: e.key,
                source: index,
                start: e.start,
                end: e.end,
            }),
        };
        if let Some(head) = head {
            self.heap.push(Reverse(head));
        }
        Ok(())
    }

    /// The next line in time order, or `None` after the last.
    pub fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        let Some(Reverse(head)) = self.heap.pop() else {
            return Ok(None);
        };
        self.current.clear();
        match &self.sources[head.source] {
            Source::Run(run) => self.current.extend_from_slice(&run.line),
            Source::Memory { arena, .. } => {
                self.current.extend_from_slice(&arena[head.start..head.end])
            }
        }
        self.advance(head.source)?;
        Ok(Some(&self.current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn line(time: &str, n: u32) -> String {
        format!(r#"{{"bucket_owner":"o","bucket":"b","time":"{time}","n":{n}}}"#)
    }

    fn memory_runs() -> RunFactory {
        Box::new(|| Ok(Box::new(Cursor::new(Vec::new())) as Box<dyn RunFile>))
    }

    fn sorted(lines: &[String], buffer_bytes: usize) -> (Vec<String>, usize) {
        let mut sorter = LineSorter::new(SortLimits { buffer_bytes }, memory_runs());
        for (i, l) in lines.iter().enumerate() {
            sorter.push(l.as_bytes(), i as u64 + 1).unwrap();
        }
        let runs = sorter.runs();
        let mut out = Vec::new();
        let mut merged = sorter.finish().unwrap();
        while let Some(l) = merged.next_line().unwrap() {
            out.push(String::from_utf8(l.to_vec()).unwrap());
        }
        (out, runs)
    }

    fn input() -> Vec<String> {
        let times = [
            "2026-11-20T14:05:09Z",
            "2026-11-20T14:01:00Z",
            "2026-11-20T14:05:09Z",
            "2026-11-20T14:59:59Z",
            "2026-11-20T14:00:00Z",
            "2026-11-20T14:01:00Z",
        ];
        (0..60)
            .map(|i| line(times[i % times.len()], i as u32))
            .collect()
    }

    fn expected(lines: &[String]) -> Vec<String> {
        let mut want = lines.to_vec();
        want.sort_by_key(|l| time_key(l.as_bytes()).unwrap());
        want
    }

    #[test]
    fn a_partition_that_fits_is_sorted_stably_without_runs() {
        let lines = input();
        let (out, runs) = sorted(&lines, 1 << 20);
        assert_eq!(runs, 0);
        assert_eq!(out, expected(&lines));
    }

    #[test]
    fn runs_merge_to_the_same_order_as_one_stable_sort() {
        let lines = input();
        let (out, runs) = sorted(&lines, 300);
        assert!(runs > 5, "{runs} runs");
        assert_eq!(out, expected(&lines));
    }

    #[test]
    fn a_line_without_a_time_is_named() {
        let mut sorter = LineSorter::new(
            SortLimits {
                buffer_bytes: 1 << 20,
            },
            memory_runs(),
        );
        let err = sorter.push(br#"{"time":"yesterday"}"#, 7).unwrap_err();
        assert!(matches!(err, SortError::NoTime { line: 7 }), "{err}");
        assert!(time_key(br#"{"bucket":"a\"time\":\"2026"}"#).is_none());
    }
}
