//! The object's real key from the log's key field. S3 does not encode that field the same
//! way for every operation, so the decoding is chosen by operation family and, where the
//! request line carries the key's path, checked against it. `SCHEMA.md` has the rule as a
//! table; the tests below pin one row each.
//!
//! - `REST.*` and `WEBSITE.*`: the key is URL-encoded **twice** (`date=1` is logged as
//!   `date%253D1`). The inner encoding writes a space as `+` (the same encoder writes the
//!   once-encoded families below), so after the outer layer is removed a `+` is a space and
//!   `%2B` a plus. A raw `+` in the field cannot come from that encoder; it is kept a `+`.
//! - `BATCH.*` (multi-object delete) and `S3.*` (lifecycle: `S3.EXPIRE.OBJECT`,
//!   `S3.TRANSITION*.OBJECT`, `S3.CREATE.DELETEMARKER`, ...): encoded **once**, form-style,
//!   so `+` is a space (`Screen+Shot+1.png`).
//! - Anything else (other providers' operation names such as Storj's `GetObject`):
//!   percent-decoded once, `+` kept, unless the request line says otherwise.
//!
//! Every family has the same four candidates, its own first: twice (`+` a space), twice
//! (`+` a plus), once (`+` a plus), once (`+` a space). The cross-check: the request line's path, percent-decoded once (as S3 reads it), is
//! `/KEY` (virtual-hosted style, access points, websites) or `/BUCKET/KEY` (path style).
//! When the candidate decodings differ, the first candidate that equals that `KEY` wins;
//! when none does (a website's index document, a request line without the key), the
//! family's own decoding stands. A candidate whose bytes are not UTF-8 is never chosen
//! (S3 keys are UTF-8); when no candidate is, the key is kept as logged.

use std::borrow::Cow;
use std::ops::Range;

/// How the log's key field is encoded, told by the operation name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyEncoding {
    /// `REST.*`, `WEBSITE.*`: URL-encoded twice.
    Twice,
    /// `BATCH.*`, `S3.*` (lifecycle and other S3-internal work): URL-encoded once, `+` is a space.
    Once,
    /// Any other operation (S3-compatible providers' own names, or none): percent-decoded
    /// once, unless the request line shows another decoding.
    Unknown,
}

impl KeyEncoding {
    /// The encoding S3 uses for `operation`'s key field.
    pub fn of(operation: Option<&str>) -> Self {
        match operation {
            Some(op) if op.starts_with("REST.") || op.starts_with("WEBSITE.") => Self::Twice,
            Some(op) if op.starts_with("BATCH.") || op.starts_with("S3.") => Self::Once,
            _ => Self::Unknown,
        }
    }

    /// The candidate decodings, the family's own first.
    fn candidates(self) -> &'static [Decoding; 4] {
        use Decoding::*;
        match self {
            Self::Twice => &[Twice, TwicePlusKept, Once, OnceForm],
            Self::Once => &[OnceForm, Once, Twice, TwicePlusKept],
            Self::Unknown => &[Once, OnceForm, Twice, TwicePlusKept],
        }
    }
}

/// One way of reading the key field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoding {
    /// Percent-decoded twice; after the first pass `+` is a space (a raw `+` stays a `+`).
    Twice,
    /// Percent-decoded twice, `+` always a plus.
    TwicePlusKept,
    /// Percent-decoded once, `+` a plus.
    Once,
    /// Percent-decoded once, `+` a space.
    OnceForm,
}

/// What a `+` means in one percent-decoding pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plus {
    /// A plus.
    Keep,
    /// A space.
    Space,
    /// A plus, written back as `%2B` so that a following [`Plus::Space`] pass keeps it.
    Shield,
}

/// Reusable buffers for decoding keys, so that decoding allocates nothing once they have
/// grown to the longest key seen.
#[derive(Debug, Default)]
pub struct KeyScratch {
    /// The candidate decodings, one after the other.
    decoded: Vec<u8>,
    /// The first of two passes.
    work: Vec<u8>,
    /// The request line's path, decoded once.
    path: Vec<u8>,
}

/// The object's real key from the key field, by `operation`'s [`KeyEncoding`], checked
/// against the request line's path when it carries the key (see the module docs).
pub fn decode_logged_key<'k>(
    key: &'k str,
    operation: Option<&str>,
    bucket: Option<&str>,
    request_path: Option<&str>,
) -> Cow<'k, str> {
    let mut scratch = KeyScratch::default();
    match decode_into(key, operation, bucket, request_path, &mut scratch) {
        None => Cow::Borrowed(key),
        Some(range) => Cow::Owned(
            std::str::from_utf8(&scratch.decoded[range])
                .unwrap_or(key)
                .to_owned(),
        ),
    }
}

