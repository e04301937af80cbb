//! A minimal JSON object writer for the hot path: appends to a reused `Vec<u8>`, escapes
//! strings with a branch-free scan first (most log fields need no escaping at all), and
//! never allocates beyond growing the output buffer.

/// Writes one flat JSON object, field by field, into a caller-owned buffer.
pub(crate) struct ObjectWriter<'b> {
    out: &'b mut Vec<u8>,
    empty: bool,
}

impl<'b> ObjectWriter<'b> {
    /// Starts an object at the end of `out`.
    pub(crate) fn new(out: &'b mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string field; `None` is written as `null`.
    pub(crate) fn str(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        match value {
            Some(v) => write_string(self.out, v),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// An unsigned number field; `None` is written as `null`.
    pub(crate) fn u64(&mut self, key: &str, value: Option<u64>) {
        self.key(key);
        match value {
            Some(v) => write_u64(self.out, v),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    /// A boolean field; `None` is written as `null`.
    pub(crate) fn bool(&mut self, key: &str, value: Option<bool>) {
        self.key(key);
        self.out.extend_from_slice(match value {
            Some(true) => b"true",
            Some(false) => b"false",
            None => b"null",
        });
    }

    /// An array of strings.
    pub(crate) fn str_array<'s>(&mut self, key: &str, values: impl Iterator<Item = &'s str>) {
        self.key(key);
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
        self.out.push(b'}');
    }
}

/// Appends `value` as a JSON string literal.
pub(crate) fn write_string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.push(b'"');
    // Branch-free scan so the compiler can vectorise the common, clean case.
    let needs_escape = bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.extend_from_slice(bytes);
    } else {
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
    }
    out.push(b'"');
}

/// Appends the decimal digits of `value`.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
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
    fn numbers_are_decimal() {
        for n in [0u64, 7, 10, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn object_with_all_kinds_parses() {
        let mut out = Vec::new();
        let mut o = ObjectWriter::new(&mut out);
        o.str("a", Some("x"));
        o.str("b", None);
        o.u64("c", Some(3));
        o.bool("d", Some(true));
        o.str_array("e", ["p", "q"].into_iter());
        o.finish();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a":"x","b":null,"c":3,"d":true,"e":["p","q"]})
        );
    }
}
