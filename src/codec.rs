//! The output compressors, as the router uses them: one compressed *member* (a gzip
//! member, a zstd frame) per partition at a time, finished and restarted when the
//! compressor moves to another partition, and reused rather than rebuilt.
//!
//! Records are gathered into [`STAGE_BYTES`] of plain NDJSON before each call into the
//! compressor, so the cost of a call (state checks, a flush of its output window) is paid
//! per 64 KiB, not per record. Gathering does not change the compressed bytes' meaning:
//! every record still lands in its partition's member, in order.
//!
//! Both formats allow a file to be several members in a row: gzip, zcat, Python's
//! `gzip`, DuckDB and Athena read concatenated gzip members as one stream, and the zstd
//! format defines a file as frames in a row, which `zstd -d`, DuckDB and `bucketlog`'s
//! own reader decode as one stream.

use std::io;

use flate2::{Compress, Crc, FlushCompress, Status};
use zstd::stream::raw::{Encoder as ZstdEncoder, Operation};
use zstd::zstd_safe::OutBuffer;

/// Plain bytes gathered before each call into the compressor.
pub const STAGE_BYTES: usize = 64 * 1024;

/// gzip level for outputs: level 1 still compresses this NDJSON about 7:1 (BENCHMARKS.md)
/// and is the cheapest level in CPU time, which is what Lambda bills for.
pub const GZIP_LEVEL: u32 = 1;

/// zstd level for outputs (`OUTPUT_COMPRESSION=zstd`, the default): level 1 is zstd's
/// fastest standard level and compresses this NDJSON about 13.6:1 against gzip level 1's
/// 7.3:1. Higher levels compress better at several times the CPU and memory
/// (BENCHMARKS.md, "Against the goals").
pub const ZSTD_LEVEL: i32 = 1;

/// The 10-byte header every gzip member starts with: deflate, no name, no time, level 1
/// ("fastest" in XFL), unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

/// Room the compressors' output is grown by when it runs short.
const OUTPUT_STEP: usize = 32 * 1024;

/// Which compressor, with its format's state.
enum Format {
    /// Raw deflate with the gzip header and trailer written around it.
    Gzip { deflate: Compress, crc: Crc },
    /// A zstd frame per member.
    Zstd(Box<ZstdEncoder<'static>>),
}

/// A reusable compressor writing one member at a time (see the module documentation).
pub struct MemberEncoder {
    format: Format,
    stage: Vec<u8>,
    /// Compressed bytes not yet taken by [`MemberEncoder::take_output`].
    output: Vec<u8>,
    /// A member has been started and not finished.
    open: bool,
}

impl MemberEncoder {
    /// A gzip compressor at [`GZIP_LEVEL`].
    pub fn gzip() -> Self {
        Self::with(Format::Gzip {
            deflate: Compress::new(flate2::Compression::new(GZIP_LEVEL), false),
            crc: Crc::new(),
        })
    }

    /// A zstd compressor at [`ZSTD_LEVEL`].
    pub fn zstd() -> io::Result<Self> {
        Ok(Self::with(Format::Zstd(Box::new(ZstdEncoder::new(
            ZSTD_LEVEL,
        )?))))
    }

    fn with(format: Format) -> Self {
        Self {
            format,
            stage: Vec::with_capacity(STAGE_BYTES),
            output: Vec::new(),
            open: false,
        }
    }

    /// Adds one record and its newline to the current member, starting one if needed.
    pub fn push_record(&mut self, json: &[u8]) -> io::Result<()> {
        if !self.open {
            self.open = true;
            if let Format::Gzip { .. } = self.format {
                self.output.extend_from_slice(&GZIP_HEADER);
            }
        }
        if self.stage.len() + json.len() + 1 > STAGE_BYTES && !self.stage.is_empty() {
            self.compress_stage()?;
        }
        self.stage.extend_from_slice(json);
        self.stage.push(b'\n');
        Ok(())
    }

