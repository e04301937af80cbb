//! Turning framed lines into curated records and rejected lines, with nothing lost: every
//! non-blank line ends up in exactly one of the two, and both carry their lineage.

use std::borrow::Cow;
use std::sync::Arc;

use crate::access_log::{ParseError, parse_line_counting_quotes};
use crate::enrich::{Enriched, KeyScratch, Lineage, UserAgentCache};
use crate::geo::{ClientLookups, ClientNetwork, NetworkCache};
use crate::json::{ObjectWriter, key, render_field};
use crate::json_record::{JsonReject, looks_like_json, parse_json_record};
use crate::lines::Line;
use crate::scan::scan_line;

/// Receives framed lines; implemented by [`Curator`] and by anything that wants raw lines.
pub trait LineHandler {
    /// Handles one line.
    fn line(&mut self, line: Line<'_>);
}

/// Where curated and rejected records go, already rendered as one JSON object each.
pub trait CurationSink {
    /// A line that parsed; `json` is its NDJSON rendering without the newline.
    fn curated(&mut self, record: &Enriched<'_>, json: &[u8]);
    /// A line that did not parse; `json` is its rendering without the newline.
    fn rejected(&mut self, rejected: &Rejected<'_>, json: &[u8]);

    /// A buffer to render the next curated record straight into, saving a copy; when
    /// this gives one, the curator appends the record's JSON and a newline to it and calls
    /// [`CurationSink::curated_in_buffer`] instead of [`CurationSink::curated`].
    fn curated_buffer(&mut self) -> Option<&mut Vec<u8>> {
        None
    }

    /// A curated record was appended, newline included, to [`CurationSink::curated_buffer`].
    fn curated_in_buffer(&mut self, _record: &Enriched<'_>) {}
}

/// Why a line was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The line is not an access log record.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The line is longer than the framer's limit; `raw` holds its first `limit` bytes.
    #[error("line_too_long: longer than {limit} bytes")]
    LineTooLong {
        /// The framer's limit in bytes.
        limit: usize,
    },
    /// The line starts with `{` but is not a JSON record (AWS's structured delivery).
    #[error(transparent)]
    Json(#[from] JsonReject),
}

impl RejectReason {
    /// A stable, machine-readable code for the reason.
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::Parse(e) => e.kind.code(),
            RejectReason::LineTooLong { .. } => "line_too_long",
            RejectReason::Json(e) => e.code(),
        }
    }
}

/// A rejected line with everything needed to find it and reprocess it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected<'a> {
    /// Where the line came from.
    pub lineage: Lineage<'a>,
    /// Why it was rejected.
    pub reason: RejectReason,
    /// The line's bytes exactly as read (cut to the limit when too long).
    pub raw: &'a [u8],
    /// True when `raw` was cut.
    pub truncated: bool,
}

impl Rejected<'_> {
    /// Appends this rejected line as one JSON object (no newline) to `out`.
    ///
    /// `raw` is the line as text (invalid UTF-8 shown as U+FFFD); when the line is not valid
    /// UTF-8, `raw_base64` carries its exact bytes so nothing is lost.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let text = String::from_utf8_lossy(self.raw);
        let mut o = ObjectWriter::new(out);
        if let Some(source) = self.lineage.source_object {
            o.str(key!("source_object"), Some(source));
        }
        o.u64(key!("source_line"), Some(self.lineage.source_line));
        o.str(key!("error"), Some(&self.reason.to_string()));
        o.str(key!("error_kind"), Some(self.reason.code()));
        let (field, column) = match self.reason {
            RejectReason::Parse(e) => (Some(e.field.name()), Some(e.column as u64)),
            RejectReason::LineTooLong { .. } => (None, None),
            RejectReason::Json(e) => (e.field().map(|f| f.name()), e.column().map(|c| c as u64)),
        };
        o.str(key!("field"), field);
        o.u64(key!("column"), column);
        o.str(key!("raw"), Some(&text));
        if let Cow::Owned(_) = text {
            o.str(key!("raw_base64"), Some(&base64(self.raw)));
        }
        if self.truncated {
            o.bool(key!("truncated"), Some(true));
        }
        o.finish();
    }
}

/// Counts of what happened to the lines of one input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CurationStats {
    /// Lines read, including blank ones.
    pub lines: u64,
    /// Lines that became curated records.
    pub records: u64,
    /// Lines that became rejected records.
    pub rejected: u64,
    /// Blank lines, skipped.
    pub blank: u64,
}

