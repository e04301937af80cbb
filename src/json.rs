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

/// Appends bytes to a `Vec<u8>` with its write position and remaining room kept in
/// locals, so a write is one comparison and one copy, not a reload of the vector's length
/// and capacity around every copy. The length is brought up to date when it is dropped.
pub(crate) struct Appender<'b> {
    out: &'b mut Vec<u8>,
    /// `out`'s buffer at `out.len()`: bytes from here to `next` are appended but not yet
    /// counted in the length.
    base: *mut u8,
    /// Where the next byte goes.
    next: *mut u8,
    /// The end of `out`'s buffer (its capacity).
    end: *mut u8,
}

impl<'b> Appender<'b> {
    /// Appends at the end of `out`.
    #[inline]
    pub(crate) fn new(out: &'b mut Vec<u8>) -> Self {
        let spare = out.spare_capacity_mut();
        let base = spare.as_mut_ptr().cast::<u8>();
        // SAFETY: one past the end of the spare capacity is within (the end of) the same
        // allocation.
        let end = unsafe { base.add(spare.len()) };
        Self {
            out,
            base,
            next: base,
            end,
        }
    }

    /// Room left after `next`.
    #[inline(always)]
    fn room(&self) -> usize {
        self.end as usize - self.next as usize
    }

    /// Appends `bytes`.
    #[inline(always)]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if n > self.room() {
            self.make_room(n);
        }
        // SAFETY: `next` points into `out`'s allocation with at least `n` bytes of spare
        // capacity after it (checked just above, or made by `make_room`); `bytes` cannot
        // overlap that spare capacity, which nothing else can reach while `out` is
        // borrowed here. The short copies read and write only within the `n` bytes.
        unsafe {
            let (src, dst) = (bytes.as_ptr(), self.next);
            if n > 32 {
                std::ptr::copy_nonoverlapping(src, dst, n);
            } else if n >= 16 {
                // Two 16-byte copies, overlapping when `n < 32`.
                let head = src.cast::<u128>().read_unaligned();
                let tail = src.add(n - 16).cast::<u128>().read_unaligned();
                dst.cast::<u128>().write_unaligned(head);
                dst.add(n - 16).cast::<u128>().write_unaligned(tail);
            } else if n >= 8 {
                let head = src.cast::<u64>().read_unaligned();
                let tail = src.add(n - 8).cast::<u64>().read_unaligned();
                dst.cast::<u64>().write_unaligned(head);
                dst.add(n - 8).cast::<u64>().write_unaligned(tail);
            } else if n >= 4 {
                let head = src.cast::<u32>().read_unaligned();
                let tail = src.add(n - 4).cast::<u32>().read_unaligned();
                dst.cast::<u32>().write_unaligned(head);
                dst.add(n - 4).cast::<u32>().write_unaligned(tail);
            } else if n > 0 {
                *dst = *src;
                *dst.add(n / 2) = *src.add(n / 2);
                *dst.add(n - 1) = *src.add(n - 1);
            }
            self.next = dst.add(n);
        }
    }

    /// Appends one byte.
    #[inline(always)]
    pub(crate) fn push(&mut self, byte: u8) {
        if self.next == self.end {
            self.make_room(1);
        }
        // SAFETY: as in `put`, with at least one byte of room.
        unsafe {
            self.next.write(byte);
            self.next = self.next.add(1);
        }
    }

    /// Bytes in `out`, counting those appended so far.
    #[inline]
    fn len(&self) -> usize {
        self.out.len() + (self.next as usize - self.base as usize)
    }

    /// Overwrites the byte at `index` (anywhere in `out`, including bytes appended).
    #[inline]
    fn set(&mut self, index: usize, byte: u8) {
        self.commit();
        if let Some(slot) = self.out.get_mut(index) {
            *slot = byte;
        }
    }

    /// Brings `out`'s length up to date.
    #[inline]
    fn commit(&mut self) {
        let len = self.len();
        // SAFETY: the bytes from `base` to `next`, just after the old length, were all
        // initialised by `put` or `push`, and lie within the capacity.
        unsafe { self.out.set_len(len) };
        self.base = self.next;
    }

    #[cold]
    #[inline(never)]
    fn make_room(&mut self, additional: usize) {
        self.commit();
        self.out.reserve(additional.max(4096));
        let spare = self.out.spare_capacity_mut();
        self.base = spare.as_mut_ptr().cast::<u8>();
        self.next = self.base;
        // SAFETY: as in `new`.
        self.end = unsafe { self.base.add(spare.len()) };
    }
}

impl Drop for Appender<'_> {
    fn drop(&mut self) {
        self.commit();
    }
}

/// Writes one flat JSON object, field by field, into a caller-owned buffer. Every field is
/// written with a leading comma; [`ObjectWriter::finish`] turns the first one into `{`.
pub(crate) struct ObjectWriter<'b> {
    out: Appender<'b>,
    start: usize,
    trusted: bool,
}

