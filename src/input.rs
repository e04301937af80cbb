//! Log object bytes in, lines out: compression is told from the magic bytes (never the
//! name), gzip may have several members (S3 and `cat a.gz b.gz` both produce those) and
//! zstd several frames, and input is pushed chunk by chunk so a caller can stream from
//! anywhere without threads.

use std::io::{self, Read, Write};

use flate2::write::MultiGzDecoder;

use crate::curate::LineHandler;
use crate::lines::LineFramer;

/// How a log object is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// gzip, one or more members.
    Gzip,
    /// zstd, one or more frames (`OUTPUT_COMPRESSION=zstd` outputs, read back by the
    /// lake's compaction; also accepted as log input).
    Zstd,
}

/// The gzip magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The zstd frame magic number (little-endian 0xFD2FB528).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The largest zstd window accepted, as a power of two: 16 MiB, far above what any zstd
/// level writes for objects of this size by default (level 19 uses 8 MiB), and small
/// enough that a hostile frame asking for more is refused instead of filling a 128 MB
/// function.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Tells the compression from the first bytes of an object; `None` while the bytes seen
/// could still begin either magic number.
pub fn detect_compression(head: &[u8]) -> Option<Compression> {
    for (magic, compression) in [
        (&GZIP_MAGIC[..], Compression::Gzip),
        (&ZSTD_MAGIC[..], Compression::Zstd),
    ] {
        if head.starts_with(magic) {
            return Some(compression);
        }
        if magic.starts_with(head) {
            return None;
        }
    }
    Some(Compression::None)
}

/// The input could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The gzip stream is corrupt or truncated.
    #[error("corrupt or truncated gzip data near compressed byte {offset}: {source}")]
    CorruptGzip {
        /// How many compressed bytes had been pushed when the error showed.
        offset: u64,
        /// The decompressor's error.
        source: io::Error,
    },
    /// The zstd stream is corrupt or truncated, or needs a larger window than allowed.
    #[error("corrupt or truncated zstd data near compressed byte {offset}: {source}")]
    CorruptZstd {
        /// How many compressed bytes had been pushed when the error showed.
        offset: u64,
        /// The decompressor's error.
        source: io::Error,
    },
}

/// Reading the input failed, either at the source or while decoding.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The source could not be read.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The bytes read could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Frames decompressed bytes into lines for a [`LineHandler`].
struct LineSink<H> {
    framer: LineFramer,
    handler: H,
    decoded_bytes: u64,
}

impl<H: LineHandler> Write for LineSink<H> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let handler = &mut self.handler;
        self.framer.push(buf, |line| handler.line(line));
        self.decoded_bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum State<H: LineHandler> {
    /// Fewer than two bytes seen: the compression is not known yet.
    Sniffing(Vec<u8>, LineSink<H>),
    Plain(LineSink<H>),
    Gzip(Box<MultiGzDecoder<LineSink<H>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, LineSink<H>>>),
    /// Only observable while switching out of `Sniffing`.
    Switching,
}

impl<H: LineHandler> State<H> {
    /// Leaves `Sniffing` for the decoder that `compression` calls for.
    fn decided(self, compression: Compression) -> io::Result<Self> {
        Ok(match (self, compression) {
            (State::Sniffing(_, sink), Compression::None) => State::Plain(sink),
            (State::Sniffing(_, sink), Compression::Gzip) => {
                State::Gzip(Box::new(MultiGzDecoder::new(sink)))
            }
            (State::Sniffing(_, sink), Compression::Zstd) => {
                let mut decoder = zstd::stream::write::Decoder::new(sink)?;
                decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                State::Zstd(Box::new(decoder))
            }
            (other, _) => other,
        })
    }
}

/// Streams one log object's bytes (plain or gzip) into a [`LineHandler`].
pub struct ObjectDecoder<H: LineHandler> {
    state: State<H>,
    input_bytes: u64,
}

/// What an [`ObjectDecoder`] read, once finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeSummary {
    /// The compression that was detected.
    pub compression: Compression,
    /// Bytes pushed in (compressed size).
    pub input_bytes: u64,
    /// Bytes after decompression.
    pub decoded_bytes: u64,
}

impl<H: LineHandler> ObjectDecoder<H> {
    /// A decoder that hands every line to `handler`.
    pub fn new(handler: H) -> Self {
        Self::with_max_line_len(handler, crate::lines::DEFAULT_MAX_LINE_LEN)
    }

