//! Push-based line framing: bytes arrive in chunks of any size, whole lines come out.
//!
//! The framer never copies a line that lies wholly inside one chunk; only the tail of a
//! chunk (a line split across chunk boundaries) is carried over in an internal buffer,
//! and that buffer is capped at [`LineFramer::max_line_len`], so memory stays bounded
//! whatever the input. Lines end at `\n`; a trailing `\r` is removed; a last line
//! without a newline is still a line; line numbers are 1-based and count blank lines.

/// One framed line, borrowed from the chunk (or the carry-over buffer) it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number in the object, counting blank lines.
    pub number: u64,
    /// The line's bytes without the line terminator (`\n` or `\r\n`).
    pub bytes: &'a [u8],
    /// True when the line was longer than the framer's limit and was cut to that limit.
    pub truncated: bool,
}

/// Default cap on one line: S3 referers can be tens of KB, nothing legitimate nears 1 MiB.
pub const DEFAULT_MAX_LINE_LEN: usize = 1 << 20;

/// Splits a stream of byte chunks into lines, carrying partial lines between chunks.
#[derive(Debug)]
pub struct LineFramer {
    carry: Vec<u8>,
    carry_truncated: bool,
    next_number: u64,
    max_line_len: usize,
}

impl Default for LineFramer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE_LEN)
    }
}

impl LineFramer {
    /// Creates a framer that cuts lines longer than `max_line_len` bytes (at least 1).
    pub fn new(max_line_len: usize) -> Self {
        Self {
            carry: Vec::new(),
            carry_truncated: false,
            next_number: 1,
            max_line_len: max_line_len.max(1),
        }
    }

    /// The longest line this framer hands out whole; longer ones come out truncated.
    pub fn max_line_len(&self) -> usize {
        self.max_line_len
    }

    /// Number of lines handed out so far.
    pub fn lines_seen(&self) -> u64 {
        self.next_number - 1
    }

    /// Feeds one chunk, calling `on_line` for every line the chunk completes.
    pub fn push(&mut self, mut chunk: &[u8], mut on_line: impl FnMut(Line<'_>)) {
        while let Some(pos) = memchr::memchr(b'\n', chunk) {
            let (head, rest) = (&chunk[..pos], &chunk[pos + 1..]);
            if self.carry.is_empty() && !self.carry_truncated {
                let (bytes, truncated) = self.cap(head);
                self.emit(bytes, truncated, &mut on_line);
            } else {
                self.append_to_carry(head);
                let carry = std::mem::take(&mut self.carry);
                let truncated = std::mem::take(&mut self.carry_truncated);
                self.emit(&carry, truncated, &mut on_line);
                self.carry = carry;
                self.carry.clear();
            }
            chunk = rest;
        }
        self.append_to_carry(chunk);
    }

    /// Flushes a final line that had no terminating newline.
    pub fn finish(&mut self, mut on_line: impl FnMut(Line<'_>)) {
        if !self.carry.is_empty() || self.carry_truncated {
            let carry = std::mem::take(&mut self.carry);
            let truncated = std::mem::take(&mut self.carry_truncated);
            self.emit(&carry, truncated, &mut on_line);
        }
    }

    fn cap<'b>(&self, bytes: &'b [u8]) -> (&'b [u8], bool) {
        if bytes.len() > self.max_line_len {
            (&bytes[..self.max_line_len], true)
        } else {
            (bytes, false)
        }
    }

    fn append_to_carry(&mut self, bytes: &[u8]) {
        let room = self.max_line_len - self.carry.len();
        if bytes.len() > room {
            self.carry.extend_from_slice(&bytes[..room]);
            self.carry_truncated = true;
        } else {
            self.carry.extend_from_slice(bytes);
        }
    }

    fn emit(&mut self, bytes: &[u8], truncated: bool, on_line: &mut impl FnMut(Line<'_>)) {
        let bytes = match bytes.last() {
            Some(b'\r') if !truncated => &bytes[..bytes.len() - 1],
            _ => bytes,
        };
        let number = self.next_number;
        self.next_number += 1;
        on_line(Line {
            number,
            bytes,
            truncated,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_in_chunks(input: &[u8], chunk_len: usize, max: usize) -> Vec<(u64, Vec<u8>, bool)> {
        let mut framer = LineFramer::new(max);
        let mut out = Vec::new();
        for chunk in input.chunks(chunk_len.max(1)) {
            framer.push(chunk, |l| {
                out.push((l.number, l.bytes.to_vec(), l.truncated))
            });
        }
        framer.finish(|l| out.push((l.number, l.bytes.to_vec(), l.truncated)));
        out
    }

    fn frame(input: &[u8]) -> Vec<Vec<u8>> {
        let whole: Vec<_> = frame_in_chunks(input, input.len(), 1 << 20)
            .into_iter()
            .map(|(_, b, _)| b)
            .collect();
        // Feeding the same input one byte at a time must give the same lines.
        let bytewise: Vec<_> = frame_in_chunks(input, 1, 1 << 20)
            .into_iter()
            .map(|(_, b, _)| b)
            .collect();
        assert_eq!(whole, bytewise);
        whole
    }

    macro_rules! frames_to {
        ($name:ident, $input:expr, [$($line:expr),*]) => {
            #[test]
            fn $name() {
                let expected: Vec<Vec<u8>> = vec![$($line.to_vec()),*];
                assert_eq!(frame($input), expected);
            }
        };
    }

    frames_to!(empty_input_has_no_lines, b"", []);
    frames_to!(single_line_without_newline_is_a_line, b"abc", [b"abc"]);
    frames_to!(single_line_with_newline, b"abc\n", [b"abc"]);
    frames_to!(blank_lines_are_lines, b"abc\n\n", [b"abc", b""]);
    frames_to!(crlf_is_stripped, b"a\r\nb\r\n", [b"a", b"b"]);
    frames_to!(lone_cr_inside_line_is_kept, b"a\rb\n", [b"a\rb"]);
    frames_to!(only_newlines, b"\n\n\n", [b"", b"", b""]);
    frames_to!(last_line_crlf_without_lf, b"a\nb\r", [b"a", b"b"]);

    #[test]
    fn line_numbers_count_blank_lines() {
        let lines = frame_in_chunks(b"a\n\nb\n", 2, 100);
        let numbers: Vec<u64> = lines.iter().map(|l| l.0).collect();
        assert_eq!(numbers, vec![1, 2, 3]);
    }

    #[test]
    fn long_line_is_truncated_and_next_line_is_intact() {
        for chunk in [1, 3, 7, 100] {
            let lines = frame_in_chunks(b"0123456789\nok\n", chunk, 4);
            assert_eq!(
                lines,
                vec![(1, b"0123".to_vec(), true), (2, b"ok".to_vec(), false)],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn long_last_line_without_newline_is_truncated() {
        let lines = frame_in_chunks(b"0123456789", 3, 4);
        assert_eq!(lines, vec![(1, b"0123".to_vec(), true)]);
    }

    #[test]
    fn carry_over_never_exceeds_the_limit() {
        let mut framer = LineFramer::new(8);
        framer.push(&[b'x'; 1000], |_| {});
        assert!(framer.carry.capacity() < 1000);
        assert_eq!(framer.lines_seen(), 0);
    }
}