/// Like [`decode_logged_key`], borrowing from `scratch` instead of allocating.
pub(crate) fn decode_logged_key_in<'a>(
    key: &'a str,
    operation: Option<&str>,
    bucket: Option<&str>,
    request_path: Option<&str>,
    scratch: &'a mut KeyScratch,
) -> &'a str {
    match decode_into(key, operation, bucket, request_path, scratch) {
        None => key,
        Some(range) => {
            let scratch: &'a KeyScratch = scratch;
            let bytes = &scratch.decoded[range];
            debug_assert!(std::str::from_utf8(bytes).is_ok());
            // SAFETY: `decode_into` returns only ranges it has just checked to be UTF-8
            // (`KeyScratch::valid`), and nothing has written to `decoded` since.
            unsafe { std::str::from_utf8_unchecked(bytes) }
        }
    }
}

/// The range of `scratch.decoded` holding the chosen decoding (checked to be UTF-8), or
/// `None` when the key is best kept as logged (nothing to decode, or nothing valid).
///
/// Work is done only as far as needed: one pass settles most keys; otherwise the family's
/// own decoding is compared with the request path first, and the other candidates are
/// decoded only when that comparison fails.
fn decode_into(
    key: &str,
    operation: Option<&str>,
    bucket: Option<&str>,
    request_path: Option<&str>,
    scratch: &mut KeyScratch,
) -> Option<Range<usize>> {
    let bytes = key.as_bytes();
    // One search settles the common case of a key with nothing to decode.
    let first = memchr::memchr2(b'%', b'+', bytes)?;
    let raw_plus = bytes[first] == b'+' || memchr::memchr(b'+', &bytes[first..]).is_some();
    scratch.decoded.clear();
    // One pass settles it when no second pass could change anything and `+` means the
    // same in every candidate.
    let once = push_decoded(bytes, Plus::Keep, &mut scratch.decoded);
    let once_is_final = memchr::memchr2(b'%', b'+', &scratch.decoded[once.clone()]).is_none();
    if once_is_final && !raw_plus {
        return scratch.valid(&once).then_some(once);
    }
    let candidates = KeyEncoding::of(operation).candidates();
    let path = request_path.map(|path| {
        scratch.path.clear();
        push_decoded(path.as_bytes(), Plus::Keep, &mut scratch.path)
    });
    let mut ranges: [Option<Range<usize>>; 4] = Default::default();
    for (slot, &decoding) in ranges.iter_mut().zip(candidates) {
        let range = match decoding {
            Decoding::Once => once.clone(),
            _ => push_candidate(bytes, decoding, raw_plus, &once, scratch),
        };
        let named = path.as_ref().is_some_and(|p| {
            path_names_key(
                &scratch.path[p.clone()],
                bucket,
                &scratch.decoded[range.clone()],
            )
        });
        if named && scratch.valid(&range) {
            return Some(range);
        }
        // Without a request line only an invalid family decoding needs the others.
        if path.is_none() && scratch.valid(&range) {
            return Some(range);
        }
        *slot = Some(range);
    }
    ranges.into_iter().flatten().find(|r| scratch.valid(r))
}

impl KeyScratch {
    /// True when the bytes at `range` of the decoded buffer are UTF-8.
    fn valid(&self, range: &Range<usize>) -> bool {
        std::str::from_utf8(&self.decoded[range.clone()]).is_ok()
    }
}

/// True when a decoded request path is `/KEY` or `/BUCKET/KEY`.
fn path_names_key(path: &[u8], bucket: Option<&str>, key: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/") else {
        return false;
    };
    if rest == key {
        return true;
    }
    bucket
        .and_then(|b| rest.strip_prefix(b.as_bytes()))
        .and_then(|r| r.strip_prefix(b"/"))
        .is_some_and(|r| r == key)
}

/// Appends `decoding` of `key` to `scratch.decoded` and returns its range. `once` is the
/// key already decoded once with `+` kept: without a raw `+` in the key, that is also the
/// first pass of both twice-decodings.
fn push_candidate(
    key: &[u8],
    decoding: Decoding,
    raw_plus: bool,
    once: &Range<usize>,
    scratch: &mut KeyScratch,
) -> Range<usize> {
    let (first, second) = match decoding {
        Decoding::Once => return push_decoded(key, Plus::Keep, &mut scratch.decoded),
        Decoding::OnceForm => return push_decoded(key, Plus::Space, &mut scratch.decoded),
        Decoding::Twice => (Plus::Shield, Plus::Space),
        Decoding::TwicePlusKept => (Plus::Keep, Plus::Keep),
    };
    scratch.work.clear();
    if raw_plus && first == Plus::Shield {
        push_decoded(key, first, &mut scratch.work);
    } else {
        scratch
            .work
            .extend_from_slice(&scratch.decoded[once.clone()]);
    }
    push_decoded(&scratch.work, second, &mut scratch.decoded)
}

