//! One pass over a whole line before it is parsed: where its spaces are (so the parser
//! finds each field's end with a bit search instead of a byte search), whether it is ASCII
//! (so it is valid UTF-8 without a second look), and what escaping its fields may need.
//! Sixteen bytes at a time with SSE2 on x86-64 (always available there), eight at a time
//! in a `u64` elsewhere.

/// What one pass over a line tells about escaping its fields and about its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineScan {
    /// The line has a `\\` or a control character somewhere.
    pub(crate) has_backslash_or_control: bool,
    /// How many `"` bytes the line has.
    pub(crate) quotes: usize,
    /// Every byte is ASCII (so the line is valid UTF-8).
    pub(crate) ascii: bool,
}

/// Scans a whole line. `spaces` is cleared and filled with one bit per byte of the line,
/// set where the byte is a space: bit `i % 64` of word `i / 64`; there are
/// `bytes.len().div_ceil(64)` words.
pub(crate) fn scan_line(bytes: &[u8], spaces: &mut Vec<u64>) -> LineScan {
    spaces.clear();
    spaces.reserve(bytes.len().div_ceil(64));
    let (mut scan, rest) = scan_groups(bytes, spaces);
    if !rest.is_empty() {
        // The last, partial group is padded with a byte that is none of the things
        // looked for, and scanned like the others.
        let mut padded = [b'x'; 64];
        padded[..rest.len()].copy_from_slice(rest);
        let (tail, _) = scan_groups(&padded, spaces);
        scan.has_backslash_or_control |= tail.has_backslash_or_control;
        scan.quotes += tail.quotes;
        scan.ascii &= tail.ascii;
    }
    scan
}

/// Scans the whole 64-byte groups of `bytes`, pushing one space word per group, and
/// returns the bytes left over.
#[inline]
fn scan_groups<'b>(bytes: &'b [u8], spaces: &mut Vec<u64>) -> (LineScan, &'b [u8]) {
    // SAFETY: SSE2 is enabled for this build (it is part of every x86-64 target), which
    // is all that the `target_feature` function asks of its callers.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    return unsafe { sse2::scan_groups(bytes, spaces) };
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    return scan_words(bytes, spaces);
}

