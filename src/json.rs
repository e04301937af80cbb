//! A minimal JSON object writer for the hot path: appends to a reused `Vec<u8>`, escapes
//! strings with a branch-free scan first (most log fields need no escaping at all), and
//! never allocates beyond growing the output buffer.

/// A field name with its JSON punctuation spelled out at compile time (see [`key!`]), so
/// that writing `,"name":"` is one copy of a constant instead of several pushes.
pub(crate) struct Key {
    /// `,"name":"`: before a string value.
    pub(crate) quoted: &'static str,
    /// `,"name":null`.
    pub(crate) null: &'static str,
    /// `,"name":`: before any other value.
    pub(crate) bare: &'static str,
}

/// Builds a `&'static Key` for a field name literal.
macro_rules! key {
    ($name:literal) => {
        &$crate::json::Key {
            quoted: concat!(",\"", $name, "\":\""),
            null: concat!(",\"", $name, "\":null"),
            bare: concat!(",\"", $name, "\":"),
        }
    };
}
pub(crate) use key;

/// Writes one flat JSON object, field by field, into a caller-owned buffer. Every field is
/// written with a leading comma; [`ObjectWriter::finish`] turns the first one into `{`.
pub(crate) struct ObjectWriter<'b> {
    out: &'b mut Vec<u8>,
    start: usize,
    trusted: bool,
}

impl<'b> ObjectWriter<'b> {
    /// Starts an object at the end of `out`.
    pub(crate) fn new(out: &'b mut Vec<u8>) -> Self {
        let start = out.len();
        Self {
            out,
            start,
            trusted: false,
        }
    }

    /// Starts an object whose [`ObjectWriter::str`] values are known to need no escaping
    /// (the caller has scanned the text they are sliced from).
    pub(crate) fn trusting(out: &'b mut Vec<u8>, trusted: bool) -> Self {
        let mut writer = Self::new(out);
        writer.trusted = trusted;
        writer
    }

    /// A string field; `None` is written as `null`. Escapes unless the writer is trusting.
    #[inline(always)]
    pub(crate) fn str(&mut self, key: &Key, value: Option<&str>) {
        match value {
            Some(v) if self.trusted || !needs_escape(v.as_bytes()) => {
                self.out.extend_from_slice(key.quoted.as_bytes());
                self.out.extend_from_slice(v.as_bytes());
                self.out.push(b'"');
            }
            Some(v) => {
                self.out.extend_from_slice(key.bare.as_bytes());
                write_escaped_string(self.out, v.as_bytes());
            }
            None => self.out.extend_from_slice(key.null.as_bytes()),
        }
    }

    /// A string field that is always checked for escaping, even in a trusting writer.
    #[inline]
    pub(crate) fn untrusted_str(&mut self, key: &Key, value: Option<&str>) {
        match value {
            Some(v) => {
                self.out.extend_from_slice(key.bare.as_bytes());
                write_string(self.out, v);
            }
            None => self.out.extend_from_slice(key.null.as_bytes()),
        }
    }

    /// An unsigned number field; `None` is written as `null`.
    #[inline(always)]
    pub(crate) fn u64(&mut self, key: &Key, value: Option<u64>) {
        match value {
            Some(v) => {
                self.out.extend_from_slice(key.bare.as_bytes());
                write_u64(self.out, v);
            }
            None => self.out.extend_from_slice(key.null.as_bytes()),
        }
    }

    /// A boolean field; `None` is written as `null`.
    pub(crate) fn bool(&mut self, key: &Key, value: Option<bool>) {
        self.out.extend_from_slice(key.bare.as_bytes());
        self.out.extend_from_slice(match value {
            Some(true) => b"true",
            Some(false) => b"false",
            None => b"null",
        });
    }