/// Appends one percent-decoding pass of `src` to `out` and returns the range written.
/// An invalid or truncated escape (`%zz`, `%4`) is kept as written.
///
/// Keys are short and, encoded twice, have an escape every few bytes, so after one search
/// for the first byte that can change, the pass is a plain byte loop that copies the runs
/// between changes whole: a search per escape cost more than the bytes it skipped.
pub(crate) fn push_decoded(src: &[u8], plus: Plus, out: &mut Vec<u8>) -> Range<usize> {
    let start = out.len();
    let first = match plus {
        Plus::Keep => memchr::memchr(b'%', src),
        Plus::Space | Plus::Shield => memchr::memchr2(b'%', b'+', src),
    };
    let Some(first) = first else {
        out.extend_from_slice(src);
        return start..out.len();
    };
    out.reserve(src.len());
    // `src[run..i]` is still to be copied as it is.
    let mut run = 0;
    let mut i = first;
    while let Some(&b) = src.get(i) {
        let escaped = if b == b'%' {
            escaped_byte(src, i)
        } else {
            None
        };
        let changed = escaped.is_some() || (b == b'+' && plus != Plus::Keep);
        if !changed {
            i += 1;
            continue;
        }
        out.extend_from_slice(&src[run..i]);
        match (escaped, plus) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, Plus::Shield) => {
                out.extend_from_slice(b"%2B");
                i += 1;
            }
            (None, _) => {
                out.push(b' ');
                i += 1;
            }
        }
        run = i;
    }
    out.extend_from_slice(&src[run..]);
    start..out.len()
}

/// The byte a valid `%XY` escape at `src[at]` stands for.
fn escaped_byte(src: &[u8], at: usize) -> Option<u8> {
    let h = hex_value(*src.get(at + 1)?)?;
    let l = hex_value(*src.get(at + 2)?)?;
    Some(h << 4 | l)
}

/// Each byte's value as a hex digit, or `NOT_HEX`.
const HEX_DIGITS: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = match c as u8 {
            d @ b'0'..=b'9' => d - b'0',
            d @ b'a'..=b'f' => d - b'a' + 10,
            d @ b'A'..=b'F' => d - b'A' + 10,
            _ => NOT_HEX,
        };
        c += 1;
    }
    table
};

/// Marks a byte that is not a hex digit in [`HEX_DIGITS`].
const NOT_HEX: u8 = 0xff;