/// Parses, enriches and renders each line, handing the results to a [`CurationSink`].
#[derive(Debug)]
pub struct Curator<S> {
    sink: S,
    source_object: Option<String>,
    json: Vec<u8>,
    stats: CurationStats,
    max_line_len: usize,
    user_agents: UserAgentCache,
    key_scratch: KeyScratch,
    /// The current line's spaces, one bit per byte (from [`scan_line`]).
    spaces: Vec<u64>,
    /// The `source_object` field, rendered once for every record.
    source_object_json: Option<Vec<u8>>,
    /// The client databases (none by default: every client field is null).
    lookups: Arc<ClientLookups>,
    /// This object's address lookups, bounded.
    networks: NetworkCache,
}

impl<S: CurationSink> Curator<S> {
    /// A curator for one input; `source_object` is recorded as each record's lineage.
    pub fn new(sink: S, source_object: Option<String>) -> Self {
        let source_object_json = source_object
            .as_deref()
            .map(|source| render_field(key!("source_object"), source));
        Self {
            source_object_json,
            sink,
            source_object,
            json: Vec::with_capacity(4096),
            stats: CurationStats::default(),
            max_line_len: crate::lines::DEFAULT_MAX_LINE_LEN,
            user_agents: UserAgentCache::default(),
            key_scratch: KeyScratch::default(),
            spaces: Vec::new(),
            lookups: Arc::new(ClientLookups::none()),
            networks: NetworkCache::default(),
        }
    }

    /// Looks every record's `remote_ip` up in these databases (`GEOIP_DB`, `ASN_DB`).
    pub fn with_lookups(mut self, lookups: Arc<ClientLookups>) -> Self {
        self.lookups = lookups;
        self
    }

    /// What has happened to the lines so far.
    pub fn stats(&self) -> CurationStats {
        self.stats
    }

    /// The sink, for draining output between chunks.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Gives the sink back once the input is done.
    pub fn into_sink(self) -> S {
        self.sink
    }
}

impl<S: CurationSink> LineHandler for Curator<S> {
    fn line(&mut self, line: Line<'_>) {
        self.stats.lines += 1;
        if line.bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) && !line.truncated {
            self.stats.blank += 1;
            return;
        }
        self.json.clear();
        let reason = if line.truncated {
            RejectReason::LineTooLong {
                limit: self.max_line_len,
            }
        } else {
            // One pass tells both whether the line is ASCII (so valid UTF-8 without a
            // second look) and what escaping its fields may need. Invalid UTF-8 becomes
            // U+FFFD, which is neither a quote, a backslash nor a control character, so the
            // scan of the raw bytes holds for the lossy text too.
            let scan = scan_line(line.bytes, &mut self.spaces);
            let (text, lossy) = match ascii_str(line.bytes, scan.ascii) {
                Some(s) => (Cow::Borrowed(s), false),
                None => match std::str::from_utf8(line.bytes) {
                    Ok(s) => (Cow::Borrowed(s), false),
                    Err(_) => (String::from_utf8_lossy(line.bytes), true),
                },
            };
            // A line starting with `{` is a JSON record (AWS's structured delivery). If it
            // is not one JSON object it may still be a text record whose first field starts
            // with `{` (a provider's owner ID): the text parser decides, and if it refuses
            // too, the JSON reason is the one reported.
            let mut not_json = None;
            if looks_like_json(line.bytes) {
                match self.json_line(&text, line.number, lossy) {
                    Ok(()) => return,
                    Err(reason @ JsonReject::NotAnObject { .. }) => not_json = Some(reason),
                    Err(reason) => {
                        self.reject(reason.into(), line);
                        return;
                    }
                }
            }
            let lineage = Lineage {
                source_object: self.source_object.as_deref(),
                source_line: line.number,
            };
            // The space bitmap is of the raw bytes: it fits the text only if nothing was
            // replaced.
            let spaces = (!lossy).then_some(&self.spaces[..]);
            match parse_line_counting_quotes(&text, spaces) {
                Ok((record, delimiter_quotes)) => {
                    let clean = !scan.has_backslash_or_control && scan.quotes == delimiter_quotes;
                    let mut enriched = Enriched::with_cache(
                        record,
                        lineage,
                        lossy,
                        &mut self.user_agents,
                        &mut self.key_scratch,
                    );
                    enriched.client = client_network(&self.lookups, &mut self.networks, &enriched);
                    self.stats.records += 1;
                    let rendered = Rendered {
                        sink: &mut self.sink,
                        json: &mut self.json,
                        source_object_json: self.source_object_json.as_deref(),
                    };
                    rendered.curated(&enriched, clean);
                    return;
                }
                Err(e) => not_json.map_or(RejectReason::Parse(e), RejectReason::Json),
            }
        };
        self.reject(reason, line);
    }
}