/// The word-at-a-time part of [`scan_line`]: scans whole 64-byte groups, pushing one
/// space word per group, and returns the bytes left over.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn scan_words<'b>(bytes: &'b [u8], spaces: &mut Vec<u64>) -> (LineScan, &'b [u8]) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // High bit set in each byte of `x` that is zero (exact, no false positives).
    let zero_bytes = |x: u64| !(((x & LOWS) + LOWS) | x | LOWS);
    // Gathers the high bit of each byte into the low eight bits (byte 0 to bit 0).
    let gather = |m: u64| ((m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) & 0xff;
    let mut groups = bytes.chunks_exact(64);
    let (mut special, mut high, mut quotes) = (0u64, 0u64, 0usize);
    for group in &mut groups {
        let mut space_word = 0u64;
        for (k, word) in group.chunks_exact(8).enumerate() {
            let mut array = [0u8; 8];
            array.copy_from_slice(word);
            let w = u64::from_le_bytes(array);
            high |= w;
            // Bytes below 0x20 (the borrow can only mark bytes above a true hit, which is
            // harmless for a yes/no answer), and backslashes.
            special |= w.wrapping_sub(ONES * 0x20) & !w;
            special |= zero_bytes(w ^ (ONES * u64::from(b'\\')));
            quotes += zero_bytes(w ^ (ONES * u64::from(b'"'))).count_ones() as usize;
            space_word |= gather(zero_bytes(w ^ (ONES * u64::from(b' ')))) << (8 * k);
        }
        spaces.push(space_word);
    }
    let scan = LineScan {
        has_backslash_or_control: special & HIGHS != 0,
        quotes,
        ascii: high & HIGHS == 0,
    };
    (scan, groups.remainder())
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use super::LineScan;
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_sad_epu8, _mm_set1_epi8, _mm_setzero_si128, _mm_storeu_si128, _mm_sub_epi8,
    };

    /// The SIMD part of [`super::scan_line`]: scans whole 64-byte groups, pushing one
    /// space word per group, and returns the bytes left over.
    #[target_feature(enable = "sse2")]
    pub(super) fn scan_groups<'b>(bytes: &'b [u8], spaces: &mut Vec<u64>) -> (LineScan, &'b [u8]) {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let space = _mm_set1_epi8(b' ' as i8);
        let last_control = _mm_set1_epi8(0x1f);
        let mut special = _mm_setzero_si128();
        let mut any = _mm_setzero_si128();
        let mut quotes = 0usize;
        let mut groups = bytes.chunks_exact(64);
        // Quote counts are kept per byte lane, so they are summed every 63 groups (252
        // blocks of 16 bytes) at most, before a lane can overflow.
        loop {
            let mut lane_quotes = _mm_setzero_si128();
            let mut n = 0;
            for group in groups.by_ref().take(63) {
                let mut space_word = 0u64;
                for (k, block) in group.chunks_exact(16).enumerate() {
                    // SAFETY: `block` is exactly 16 readable bytes (from `chunks_exact`),
                    // and `_mm_loadu_si128` has no alignment requirement.
                    let v = unsafe { _mm_loadu_si128(block.as_ptr().cast::<__m128i>()) };
                    any = _mm_or_si128(any, v);
                    let control = _mm_cmpeq_epi8(_mm_min_epu8(v, last_control), v);
                    special = _mm_or_si128(special, control);
                    special = _mm_or_si128(special, _mm_cmpeq_epi8(v, backslash));
                    // A match is -1 in its lane: subtracting it counts up.
                    lane_quotes = _mm_sub_epi8(lane_quotes, _mm_cmpeq_epi8(v, quote));
                    let space_bits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, space)) as u16;
                    space_word |= u64::from(space_bits) << (16 * k);
                }
                spaces.push(space_word);
                n += 1;
            }
            let mut sums = [0u64; 2];
            // SAFETY: `sums` is 16 writable bytes; `_mm_storeu_si128` has no alignment
            // requirement.
            unsafe {
                _mm_storeu_si128(
                    sums.as_mut_ptr().cast::<__m128i>(),
                    _mm_sad_epu8(lane_quotes, _mm_setzero_si128()),
                )
            };
            quotes += (sums[0] + sums[1]) as usize;
            if n < 63 {
                break;
            }
        }
        let scan = LineScan {
            has_backslash_or_control: _mm_movemask_epi8(special) != 0,
            quotes,
            ascii: _mm_movemask_epi8(any) == 0,
        };
        (scan, groups.remainder())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious byte-by-byte scan, to check the fast ones against.
    fn naive_scan(bytes: &[u8]) -> (LineScan, Vec<u64>) {
        let scan = LineScan {
            has_backslash_or_control: bytes.iter().any(|&b| b < 0x20 || b == b'\\'),
            quotes: bytes.iter().filter(|&&b| b == b'"').count(),
            ascii: bytes.is_ascii(),
        };
        let mut spaces = vec![0u64; bytes.len().div_ceil(64)];
        for (i, &b) in bytes.iter().enumerate() {
            spaces[i / 64] |= u64::from(b == b' ') << (i % 64);
        }
        (scan, spaces)
    }

    fn fast_scan(bytes: &[u8]) -> (LineScan, Vec<u64>) {
        let mut spaces = vec![7];
        let scan = scan_line(bytes, &mut spaces);
        (scan, spaces)
    }

    /// The portable scan (groups, then the bytes left over), as other targets run it.
    fn word_scan(bytes: &[u8]) -> (LineScan, Vec<u64>) {
        let mut spaces = Vec::new();
        let (mut scan, rest) = scan_words(bytes, &mut spaces);
        let (tail, tail_spaces) = naive_scan(rest);
        scan.has_backslash_or_control |= tail.has_backslash_or_control;
        scan.quotes += tail.quotes;
        scan.ascii &= tail.ascii;
        spaces.extend(tail_spaces);
        (scan, spaces)
    }

    #[test]
    fn scan_finds_every_special_byte_at_every_position() {
        for len in [0, 5, 15, 16, 17, 63, 64, 65, 70, 130] {
            let clean = vec![b'x'; len];
            for pos in 0..len {
                for special in [b'"', b'\\', b' ', 0x07, 0x00, 0x1f, 0x7f, 0x80, 0xff, b'#'] {
                    let mut line = clean.clone();
                    line[pos] = special;
                    // A second byte next to it catches carries between lanes.
                    for with in [b'"', b' ', 0x20, 0x01, 0x21] {
                        let mut line = line.clone();
                        if let Some(b) = line.get_mut(pos + 1) {
                            *b = with;
                        }
                        assert_eq!(fast_scan(&line), naive_scan(&line), "{line:?}");
                        assert_eq!(word_scan(&line), naive_scan(&line), "{line:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn scan_counts_many_quotes_and_spaces_past_the_lane_limit() {
        for fill in [b'"', b' '] {
            let line = vec![fill; 64 * 130 + 7];
            assert_eq!(fast_scan(&line), naive_scan(&line));
            assert_eq!(word_scan(&line), naive_scan(&line));
        }
    }
}