/// The value of one hex digit.
pub(crate) fn hex_value(c: u8) -> Option<u8> {
    let value = HEX_DIGITS[usize::from(c)];
    (value != NOT_HEX).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `decodes!(name, operation, key, request line, expected key)`: one row of the rule.
    macro_rules! decodes {
        ($name:ident, $op:expr, $key:expr, $uri:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let request = crate::enrich::RequestLine::split($uri);
                let decoded = decode_logged_key($key, Some($op), Some("my-bucket"), request.path);
                assert_eq!(decoded, $expected);
                let mut scratch = KeyScratch::default();
                let borrowed = decode_logged_key_in(
                    $key,
                    Some($op),
                    Some("my-bucket"),
                    request.path,
                    &mut scratch,
                );
                assert_eq!(borrowed, $expected, "the allocation-free path agrees");
            }
        };
    }

    // REST: twice.
    decodes!(
        rest_plain_key_is_as_logged,
        "REST.GET.OBJECT",
        "a/b.txt",
        Some("GET /my-bucket/a/b.txt HTTP/1.1"),
        "a/b.txt"
    );
    decodes!(
        rest_equals_sign_twice_encoded,
        "REST.GET.OBJECT",
        "logs/date_%253D2021-03-14/p.parquet",
        Some("GET /my-bucket/logs/date_%3D2021-03-14/p.parquet HTTP/1.1"),
        "logs/date_=2021-03-14/p.parquet"
    );
    decodes!(
        rest_twice_without_request_line,
        "REST.COPY.OBJECT_GET",
        "logs/date_%253D1/x",
        None,
        "logs/date_=1/x"
    );
    decodes!(
        rest_space_from_inner_plus,
        "REST.PUT.OBJECT",
        "my%2Bfile.txt",
        None,
        "my file.txt"
    );
    decodes!(
        rest_plus_from_inner_escape,
        "REST.PUT.OBJECT",
        "c%252B%252B.txt",
        None,
        "c++.txt"
    );
    decodes!(
        rest_space_as_percent_twenty,
        "REST.GET.OBJECT",
        "annual%2520report.pdf",
        Some("GET /annual%20report.pdf HTTP/1.1"),
        "annual report.pdf"
    );
    decodes!(
        rest_utf8_twice,
        "REST.HEAD.OBJECT",
        "caf%25C3%25A9.txt",
        None,
        "café.txt"
    );
    decodes!(
        rest_raw_plus_is_a_plus,
        "REST.GET.OBJECT",
        "noog+nork",
        None,
        "noog+nork"
    );
    // The request line settles what the field alone cannot.
    decodes!(
        rest_request_line_says_plus,
        "REST.PUT.OBJECT",
        "a%2Bb.txt",
        Some("PUT /my-bucket/a%2Bb.txt HTTP/1.1"),
        "a+b.txt"
    );
    decodes!(
        rest_request_line_says_space,
        "REST.PUT.OBJECT",
        "a%2Bb.txt",
        Some("PUT /my-bucket/a%20b.txt HTTP/1.1"),
        "a b.txt"
    );
    decodes!(
        rest_request_line_says_once,
        "REST.GET.OBJECT",
        "r%2541.txt",
        Some("GET /my-bucket/r%2541.txt HTTP/1.1"),
        "r%41.txt"
    );
    decodes!(
        rest_virtual_hosted_path,
        "REST.GET.OBJECT",
        "r%2541.txt",
        Some("GET /r%2541.txt?versionId=1 HTTP/1.1"),
        "r%41.txt"
    );
    decodes!(
        rest_disagreeing_request_line_loses,
        "REST.GET.OBJECT",
        "x%2541",
        Some("GET /my-bucket/other HTTP/1.1"),
        "xA"
    );
    // The ambiguous case: `foo-%2525Y` is `foo-%25Y` once and `foo-%Y` twice.
    decodes!(
        ambiguous_rest_defaults_to_twice,
        "REST.GET.OBJECT",
        "foo-%2525Y",
        None,
        "foo-%Y"
    );
    decodes!(
        ambiguous_rest_request_line_twice,
        "REST.GET.OBJECT",
        "foo-%2525Y",
        Some("GET /my-bucket/foo-%25Y HTTP/1.1"),
        "foo-%Y"
    );
    decodes!(
        ambiguous_rest_request_line_once,
        "REST.GET.OBJECT",
        "foo-%2525Y",
        Some("GET /my-bucket/foo-%2525Y HTTP/1.1"),
        "foo-%25Y"
    );
    decodes!(
        ambiguous_batch_delete_is_once,
        "BATCH.DELETE.OBJECT",
        "foo-%2525Y",
        Some("POST /my-bucket?delete HTTP/1.1"),
        "foo-%25Y"
    );
    decodes!(
        ambiguous_lifecycle_is_once,
        "S3.EXPIRE.OBJECT",
        "foo-%2525Y",
        None,
        "foo-%25Y"
    );
    // WEBSITE: twice, like REST.
    decodes!(
        website_twice,
        "WEBSITE.GET.OBJECT",
        "docs/a%2520b.html",
        Some("GET /docs/a%20b.html HTTP/1.1"),
        "docs/a b.html"
    );
    decodes!(
        website_index_document_keeps_family_rule,
        "WEBSITE.GET.OBJECT",
        "dir/x%2541.html",
        Some("GET /dir/ HTTP/1.1"),
        "dir/xA.html"
    );
    // BATCH.DELETE: once, `+` a space.
    decodes!(
        batch_delete_plus_is_space,
        "BATCH.DELETE.OBJECT",
        "Screen+Shot+2024-01-02+at+10.00.00+PM.png",
        Some("POST /my-bucket?delete HTTP/1.1"),
        "Screen Shot 2024-01-02 at 10.00.00 PM.png"
    );
    decodes!(
        batch_delete_escaped_plus,
        "BATCH.DELETE.OBJECT",
        "a%2Bb+c.txt",
        None,
        "a+b c.txt"
    );
    decodes!(
        batch_delete_percent_once,
        "BATCH.DELETE.OBJECT",
        "100%25.txt",
        None,
        "100%.txt"
    );
    // S3 lifecycle: once, `+` a space.
    decodes!(
        lifecycle_expire_once,
        "S3.EXPIRE.OBJECT",
        "tmp/old%20file%2541.tmp",
        Some("-"),
        "tmp/old file%41.tmp"
    );
    decodes!(
        lifecycle_transition_plus,
        "S3.TRANSITION_SIA.OBJECT",
        "cold/a+b.bin",
        None,
        "cold/a b.bin"
    );
    decodes!(
        lifecycle_delete_marker,
        "S3.CREATE.DELETEMARKER",
        "k%3D1",
        None,
        "k=1"
    );
    // Other providers' operations: once, unless the request line says otherwise.
    decodes!(
        other_once_by_default,
        "GetObject",
        "a%2541.pdf",
        None,
        "a%41.pdf"
    );
    decodes!(other_plus_kept, "GetObject", "a+b.pdf", None, "a+b.pdf");
    decodes!(
        other_request_line_says_twice,
        "GetObject",
        "a%2541.pdf",
        Some("GET /my-bucket/a%41.pdf HTTP/1.1"),
        "aA.pdf"
    );
    decodes!(
        other_request_line_says_plus_space,
        "GetObject",
        "a+b.pdf",
        Some("GET /my-bucket/a%20b.pdf HTTP/1.1"),
        "a b.pdf"
    );
    // What cannot be decoded is kept, never lost.
    decodes!(
        invalid_escape_kept,
        "REST.GET.OBJECT",
        "100%zz",
        None,
        "100%zz"
    );
    decodes!(
        truncated_escape_kept,
        "REST.GET.OBJECT",
        "abc%4",
        None,
        "abc%4"
    );
    decodes!(
        non_utf8_is_kept_as_logged,
        "REST.GET.OBJECT",
        "bad%FF.txt",
        None,
        "bad%FF.txt"
    );
    decodes!(
        non_utf8_twice_falls_back_to_once,
        "REST.GET.OBJECT",
        "bad%25FF.txt",
        None,
        "bad%FF.txt"
    );

    #[test]
    fn families_by_operation() {
        use KeyEncoding::*;
        for (op, family) in [
            (Some("REST.GET.OBJECT"), Twice),
            (Some("REST.S3_GET_OBJECT"), Twice),
            (Some("WEBSITE.GET.OBJECT"), Twice),
            (Some("BATCH.DELETE.OBJECT"), Once),
            (Some("S3.EXPIRE.OBJECT"), Once),
            (Some("S3.TRANSITION_GIR.OBJECT"), Once),
            (Some("GetObject"), Unknown),
            (None, Unknown),
        ] {
            assert_eq!(KeyEncoding::of(op), family, "{op:?}");
        }
    }

    #[test]
    fn nothing_to_decode_touches_no_buffer() {
        let mut scratch = KeyScratch::default();
        let key = "plain/key.txt";
        let out = decode_logged_key_in(key, Some("REST.GET.OBJECT"), None, None, &mut scratch);
        assert!(std::ptr::eq(out, key));
        assert_eq!(scratch.decoded.capacity(), 0);
    }

    /// One pass written the plainest way, byte by byte: what `push_decoded` must equal.
    fn decoded_byte_by_byte(src: &[u8], plus: Plus) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < src.len() {
            let hex = |at: usize| src.get(at).and_then(|&c| char::from(c).to_digit(16));
            if let (b'%', Some(h), Some(l)) = (src[i], hex(i + 1), hex(i + 2)) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            match (src[i], plus) {
                (b'+', Plus::Space) => out.push(b' '),
                (b'+', Plus::Shield) => out.extend_from_slice(b"%2B"),
                (b, _) => out.push(b),
            }
            i += 1;
        }
        out
    }

    proptest::proptest! {
        /// Escapes valid and not, truncated at the end, `+` in each of its meanings, and
        /// bytes before the first change: the same as the byte-by-byte pass, appended
        /// after what the buffer already held.
        #[test]
        fn one_pass_equals_decoding_byte_by_byte(
            src in proptest::collection::vec(
                proptest::sample::select(b"%%%+2BbFfgZ0a/ \xc3\xa9".to_vec()),
                0..40,
            ),
            plus in proptest::sample::select(vec![Plus::Keep, Plus::Space, Plus::Shield]),
        ) {
            let mut out = b"held".to_vec();
            let range = push_decoded(&src, plus, &mut out);
            proptest::prop_assert_eq!(&out[..4], b"held");
            proptest::prop_assert_eq!(range, 4..out.len());
            let expected = decoded_byte_by_byte(&src, plus);
            proptest::prop_assert_eq!(&out[4..], expected.as_slice());
        }
    }
}