impl<S: CurationSink> Curator<S> {
    /// Renders a rejected line and hands it to the sink.
    fn reject(&mut self, reason: RejectReason, line: Line<'_>) {
        let lineage = Lineage {
            source_object: self.source_object.as_deref(),
            source_line: line.number,
        };
        let rejected = Rejected {
            lineage,
            reason,
            raw: line.bytes,
            truncated: line.truncated,
        };
        self.json.clear();
        rejected.write_json(&mut self.json);
        self.stats.rejected += 1;
        self.sink.rejected(&rejected, &self.json);
    }

    /// A JSON record (AWS's structured delivery, see [`crate::json_record`]) becomes a
    /// curated record like a text line; its fields may hold anything, so every one is
    /// escaped as needed.
    fn json_line(&mut self, text: &str, source_line: u64, lossy: bool) -> Result<(), JsonReject> {
        let parsed = parse_json_record(text)?;
        let lineage = Lineage {
            source_object: self.source_object.as_deref(),
            source_line,
        };
        let (record, leftovers) = parsed.to_log_record()?;
        let mut enriched =
            Enriched::from_json(record, &leftovers, lineage, lossy, &mut self.user_agents);
        enriched.client = client_network(&self.lookups, &mut self.networks, &enriched);
        self.stats.records += 1;
        let rendered = Rendered {
            sink: &mut self.sink,
            json: &mut self.json,
            source_object_json: self.source_object_json.as_deref(),
        };
        rendered.curated(&enriched, false);
        Ok(())
    }
}

/// What the databases say about the record's client; nothing is looked up without them.
#[inline(always)]
fn client_network(
    lookups: &ClientLookups,
    networks: &mut NetworkCache,
    record: &Enriched<'_>,
) -> Option<ClientNetwork> {
    if lookups.is_empty() {
        return None;
    }
    networks.lookup(lookups, record.record.remote_ip?)
}

/// The parts of a [`Curator`] a curated record is rendered with, borrowed apart from the
/// caches the record itself borrows.
struct Rendered<'c, S> {
    sink: &'c mut S,
    json: &'c mut Vec<u8>,
    source_object_json: Option<&'c [u8]>,
}

impl<S: CurationSink> Rendered<'_, S> {
    /// Renders `enriched` straight into the sink's buffer when it offers one, else into
    /// the curator's own; `clean` is [`Enriched::write_json_trusting`]'s promise.
    #[inline(always)]
    fn curated(self, enriched: &Enriched<'_>, clean: bool) {
        if let Some(out) = self.sink.curated_buffer() {
            enriched.write_json_trusting(out, clean, self.source_object_json);
            out.push(b'\n');
            self.sink.curated_in_buffer(enriched);
        } else {
            self.json.clear();
            enriched.write_json_trusting(self.json, clean, self.source_object_json);
            self.sink.curated(enriched, self.json);
        }
    }
}

/// `bytes` as text when `ascii` says (from [`scan_line`]) that every byte is ASCII.
fn ascii_str(bytes: &[u8], ascii: bool) -> Option<&str> {
    if !ascii {
        return None;
    }
    debug_assert!(bytes.is_ascii());
    // SAFETY: `scan_line` found no byte of 0x80 or above, and ASCII is valid UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// Standard base64 with padding, for the exact bytes of non-UTF-8 rejected lines.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A sink that keeps everything in memory: for tests and small inputs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CollectingSink {
    /// Curated records, one JSON object per line, each ending in `\n`.
    pub curated: Vec<u8>,
    /// Rejected lines, one JSON object per line, each ending in `\n`.
    pub rejected: Vec<u8>,
}

impl CurationSink for CollectingSink {
    fn curated(&mut self, _record: &Enriched<'_>, json: &[u8]) {
        self.curated.extend_from_slice(json);
        self.curated.push(b'\n');
    }