    /// A decoder whose lines may be up to `max_line_len` bytes (longer ones are cut and
    /// marked truncated): curated records, which can be longer than the log lines.
    pub fn with_max_line_len(handler: H, max_line_len: usize) -> Self {
        let sink = LineSink {
            framer: LineFramer::new(max_line_len),
            handler,
            decoded_bytes: 0,
        };
        Self {
            state: State::Sniffing(Vec::with_capacity(ZSTD_MAGIC.len()), sink),
            input_bytes: 0,
        }
    }

    /// The handler, for draining its output between chunks.
    pub fn handler_mut(&mut self) -> Option<&mut H> {
        match &mut self.state {
            State::Sniffing(_, sink) | State::Plain(sink) => Some(&mut sink.handler),
            State::Gzip(decoder) => Some(&mut decoder.get_mut().handler),
            State::Zstd(decoder) => Some(&mut decoder.get_mut().handler),
            State::Switching => None,
        }
    }

    /// Pushes the next chunk of the object.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<(), DecodeError> {
        let offset = self.input_bytes;
        self.input_bytes += chunk.len() as u64;
        if let State::Sniffing(head, _) = &mut self.state {
            let take = chunk.len().min(ZSTD_MAGIC.len() - head.len());
            head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            let Some(compression) = detect_compression(head) else {
                return Ok(());
            };
            let head = std::mem::take(head);
            self.state = std::mem::replace(&mut self.state, State::Switching)
                .decided(compression)
                .map_err(|source| DecodeError::CorruptZstd { offset, source })?;
            self.write_decoded(&head, offset)?;
        }
        self.write_decoded(chunk, offset)
    }

    fn write_decoded(&mut self, chunk: &[u8], offset: u64) -> Result<(), DecodeError> {
        let corrupt = |source| DecodeError::CorruptGzip { offset, source };
        match &mut self.state {
            State::Sniffing(..) | State::Switching => Ok(()),
            State::Plain(sink) => sink.write_all(chunk).map_err(corrupt),
            State::Gzip(decoder) => decoder.write_all(chunk).map_err(corrupt),
            State::Zstd(decoder) => decoder
                .write_all(chunk)
                .map_err(|source| DecodeError::CorruptZstd { offset, source }),
        }
    }

    /// Ends the input: flushes the last line and checks the gzip stream is complete.
    pub fn finish(self) -> Result<(H, DecodeSummary), DecodeError> {
        let offset = self.input_bytes;
        let corrupt = |source| DecodeError::CorruptGzip { offset, source };
        let (mut sink, compression) = match self.state {
            State::Sniffing(head, mut sink) => {
                sink.write_all(&head).map_err(corrupt)?;
                (sink, Compression::None)
            }
            State::Plain(sink) => (sink, Compression::None),
            State::Gzip(decoder) => (decoder.finish().map_err(corrupt)?, Compression::Gzip),
            State::Zstd(decoder) => (
                decoder
                    .finish()
                    .map_err(|source| DecodeError::CorruptZstd { offset, source })?,
                Compression::Zstd,
            ),
            State::Switching => {
                return Err(corrupt(io::Error::other("decoder left mid-switch")));
            }
        };
        let handler = &mut sink.handler;
        sink.framer.finish(|line| handler.line(line));
        let summary = DecodeSummary {
            compression,
            input_bytes: self.input_bytes,
            decoded_bytes: sink.decoded_bytes,
        };
        Ok((sink.handler, summary))
    }
}

/// Reads a whole source through an [`ObjectDecoder`], in fixed-size chunks.
pub fn decode_reader<R: Read, H: LineHandler>(
    mut reader: R,
    handler: H,
) -> Result<(H, DecodeSummary), ReadError> {
    let mut decoder = ObjectDecoder::new(handler);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        decoder.push(&buf[..n])?;
    }
    Ok(decoder.finish()?)
}