    /// An array of strings.
    pub(crate) fn str_array<'s>(&mut self, key: &Key, values: impl Iterator<Item = &'s str>) {
        self.out.extend_from_slice(key.bare.as_bytes());
        self.out.push(b'[');
        for (i, v) in values.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_string(self.out, v);
        }
        self.out.push(b']');
    }

    /// Closes the object.
    pub(crate) fn finish(self) {
        match self.out.get_mut(self.start) {
            Some(first_comma) => *first_comma = b'{',
            None => self.out.push(b'{'),
        }
        self.out.push(b'}');
    }
}

/// Appends `value` as a JSON string literal. The clean case is inlined so the copies of
/// short field values become plain moves; escaping lives out of line.
#[inline]
pub(crate) fn write_string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if needs_escape(bytes) {
        write_escaped_string(out, bytes);
    } else {
        write_clean_string(out, value);
    }
}

/// Appends a string known to need no escaping.
#[inline]
fn write_clean_string(out: &mut Vec<u8>, value: &str) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
}

#[cold]
#[inline(never)]
fn write_escaped_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escaped.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escaped);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// True when any byte must be escaped (`"`, `\\` or a control character). Tests eight
/// bytes at a time in a `u64` with the classic zero-byte and less-than bit tricks; the
/// last partial word is padded with a harmless byte.
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let word_needs_escape = |w: u64| {
        has_zero(w ^ (ONES * u64::from(b'"')))
            || has_zero(w ^ (ONES * u64::from(b'\\')))
            || w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0
    };
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut array = [0u8; 8];
        array.copy_from_slice(word);
        if word_needs_escape(u64::from_le_bytes(array)) {
            return true;
        }
    }
    let tail = words.remainder();
    let mut array = [b'a'; 8];
    array[..tail.len()].copy_from_slice(tail);
    word_needs_escape(u64::from_le_bytes(array))
}

/// Appends the decimal digits of `value`.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    // Two digits per division: half the divisions of the digit-at-a-time loop.
    while value >= 100 {
        let pair = (value % 100) as usize * 2;
        value /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if value >= 10 {
        let pair = value as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + value as u8;
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(s: &str) -> String {
        let mut out = Vec::new();
        write_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_round_trip_through_serde_json() {
        for s in [
            "",
            "plain",
            "quote\"back\\slash",
            "ctl\u{0}\u{1f}\n\r\t",
            "ünïcødé ✓",
            "\u{7f}",
        ] {
            let back: String = serde_json::from_str(&encoded(s)).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn needs_escape_finds_every_special_byte_at_every_position() {
        for len in 0..20 {
            assert!(!needs_escape(&vec![b'x'; len]));
            for pos in 0..len {
                for special in [b'"', b'\\', 0u8, 0x1f, b'\n'] {
                    let mut bytes = vec![b'x'; len];
                    bytes[pos] = special;
                    assert!(needs_escape(&bytes), "len {len} pos {pos} byte {special}");
                }
                for fine in [b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'] {
                    let mut bytes = vec![b'x'; len];
                    bytes[pos] = fine;
                    assert!(!needs_escape(&bytes), "len {len} pos {pos} byte {fine}");
                }
            }
        }
    }

    #[test]
    fn empty_object_and_escaped_values() {
        let mut out = b"prefix".to_vec();
        ObjectWriter::new(&mut out).finish();
        assert_eq!(out, b"prefix{}");
        let mut out = Vec::new();
        let mut o = ObjectWriter::trusting(&mut out, false);
        o.str(key!("q"), Some("say \"hi\"\n"));
        o.untrusted_str(key!("u"), Some("\u{1}"));
        o.finish();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"q": "say \"hi\"\n", "u": "\u{1}"}));
    }

    #[test]
    fn numbers_are_decimal() {
        for n in [
            0u64,
            7,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            1234567890,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn object_with_all_kinds_parses() {
        let mut out = Vec::new();
        let mut o = ObjectWriter::new(&mut out);
        o.str(key!("a"), Some("x"));
        o.str(key!("b"), None);
        o.u64(key!("c"), Some(3));
        o.bool(key!("d"), Some(true));
        o.str_array(key!("e"), ["p", "q"].into_iter());
        o.finish();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a":"x","b":null,"c":3,"d":true,"e":["p","q"]})
        );
    }
}