    /// Finishes the current member (if one is open) into the output and makes the
    /// compressor ready for the next.
    pub fn finish_member(&mut self) -> io::Result<()> {
        if !self.open {
            return Ok(());
        }
        self.compress_stage()?;
        match &mut self.format {
            Format::Gzip { deflate, crc } => {
                loop {
                    self.output.reserve(OUTPUT_STEP);
                    let status = deflate
                        .compress_vec(&[], &mut self.output, FlushCompress::Finish)
                        .map_err(io::Error::other)?;
                    if status == Status::StreamEnd {
                        break;
                    }
                }
                self.output.extend_from_slice(&crc.sum().to_le_bytes());
                self.output.extend_from_slice(&crc.amount().to_le_bytes());
                crc.reset();
                deflate.reset();
            }
            Format::Zstd(encoder) => {
                loop {
                    self.output.reserve(OUTPUT_STEP);
                    if encoder.finish(&mut appending(&mut self.output), true)? == 0 {
                        break;
                    }
                }
                encoder.reinit()?;
            }
        }
        self.open = false;
        Ok(())
    }

    /// The compressed bytes produced so far, to be appended to the member's partition;
    /// the caller clears the vector once it has copied them.
    pub fn output_mut(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Compresses the gathered records into the output.
    fn compress_stage(&mut self) -> io::Result<()> {
        if self.stage.is_empty() {
            return Ok(());
        }
        let input = &self.stage[..];
        match &mut self.format {
            Format::Gzip { deflate, crc } => {
                crc.update(input);
                let start = deflate.total_in();
                loop {
                    let consumed = (deflate.total_in() - start) as usize;
                    if consumed == input.len() {
                        break;
                    }
                    keep_room(&mut self.output);
                    deflate
                        .compress_vec(&input[consumed..], &mut self.output, FlushCompress::None)
                        .map_err(io::Error::other)?;
                }
            }
            Format::Zstd(encoder) => {
                let mut consumed = 0;
                while consumed < input.len() {
                    keep_room(&mut self.output);
                    let mut inp = zstd::zstd_safe::InBuffer::around(&input[consumed..]);
                    encoder.run(&mut inp, &mut appending(&mut self.output))?;
                    consumed += inp.pos();
                }
            }
        }
        self.stage.clear();
        Ok(())
    }
}

/// Grows `output` by [`OUTPUT_STEP`] when less than half a step is free, so every
/// compressor call has room to make progress.
fn keep_room(output: &mut Vec<u8>) {
    if output.capacity() - output.len() < OUTPUT_STEP / 2 {
        output.reserve(OUTPUT_STEP);
    }
}

/// A zstd output buffer that appends to `output` (into its spare capacity).
fn appending(output: &mut Vec<u8>) -> OutBuffer<'_, Vec<u8>> {
    let pos = output.len();
    OutBuffer::around_pos(output, pos)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn records(n: usize, tag: &str) -> Vec<String> {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"n\":{i},\"tag\":\"{tag}\",\"pad\":\"{}\"}}",
                    "x".repeat(i % 97)
                )
            })
            .collect()
    }

    /// Writes `members` as successive members of one encoder and returns the file.
    fn encode(mut encoder: MemberEncoder, members: &[Vec<String>]) -> Vec<u8> {
        let mut file = Vec::new();
        for member in members {
            for r in member {
                encoder.push_record(r.as_bytes()).unwrap();
                file.append(encoder.output_mut());
            }
            encoder.finish_member().unwrap();
            file.append(encoder.output_mut());
        }
        file
    }

    fn expected(members: &[Vec<String>]) -> String {
        members.iter().flatten().map(|r| format!("{r}\n")).collect()
    }

    #[test]
    fn gzip_members_decode_as_one_stream() {
        let members = [records(5_000, "a"), records(1, "b"), records(300, "c")];
        let file = encode(MemberEncoder::gzip(), &members);
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&file[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, expected(&members));
    }

    #[test]
    fn zstd_frames_decode_as_one_stream() {
        let members = [records(5_000, "a"), records(1, "b"), records(300, "c")];
        let file = encode(MemberEncoder::zstd().unwrap(), &members);
        let text = String::from_utf8(zstd::stream::decode_all(&file[..]).unwrap()).unwrap();
        assert_eq!(text, expected(&members));
        assert!(
            file.len() < expected(&members).len() / 5,
            "{} bytes",
            file.len()
        );
    }

    #[test]
    fn finishing_without_a_member_writes_nothing() {
        let mut encoder = MemberEncoder::gzip();
        encoder.finish_member().unwrap();
        assert!(encoder.output_mut().is_empty());
    }
}