/// Chunk size for [`decode_reader`]: big enough to amortise calls, small enough for cache.
const READ_CHUNK: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::Line;
    use flate2::write::GzEncoder;

    #[derive(Default)]
    struct Collect(Vec<String>);
    impl LineHandler for Collect {
        fn line(&mut self, line: Line<'_>) {
            self.0
                .push(String::from_utf8_lossy(line.bytes).into_owned());
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn decode_in_chunks(
        input: &[u8],
        chunk: usize,
    ) -> Result<(Vec<String>, DecodeSummary), DecodeError> {
        let mut decoder = ObjectDecoder::new(Collect::default());
        for c in input.chunks(chunk.max(1)) {
            decoder.push(c)?;
        }
        decoder.finish().map(|(c, s)| (c.0, s))
    }

    #[test]
    fn compression_from_magic_bytes() {
        assert_eq!(detect_compression(b""), None);
        assert_eq!(detect_compression(&[0x1f]), None);
        assert_eq!(detect_compression(b"a"), Some(Compression::None));
        assert_eq!(
            detect_compression(&[0x1f, 0x8b, 8]),
            Some(Compression::Gzip)
        );
        assert_eq!(detect_compression(b"1f8b"), Some(Compression::None));
    }

    #[test]
    fn plain_and_gzip_give_the_same_lines_at_any_chunk_size() {
        let text = b"one\ntwo\r\nthree";
        for chunk in [1, 2, 3, 5, 1000] {
            let (plain, s1) = decode_in_chunks(text, chunk).unwrap();
            let (gz, s2) = decode_in_chunks(&gzip(text), chunk).unwrap();
            assert_eq!(plain, vec!["one", "two", "three"], "chunk {chunk}");
            assert_eq!(gz, plain, "chunk {chunk}");
            assert_eq!(
                (s1.compression, s2.compression),
                (Compression::None, Compression::Gzip)
            );
            assert_eq!(s2.decoded_bytes, text.len() as u64);
        }
    }

    #[test]
    fn multi_member_gzip_is_read_whole() {
        let mut data = gzip(b"a\nb\n");
        data.extend(gzip(b"c\n"));
        let (lines, _) = decode_in_chunks(&data, 7).unwrap();
        assert_eq!(lines, vec!["a", "b", "c"]);
    }

    #[test]
    fn zstd_frames_are_read_whole_at_any_chunk_size() {
        let mut data = zstd::stream::encode_all(&b"a\nb\n"[..], 3).unwrap();
        data.extend(zstd::stream::encode_all(&b"c\r\nd"[..], 1).unwrap());
        for chunk in [1, 2, 3, 5, 1000] {
            let (lines, summary) = decode_in_chunks(&data, chunk).unwrap();
            assert_eq!(lines, vec!["a", "b", "c", "d"], "chunk {chunk}");
            assert_eq!(summary.compression, Compression::Zstd);
        }
        assert_eq!(detect_compression(&[0x28, 0xb5]), None);
        assert_eq!(
            detect_compression(&[0x28, 0xb5, 0x2f, 0x00]),
            Some(Compression::None)
        );
    }

    #[test]
    fn truncated_or_oversized_zstd_is_an_error() {
        let data = zstd::stream::encode_all(&b"a\nb\n"[..], 3).unwrap();
        let cut = decode_in_chunks(&data[..data.len() - 2], 4);
        assert!(
            matches!(cut, Err(DecodeError::CorruptZstd { .. })),
            "{cut:?}"
        );
        // A frame that declares a 64 MiB window, more than ZSTD_WINDOW_LOG_MAX allows.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        encoder
            .set_parameter(zstd::stream::raw::CParameter::WindowLog(26))
            .unwrap();
        encoder.write_all(&b"a\n".repeat(1000)).unwrap();
        let frame = encoder.finish().unwrap();
        let refused = decode_in_chunks(&frame, 1 << 16);
        assert!(
            matches!(refused, Err(DecodeError::CorruptZstd { .. })),
            "a 64 MiB window must be refused"
        );
    }

    #[test]
    fn single_byte_object_is_one_line() {
        let (lines, _) = decode_in_chunks(b"x", 1).unwrap();
        assert_eq!(lines, vec!["x"]);
    }

    #[test]
    fn empty_object_has_no_lines() {
        let (lines, s) = decode_in_chunks(b"", 1).unwrap();
        assert!(lines.is_empty());
        assert_eq!(s.decoded_bytes, 0);
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let data = gzip(&b"line of text\n".repeat(1000));
        let cut = &data[..data.len() / 2];
        assert!(matches!(
            decode_in_chunks(cut, 64),
            Err(DecodeError::CorruptGzip { .. })
        ));
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let mut data = gzip(&b"line of text\n".repeat(1000));
        let mid = data.len() / 2;
        data[mid..mid + 8].copy_from_slice(b"garbage!");
        assert!(decode_in_chunks(&data, 64).is_err());
    }
}