    fn rejected(&mut self, _rejected: &Rejected<'_>, json: &[u8]) {
        self.rejected.extend_from_slice(json);
        self.rejected.push(b'\n');
    }
}

/// A sink that writes NDJSON to two writers, keeping the first write error for later:
/// the curator cannot stop mid-line, so the caller checks [`WriterSink::take_error`].
/// Curated records are rendered straight into a buffer of its own, handed to the
/// writer in large pieces; what is left is written by [`WriterSink::finish`], or when
/// the sink is dropped.
#[derive(Debug)]
pub struct WriterSink<C: std::io::Write, R> {
    curated: Pending<C>,
    rejected: R,
    error: Option<std::io::Error>,
}

/// How much curated output [`WriterSink`] gathers before writing it.
const PENDING_BYTES: usize = 1 << 18;

/// Bytes waiting for a writer, written on drop unless a write already failed.
#[derive(Debug)]
struct Pending<W: std::io::Write> {
    /// `None` only once given back by [`Pending::into_inner`].
    writer: Option<W>,
    buffer: Vec<u8>,
    failed: bool,
}

impl<W: std::io::Write> Pending<W> {
    /// Writes the buffer out; an error is returned once and stops later writes.
    fn write_out(&mut self) -> std::io::Result<()> {
        let result = match (&mut self.writer, self.failed) {
            (Some(writer), false) => writer.write_all(&self.buffer),
            _ => Ok(()),
        };
        self.buffer.clear();
        self.failed |= result.is_err();
        result
    }

    /// Writes the buffer out and gives the writer back.
    fn into_inner(mut self) -> std::io::Result<Option<W>> {
        self.write_out()?;
        Ok(self.writer.take())
    }
}

impl<W: std::io::Write> Drop for Pending<W> {
    fn drop(&mut self) {
        // Like `BufWriter`: a sink dropped without `finish` still writes what it holds,
        // and an error here has nowhere to go.
        let _ = self.write_out();
    }
}

impl<C: std::io::Write, R: std::io::Write> WriterSink<C, R> {
    /// Curated records go to `curated`, rejected lines to `rejected`.
    pub fn new(curated: C, rejected: R) -> Self {
        Self {
            curated: Pending {
                writer: Some(curated),
                buffer: Vec::with_capacity(PENDING_BYTES + (PENDING_BYTES >> 2)),
                failed: false,
            },
            rejected,
            error: None,
        }
    }

    /// The first write error, if any; once one happened, later records were not written.
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }

    /// Writes out what is pending, flushes both writers and gives them back.
    pub fn finish(mut self) -> std::io::Result<(C, R)> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut curated = self
            .curated
            .into_inner()?
            .ok_or_else(|| std::io::Error::other("curated writer already given back"))?;
        curated.flush()?;
        self.rejected.flush()?;
        Ok((curated, self.rejected))
    }

    /// Hands pending curated output to its writer once there is enough of it.
    fn write_out_if_full(&mut self) {
        if self.curated.buffer.len() >= PENDING_BYTES
            && let Err(e) = self.curated.write_out()
        {
            self.error.get_or_insert(e);
        }
    }
}

impl<C: std::io::Write, R: std::io::Write> CurationSink for WriterSink<C, R> {
    fn curated(&mut self, _record: &Enriched<'_>, json: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.curated.buffer.extend_from_slice(json);
        self.curated.buffer.push(b'\n');
        self.write_out_if_full();
    }

    fn rejected(&mut self, _rejected: &Rejected<'_>, json: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let out = &mut self.rejected;
        if let Err(e) = out.write_all(json).and_then(|()| out.write_all(b"\n")) {
            self.error = Some(e);
        }
    }

    fn curated_buffer(&mut self) -> Option<&mut Vec<u8>> {
        if self.error.is_some() {
            return None;
        }
        Some(&mut self.curated.buffer)
    }