impl<'b> ObjectWriter<'b> {
    /// Starts an object at the end of `out`.
    pub(crate) fn new(out: &'b mut Vec<u8>) -> Self {
        let start = out.len();
        Self {
            out: Appender::new(out),
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
                self.out.put(key.quoted.as_bytes());
                self.out.put(v.as_bytes());
                self.out.push(b'"');
            }
            Some(v) => {
                self.out.put(key.bare.as_bytes());
                write_escaped_string(&mut self.out, v.as_bytes());
            }
            None => self.out.put(key.null.as_bytes()),
        }
    }

    /// A string field that is always checked for escaping, even in a trusting writer.
    #[inline]
    pub(crate) fn untrusted_str(&mut self, key: &Key, value: Option<&str>) {
        match value {
            Some(v) => {
                self.out.put(key.bare.as_bytes());
                write_string(&mut self.out, v);
            }
            None => self.out.put(key.null.as_bytes()),
        }
    }

    /// An unsigned number field; `None` is written as `null`.
    #[inline(always)]
    pub(crate) fn u64(&mut self, key: &Key, value: Option<u64>) {
        match value {
            Some(v) => {
                self.out.put(key.bare.as_bytes());
                write_u64(&mut self.out, v);
            }
            None => self.out.put(key.null.as_bytes()),
        }
    }

    /// A boolean field; `None` is written as `null`.
    pub(crate) fn bool(&mut self, key: &Key, value: Option<bool>) {
        self.out.put(key.bare.as_bytes());
        self.out.put(match value {
            Some(true) => b"true",
            Some(false) => b"false",
            None => b"null",
        });
    }

    /// A field rendered beforehand, leading comma included (see [`render_field`]).
    #[inline]
    pub(crate) fn rendered(&mut self, field: &[u8]) {
        self.out.put(field);
    }

    /// An array of strings.
    pub(crate) fn str_array<'s>(&mut self, key: &Key, values: impl Iterator<Item = &'s str>) {
        self.out.put(key.bare.as_bytes());
        self.out.push(b'[');
        for (i, v) in values.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_string(&mut self.out, v);
        }
        self.out.push(b']');
    }

    /// A nested object of string values, such as `{"acl_required":"Maybe"}`. Names are
    /// written as given (they are this crate's own field names); values are escaped.
    pub(crate) fn str_map<'s>(
        &mut self,
        key: &Key,
        entries: impl Iterator<Item = (&'static str, &'s str)>,
    ) {
        self.out.put(key.bare.as_bytes());
        self.out.push(b'{');
        for (i, (name, value)) in entries.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.push(b'"');
            self.out.put(name.as_bytes());
            self.out.put(b"\":");
            write_string(&mut self.out, value);
        }
        self.out.push(b'}');
    }

    /// A nested object of string values whose names come from the input (a JSON
    /// record's unknown fields): names and values are both escaped.
    pub(crate) fn escaped_map<'s>(
        &mut self,
        key: &Key,
        entries: impl Iterator<Item = (&'s str, &'s str)>,
    ) {
        self.out.put(key.bare.as_bytes());
        self.out.push(b'{');
        for (i, (name, value)) in entries.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_string(&mut self.out, name);
            self.out.push(b':');
            write_string(&mut self.out, value);
        }
        self.out.push(b'}');
    }

    /// Closes the object.
    pub(crate) fn finish(mut self) {
        if self.out.len() > self.start {
            self.out.set(self.start, b'{');
        } else {
            self.out.push(b'{');
        }
        self.out.push(b'}');
    }
}

/// Renders one string field, as [`ObjectWriter::untrusted_str`] would write it, for
/// [`ObjectWriter::rendered`] to copy into many objects.
pub(crate) fn render_field(key: &Key, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut appender = Appender::new(&mut out);
    appender.put(key.bare.as_bytes());
    write_string(&mut appender, value);
    drop(appender);
    out
}

/// Appends `value` as a JSON string literal. The clean case is inlined so the copies of
/// short field values become plain moves; escaping lives out of line.
#[inline]
fn write_string(out: &mut Appender<'_>, value: &str) {
    let bytes = value.as_bytes();
    if needs_escape(bytes) {
        write_escaped_string(out, bytes);
    } else {
        out.push(b'"');
        out.put(bytes);
        out.push(b'"');
    }
}

#[cold]
#[inline(never)]
fn write_escaped_string(out: &mut Appender<'_>, bytes: &[u8]) {
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
        out.put(&bytes[start..i]);
        if escaped.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.put(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.put(escaped);
        }
        start = i + 1;
    }
    out.put(&bytes[start..]);
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
fn write_u64(out: &mut Appender<'_>, mut value: u64) {
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
    out.put(&buf[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(s: &str) -> String {
        let mut out = Vec::new();
        write_string(&mut Appender::new(&mut out), s);
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
    fn appender_copies_every_length_and_grows() {
        let source: Vec<u8> = (0..200u8).collect();
        let mut expected = Vec::new();
        let mut out = Vec::with_capacity(3);
        let mut appender = Appender::new(&mut out);
        for n in 0..=70 {
            let piece = &source[n..n * 2];
            appender.put(piece);
            appender.push(b'|');
            expected.extend_from_slice(piece);
            expected.push(b'|');
        }
        drop(appender);
        assert_eq!(out, expected);
    }

    #[test]
    fn rendered_field_matches_untrusted_str() {
        let mut direct = Vec::new();
        let mut o = ObjectWriter::new(&mut direct);
        o.untrusted_str(key!("s"), Some("a\"b"));
        o.finish();
        let mut copied = Vec::new();
        let mut o = ObjectWriter::new(&mut copied);
        o.rendered(&render_field(key!("s"), "a\"b"));
        o.finish();
        assert_eq!(direct, copied);
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
            write_u64(&mut Appender::new(&mut out), n);
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