    fn curated_in_buffer(&mut self, _record: &Enriched<'_>) {
        self.write_out_if_full();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    fn curate(lines: &[&[u8]]) -> (CurationStats, CollectingSink) {
        let mut curator = Curator::new(CollectingSink::default(), Some("s3://b/k".into()));
        for (i, bytes) in lines.iter().enumerate() {
            curator.line(Line {
                number: i as u64 + 1,
                bytes,
                truncated: false,
            });
        }
        (curator.stats(), curator.into_sink())
    }

    fn ndjson(bytes: &[u8]) -> Vec<serde_json::Value> {
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn a_text_line_whose_first_field_starts_with_a_brace_is_still_a_text_record() {
        let text: &[u8] = br#"{owner} my-bucket [06/Feb/2019:00:00:38 +0000] 192.0.2.3 - 3E57 REST.GET.OBJECT k "GET /my-bucket/k HTTP/1.1" 200 - 10 10 7 5 "-" "curl/8.0" -"#;
        let broken: &[u8] = b"{not json, not a record";
        let (stats, sink) = curate(&[text, broken]);
        assert_eq!((stats.records, stats.rejected), (1, 1));
        assert_eq!(ndjson(&sink.curated)[0]["bucket_owner"], "{owner}");
        assert_eq!(ndjson(&sink.rejected)[0]["error_kind"], "invalid_json");
    }

    #[test]
    fn json_records_and_text_lines_share_one_object_and_one_schema() {
        let text: &[u8] = br#"79a5 my-bucket [06/Feb/2019:00:00:38 +0000] 192.0.2.3 - 3E57 REST.GET.OBJECT a%2520b "GET /my-bucket/a%20b HTTP/1.1" 200 - 10 10 7 5 "-" "curl/8.0" -"#;
        let json: &[u8] = br#"{"schema_version_id":"V_1_0","bucket_name":"my-bucket","request_time":"2026-07-01T12:34:56.789Z","remote_ip":"192.0.2.9","requester":null,"operation":"REST.GET.OBJECT","key_name":"say \"hi\"\n%41+","request_uri":"GET /my-bucket/say%20%22hi%22%0A%2541%2B HTTP/1.1","http_status":403,"error_code":"AccessDenied","bytes_sent":"12","acl_required":"Maybe","user_agent":"aws-cli/2.0","future_field":[1]}"#;
        let broken: &[u8] = br#"{"request_time":"2026-07-01T12:34:56Z","#;
        let untimed: &[u8] = br#"{"bucket_name":"my-bucket"}"#;
        let lossy: &[u8] = b"{\"request_time\":\"2026-07-01T00:00:00Z\",\"user_agent\":\"a\xffb\"}";
        let (stats, sink) = curate(&[text, json, broken, untimed, lossy]);
        assert_eq!((stats.lines, stats.records, stats.rejected), (5, 3, 2));
        let records = ndjson(&sink.curated);
        let [from_text, from_json, from_lossy] = &records[..] else {
            panic!("{records:?}");
        };
        let names = |v: &serde_json::Value| {
            let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            keys.retain(|k| {
                !["unparsed_fields", "extra_json_fields", "utf8_lossy"].contains(&k.as_str())
            });
            keys.sort();
            keys
        };
        assert_eq!(
            names(from_text),
            names(from_json),
            "the same curated fields"
        );
        assert_eq!(from_text["key_decoded"], "a b");
        let j = from_json;
        assert_eq!(j["time"], "2026-07-01T12:34:56Z");
        assert_eq!(j["key"], "say \"hi\"\n%41+");
        assert_eq!(
            j["key_decoded"], "say \"hi\"\n%41+",
            "the JSON key is the real key"
        );
        assert_eq!(j["http_status"], 403);
        assert_eq!(j["status_class"], "4xx");
        assert_eq!(j["bytes_sent"], 12);
        assert_eq!(j["requester"], serde_json::Value::Null);
        assert_eq!(j["requester_type"], "anonymous");
        assert_eq!(j["user_agent_family"], "aws-cli");
        assert_eq!(j["request_method"], "GET");
        assert_eq!(j["source_line"], 2);
        assert_eq!(j["acl_required"], serde_json::Value::Null);
        assert_eq!(
            j["unparsed_fields"],
            serde_json::json!({"acl_required": "Maybe"})
        );
        assert_eq!(
            j["extra_json_fields"],
            serde_json::json!({"schema_version_id": "V_1_0", "future_field": "[1]"})
        );
        assert_eq!(from_lossy["user_agent"], "a\u{fffd}b");
        assert_eq!(from_lossy["utf8_lossy"], true);
        let rejects = ndjson(&sink.rejected);
        assert_eq!(rejects[0]["error_kind"], "invalid_json");
        assert_eq!(rejects[0]["source_line"], 3);
        assert_eq!(rejects[0]["raw"], std::str::from_utf8(broken).unwrap());
        assert_eq!(rejects[1]["error_kind"], "missing_field");
        assert_eq!(rejects[1]["field"], "time");
    }

    #[test]
    fn blank_lines_are_skipped_not_rejected() {
        let (stats, sink) = curate(&[b"", b"  \r"]);
        assert_eq!(
            (stats.lines, stats.blank, stats.rejected, stats.records),
            (2, 2, 0, 0)
        );
        assert!(sink.rejected.is_empty());
    }

    #[test]
    fn rejected_line_names_line_error_and_keeps_raw() {
        let (stats, sink) = curate(&[b"", b"garbage line"]);
        assert_eq!(stats.rejected, 1);
        let v: serde_json::Value = serde_json::from_slice(&sink.rejected).unwrap();
        assert_eq!(v["source_line"], 2);
        assert_eq!(v["source_object"], "s3://b/k");
        assert_eq!(v["raw"], "garbage line");
        assert_eq!(v["error_kind"], "missing_field");
        assert_eq!(v["field"], "time");
        assert!(v.get("raw_base64").is_none());
    }

    #[test]
    fn non_utf8_rejected_line_keeps_exact_bytes() {
        let (_, sink) = curate(&[b"bad \xff\xfe line"]);
        let v: serde_json::Value = serde_json::from_slice(&sink.rejected).unwrap();
        assert_eq!(v["raw_base64"], base64(b"bad \xff\xfe line"));
    }

    const GOOD_LINE: &[u8] = br#"79a5 my-bucket [06/Feb/2019:00:00:38 +0000] 192.0.2.3 - 3E57427F3EXAMPLE REST.GET.OBJECT a%20b.png "GET /my-bucket/a%20b.png HTTP/1.1" 200 - 10 10 7 5 "-" "curl/8.0" -"#;

    fn feed<S: CurationSink>(sink: S, lines: &[&[u8]]) -> Curator<S> {
        let mut curator = Curator::new(sink, Some("s3://b/k".into()));
        for (i, bytes) in lines.iter().enumerate() {
            curator.line(Line {
                number: i as u64 + 1,
                bytes,
                truncated: false,
            });
        }
        curator
    }

    #[test]
    fn writer_sink_writes_what_collecting_sink_collects() {
        let lines: Vec<&[u8]> = vec![GOOD_LINE, b"garbage", GOOD_LINE, b"", GOOD_LINE];
        let collected = feed(CollectingSink::default(), &lines).into_sink();
        let (mut curated, mut rejected) = (Vec::new(), Vec::new());
        let sink = feed(WriterSink::new(&mut curated, &mut rejected), &lines).into_sink();
        sink.finish().unwrap();
        assert_eq!(curated, collected.curated);
        assert_eq!(rejected, collected.rejected);
        assert_eq!(curated.iter().filter(|&&b| b == b'\n').count(), 3);
    }

    #[test]
    fn writer_sink_dropped_without_finish_still_writes() {
        let (mut curated, mut rejected) = (Vec::new(), Vec::new());
        drop(feed(
            WriterSink::new(&mut curated, &mut rejected),
            &[GOOD_LINE],
        ));
        assert_eq!(curated.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn writer_sink_keeps_the_first_error_and_stops_writing() {
        struct Full;
        impl std::io::Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = vec![GOOD_LINE; PENDING_BYTES / GOOD_LINE.len() * 2];
        let mut sink = feed(WriterSink::new(Full, Vec::new()), &lines).into_sink();
        assert_eq!(
            sink.take_error().map(|e| e.to_string()).as_deref(),
            Some("full")
        );
        assert!(sink.curated.buffer.len() < PENDING_BYTES);
    }

    #[test]
    fn truncated_line_is_rejected_as_too_long() {
        let mut curator = Curator::new(CollectingSink::default(), None);
        curator.line(Line {
            number: 1,
            bytes: b"abc",
            truncated: true,
        });
        let v: serde_json::Value = serde_json::from_slice(&curator.into_sink().rejected).unwrap();
        assert_eq!(v["error_kind"], "line_too_long");
        assert_eq!(v["truncated"], true);
        assert!(v.get("source_object").is_none());
    }
}
