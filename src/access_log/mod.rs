//! Parsing one S3 server access log line into a borrowed [`LogRecord`].
//!
//! The format is space-separated and positional. Three fields are quoted (`request_uri`,
//! `referer`, `user_agent`), the time is bracketed and contains a space, any field may be
//! `-`, and quotes inside a quoted field are not escaped: a quoted field ends at a `"`
//! followed by a space or the end of the line. Records have at least 18 fields (pre-2017
//! logs) and AWS appends new ones over time, so unknown trailing fields are kept, never
//! rejected. Requesters can be ARNs with spaces (CloudFront origin access identities); the
//! parser finds the operation field to know where such a requester ends.
//!
//! ```
//! use bucketlog::access_log::parse_line;
//! let line = r#"79a5 my-bucket [06/Feb/2019:00:00:38 +0000] 192.0.2.3 - 3E57427F3EXAMPLE REST.GET.OBJECT img%20a.png "GET /my-bucket/img%20a.png HTTP/1.1" 200 - 2662992 3462992 70 10 "-" "curl/8.0" -"#;
//! let record = parse_line(line).unwrap();
//! assert_eq!(record.http_status, Some(200));
//! assert_eq!(record.requester, None); // `-`, anonymous
//! assert_eq!(record.time.to_string(), "2019-02-06T00:00:38Z");
//! ```

mod error;
mod time;

pub use error::{Field, ParseError, ParseErrorKind};
pub use time::{LogTime, Rfc3339, UtcFields};

/// The fewest fields a record may have: everything up to and including `version_id`.
pub const MIN_FIELDS: usize = 18;

/// One access log record, borrowing every text field from the line it was parsed from.
///
/// Text fields are `None` where the log has `-` (or a quoted `"-"`). Fields that a shorter,
/// older record does not have at all are `None` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// Canonical ID of the source bucket's owner.
    pub bucket_owner: Option<&'a str>,
    /// The bucket the request was made to.
    pub bucket: Option<&'a str>,
    /// When the request was received, converted to UTC.
    pub time: LogTime,
    /// The requester's apparent IP address.
    pub remote_ip: Option<&'a str>,
    /// Canonical ID, ARN or service name; `None` for anonymous requests.
    pub requester: Option<&'a str>,
    /// The request ID.
    pub request_id: Option<&'a str>,
    /// The operation, such as `REST.GET.OBJECT`.
    pub operation: Option<&'a str>,
    /// The object key as logged (URL-encoded).
    pub key: Option<&'a str>,
    /// The request line without its quotes, such as `GET /bucket/key HTTP/1.1`.
    pub request_uri: Option<&'a str>,
    /// The HTTP status code.
    pub http_status: Option<u16>,
    /// The S3 error code, such as `AccessDenied`.
    pub error_code: Option<&'a str>,
    /// Response bytes sent.
    pub bytes_sent: Option<u64>,
    /// Total size of the object.
    pub object_size: Option<u64>,
    /// Milliseconds the request was in flight.
    pub total_time_ms: Option<u64>,
    /// Milliseconds S3 spent before the response started.
    pub turn_around_time_ms: Option<u64>,
    /// The `Referer` header.
    pub referer: Option<&'a str>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The object version ID.
    pub version_id: Option<&'a str>,
    /// The `x-amz-id-2` host ID.
    pub host_id: Option<&'a str>,
    /// `SigV2` or `SigV4`.
    pub signature_version: Option<&'a str>,
    /// The TLS cipher suite.
    pub cipher_suite: Option<&'a str>,
    /// `AuthHeader` or `QueryString`.
    pub authentication_type: Option<&'a str>,
    /// The endpoint used to connect.
    pub host_header: Option<&'a str>,
    /// The TLS version, such as `TLSv1.2`.
    pub tls_version: Option<&'a str>,
    /// The access point ARN.
    pub access_point_arn: Option<&'a str>,
    /// `Some(true)` for `Yes`, `Some(false)` for `-`, `None` when the record predates the
    /// field or holds a value that is not a flag (then see `acl_required_unparsed`).
    pub acl_required: Option<bool>,
    /// The `acl_required` field as written when it is not a flag (`Yes`, `-`, ...): such a
    /// line is still a record, and the value is kept rather than guessed at.
    pub acl_required_unparsed: Option<&'a str>,
    /// The AWS Region the request came from.
    pub source_region: Option<&'a str>,
    /// Everything after the last known field, unparsed; see [`LogRecord::extra_fields`].
    pub extra: &'a str,
}

impl<'a> LogRecord<'a> {
    /// Fields after `source_region` that this version does not know, in order, as written.
    pub fn extra_fields(&self) -> ExtraFields<'a> {
        ExtraFields {
            cursor: Cursor::new(self.extra),
        }
    }
}

/// Iterator over a record's unknown trailing fields.
#[derive(Debug, Clone)]
pub struct ExtraFields<'a> {
    cursor: Cursor<'a, 'static>,
}

impl<'a> Iterator for ExtraFields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.cursor.at_end() {
            return None;
        }
        Some(self.cursor.any_token())
    }
}

/// Parses one line (without its line terminator) into a record.
pub fn parse_line(line: &str) -> Result<LogRecord<'_>, ParseError> {
    parse_line_counting_quotes(line, None).map(|(record, _)| record)
}

/// How to read the requester field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequesterReading {
    /// One token, as the format says.
    Positional,
    /// Possibly several words: everything up to the token before the first
    /// operation-shaped token.
    Scan,
}

/// Like [`parse_line`], also returning how many `"` bytes of the line were field
/// delimiters: when that is every `"` on the line, no field value contains one.
///
/// The requester is normally one token. When the operation field is not operation-shaped,
/// the requester may contain spaces (a CloudFront origin access identity ARN), so the line
/// is also read with the operation taken to be the first operation-shaped token further
/// on. That reading wins when it parses; otherwise the positional reading stands. So a
/// provider whose operation field is not dotted (Storj's `GetObject`) and whose key
/// happens to look like an operation (`REPORT.PDF`) still parses positionally.
///
/// `spaces`, when given, marks the line's spaces, one bit per byte (see
/// `scan::scan_line`); fields are then found by searching bits rather than bytes.
pub(crate) fn parse_line_counting_quotes<'a>(
    line: &'a str,
    spaces: Option<&[u64]>,
) -> Result<(LogRecord<'a>, usize), ParseError> {
    let line = line.trim_end_matches([' ', '\r', '\n', '\t']);
    let (positional, operation_shaped) = parse_with(line, spaces, RequesterReading::Positional);
    if !operation_shaped && let (Ok(scanned), _) = parse_with(line, spaces, RequesterReading::Scan)
    {
        return Ok(scanned);
    }
    positional
}

/// Parses with one way of reading the requester; also says whether the operation field
/// it read was operation-shaped (`true` when the line ended before it).
#[allow(clippy::result_large_err)]
#[inline(always)]
fn parse_with<'a>(
    line: &'a str,
    spaces: Option<&[u64]>,
    reading: RequesterReading,
) -> (Result<(LogRecord<'a>, usize), ParseError>, bool) {
    let mut c = Cursor::new(line);
    c.spaces = spaces;
    let mut operation_shaped = true;
    let parsed = parse_fields(&mut c, reading, &mut operation_shaped);
    (parsed, operation_shaped)
}

#[inline(always)]
fn parse_fields<'a>(
    c: &mut Cursor<'a, '_>,
    reading: RequesterReading,
    operation_shaped: &mut bool,
) -> Result<(LogRecord<'a>, usize), ParseError> {
    let bucket_owner = c.bare(Field::BucketOwner)?;
    let bucket = c.bare(Field::Bucket)?;
    let time = c.time()?;
    let remote_ip = c.bare(Field::RemoteIp)?;
    let (requester, request_id, operation) = c.requester_request_id_operation(reading)?;
    *operation_shaped = operation.is_some_and(looks_like_operation);
    let key = c.bare(Field::Key)?;
    let request_uri = c.quoted(Field::RequestUri)?;
    let http_status = c
        .number_at_most(Field::HttpStatus, 999)?
        .map(|status| status as u16);
    let error_code = c.bare(Field::ErrorCode)?;
    let bytes_sent = c.number(Field::BytesSent)?;
    let object_size = c.number(Field::ObjectSize)?;
    let total_time_ms = c.number(Field::TotalTime)?;
    let turn_around_time_ms = c.number(Field::TurnAroundTime)?;
    let referer = c.quoted(Field::Referer)?;
    let user_agent = c.quoted(Field::UserAgent)?;
    let version_id = c.bare(Field::VersionId)?;
    // From here on every field is optional: older records simply stop.
    let host_id = c.optional_bare();
    let signature_version = c.optional_bare();
    let cipher_suite = c.optional_bare();
    let authentication_type = c.optional_bare();
    let host_header = c.optional_bare();
    let tls_version = c.optional_bare();
    let access_point_arn = c.optional_bare();
    let (acl_required, acl_required_unparsed) = c.flag();
    let source_region = c.optional_bare();

    let record = LogRecord {
        bucket_owner,
        bucket,
        time,
        remote_ip,
        requester,
        request_id,
        operation,
        key,
        request_uri,
        http_status,
        error_code,
        bytes_sent,
        object_size,
        total_time_ms,
        turn_around_time_ms,
        referer,
        user_agent,
        version_id,
        host_id: host_id.flatten(),
        signature_version: signature_version.flatten(),
        cipher_suite: cipher_suite.flatten(),
        authentication_type: authentication_type.flatten(),
        host_header: host_header.flatten(),
        tls_version: tls_version.flatten(),
        access_point_arn: access_point_arn.flatten(),
        acl_required,
        acl_required_unparsed,
        source_region: source_region.flatten(),
        extra: c.rest(),
    };
    Ok((record, c.delimiter_quotes))
}

/// `-` means "no value" in every field.
fn dash_to_none(s: &str) -> Option<&str> {
    if s == "-" { None } else { Some(s) }
}

/// True for tokens shaped like an S3 operation: `REST.GET.OBJECT`, `S3.COMPUTE.OBJECT.CHECKSUM`,
/// `REST.S3_GET_OBJECT` (Backblaze), `WEBSITE.GET.OBJECT`, `BATCH.DELETE.OBJECT`.
fn looks_like_operation(token: &str) -> bool {
    let b = token.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_uppercase) || b.last() == Some(&b'.') {
        return false;
    }
    let mut dot = false;
    for &c in b {
        if !OPERATION_BYTES[usize::from(c)] {
            return false;
        }
        dot |= c == b'.';
    }
    dot
}

/// The bytes an operation is made of: `A`-`Z`, `0`-`9`, `.` and `_`.
static OPERATION_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'_';
        c += 1;
    }
    table
};

/// Index of the first space at or after `start`, or the end of `bytes`. Most tokens are
/// a dozen bytes or so, too short for a vectorised search to pay for its set-up, so this
/// tests eight bytes at a time in a `u64` (the classic "has zero byte" bit trick).
#[inline]
fn find_space(bytes: &[u8], start: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = start;
    while let Some(word) = bytes.get(i..i + 8) {
        let mut array = [0u8; 8];
        array.copy_from_slice(word);
        let x = u64::from_le_bytes(array) ^ (ONES * u64::from(b' '));
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    bytes[i.min(bytes.len())..]
        .iter()
        .position(|&b| b == b' ')
        .map_or(bytes.len(), |p| i + p)
}

/// How far past the positional operation field the parser looks for it when the
/// requester contains spaces.
const MAX_REQUESTER_WORDS: usize = 16;

/// Index of the first space at or after `start` in a line of `len` bytes whose spaces are
/// marked in `spaces` (bit `i % 64` of word `i / 64`), or `len`. Bits at or past `len`
/// are ignored, so the bitmap may cover more than the line (before its end was trimmed).
#[inline]
fn find_marked_space(spaces: &[u64], start: usize, len: usize) -> usize {
    let mut w = start / 64;
    let Some(&first) = spaces.get(w) else {
        return len;
    };
    let mut bits = first >> (start % 64);
    if bits != 0 {
        return (start + bits.trailing_zeros() as usize).min(len);
    }
    loop {
        w += 1;
        bits = match spaces.get(w) {
            Some(&bits) => bits,
            None => return len,
        };
        if bits != 0 {
            return (w * 64 + bits.trailing_zeros() as usize).min(len);
        }
    }
}

#[derive(Debug, Clone)]
struct Cursor<'a, 's> {
    line: &'a str,
    pos: usize,
    /// `"` bytes consumed as the delimiters of quoted fields.
    delimiter_quotes: usize,
    /// The line's spaces, one bit per byte, when the caller has scanned for them.
    spaces: Option<&'s [u64]>,
}

impl<'a, 's> Cursor<'a, 's> {
    fn new(line: &'a str) -> Self {
        Self {
            line,
            pos: 0,
            delimiter_quotes: 0,
            spaces: None,
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    fn rest(&self) -> &'a str {
        self.line.get(self.pos..).unwrap_or("")
    }

    fn error(&self, kind: ParseErrorKind, field: Field, at: usize) -> ParseError {
        ParseError {
            kind,
            field,
            column: at + 1,
        }
    }

    fn require(&self, field: Field) -> Result<(), ParseError> {
        if self.at_end() {
            Err(self.error(ParseErrorKind::MissingField, field, self.line.len()))
        } else {
            Ok(())
        }
    }

    /// Moves past the single space that separates fields (if any).
    fn skip_separator(&mut self) {
        if self.line.as_bytes().get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    /// The next space-delimited token.
    fn bare_token(&mut self) -> &'a str {
        let bytes = self.line.as_bytes();
        let start = self.pos;
        let end = match self.spaces {
            Some(spaces) => find_marked_space(spaces, start, bytes.len()),
            None => find_space(bytes, start),
        };
        self.pos = end;
        self.skip_separator();
        &self.line[start..end]
    }

    /// The next token, honouring quotes and brackets (used for unknown trailing fields).
    fn any_token(&mut self) -> &'a str {
        let start = self.pos;
        let closer = match self.line.as_bytes().get(start) {
            Some(b'"') => Some(b'"'),
            Some(b'[') => Some(b']'),
            _ => None,
        };
        if let Some(end) = closer.and_then(|c| self.find_closer(start + 1, c)) {
            self.pos = end + 1;
            self.skip_separator();
            return &self.line[start..=end];
        }
        self.bare_token()
    }

    /// Index of the first `closer` at or after `from` that is followed by a space or the end.
    fn find_closer(&self, from: usize, closer: u8) -> Option<usize> {
        let bytes = self.line.as_bytes();
        memchr::memchr_iter(closer, bytes.get(from..)?)
            .map(|i| from + i)
            .find(|&i| matches!(bytes.get(i + 1), None | Some(b' ')))
    }

    fn bare(&mut self, field: Field) -> Result<Option<&'a str>, ParseError> {
        self.require(field)?;
        Ok(dash_to_none(self.bare_token()))
    }

    /// A field that older records do not have: `None` when absent, `Some(None)` for `-`.
    fn optional_bare(&mut self) -> Option<Option<&'a str>> {
        (!self.at_end()).then(|| dash_to_none(self.bare_token()))
    }

    fn quoted(&mut self, field: Field) -> Result<Option<&'a str>, ParseError> {
        self.require(field)?;
        let start = self.pos;
        if self.line.as_bytes()[start] != b'"' {
            return Ok(dash_to_none(self.bare_token()));
        }
        let end = self
            .find_closer(start + 1, b'"')
            .ok_or_else(|| self.error(ParseErrorKind::UnterminatedQuote, field, start))?;
        self.pos = end + 1;
        self.delimiter_quotes += 2;
        self.skip_separator();
        Ok(dash_to_none(&self.line[start + 1..end]))
    }

    fn time(&mut self) -> Result<LogTime, ParseError> {
        let field = Field::Time;
        self.require(field)?;
        let start = self.pos;
        if self.line.as_bytes()[start] != b'[' {
            self.bare_token();
            return Err(self.error(ParseErrorKind::InvalidTime, field, start));
        }
        let end = self
            .find_closer(start + 1, b']')
            .ok_or_else(|| self.error(ParseErrorKind::UnterminatedBracket, field, start))?;
        self.pos = end + 1;
        self.skip_separator();
        LogTime::parse_access_log(&self.line[start + 1..end])
            .ok_or_else(|| self.error(ParseErrorKind::InvalidTime, field, start))
    }

    fn number(&mut self, field: Field) -> Result<Option<u64>, ParseError> {
        self.number_at_most(field, u64::MAX)
    }

    fn number_at_most(&mut self, field: Field, max: u64) -> Result<Option<u64>, ParseError> {
        self.require(field)?;
        let start = self.pos;
        let token = self.bare_token();
        if token == "-" {
            return Ok(None);
        }
        let invalid = || self.error(ParseErrorKind::InvalidNumber, field, start);
        if token.is_empty() || token.len() > 20 {
            return Err(invalid());
        }
        if token.len() <= 19 {
            // At most 19 digits cannot overflow a u64: no checked arithmetic needed.
            let mut value = 0u64;
            for b in token.bytes() {
                let digit = b.wrapping_sub(b'0');
                if digit > 9 {
                    return Err(invalid());
                }
                value = value * 10 + u64::from(digit);
            }
            return if value <= max {
                Ok(Some(value))
            } else {
                Err(invalid())
            };
        }
        token
            .bytes()
            .try_fold(0u64, |acc, b| {
                let digit = u64::from(b.wrapping_sub(b'0'));
                (digit < 10).then_some(())?;
                acc.checked_mul(10)?.checked_add(digit)
            })
            .filter(|&v| v <= max)
            .map(Some)
            .ok_or_else(invalid)
    }

    /// A yes/no field: the flag, and the token as written when it is not one.
    fn flag(&mut self) -> (Option<bool>, Option<&'a str>) {
        if self.at_end() {
            return (None, None);
        }
        match self.bare_token() {
            "Yes" | "yes" | "YES" | "true" => (Some(true), None),
            "-" | "No" | "no" | "false" => (Some(false), None),
            other => (None, Some(other)),
        }
    }

    /// Reads requester, request ID and operation. The requester is one token unless it
    /// contains spaces, which shows as the operation not being where it should be: then
    /// the operation is the first operation-shaped token further on, the request ID the
    /// token before it, and the requester everything in between.
    #[allow(clippy::type_complexity)]
    fn requester_request_id_operation(
        &mut self,
        reading: RequesterReading,
    ) -> Result<(Option<&'a str>, Option<&'a str>, Option<&'a str>), ParseError> {
        // Some writers put two spaces before the requester (seen in public fixtures); a
        // requester never starts with a space, so the extra ones are separators.
        while self.line.as_bytes().get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
        self.require(Field::Requester)?;
        let requester_start = self.pos;
        let requester = self.bare_token();
        self.require(Field::RequestId)?;
        let request_id = self.bare_token();
        self.require(Field::Operation)?;
        let operation = self.bare_token();
        if reading == RequesterReading::Positional || looks_like_operation(operation) {
            return Ok((
                dash_to_none(requester),
                dash_to_none(request_id),
                dash_to_none(operation),
            ));
        }
        let positional = self.clone();
        let (mut id, mut op) = (request_id, operation);
        for _ in 0..MAX_REQUESTER_WORDS {
            if self.at_end() {
                break;
            }
            let next = self.bare_token();
            // The request-ID candidate turns out to be one more word of the requester.
            let requester_end = self.end_of(id);
            (id, op) = (op, next);
            if looks_like_operation(op) {
                let requester = &self.line[requester_start..requester_end];
                return Ok((Some(requester), dash_to_none(id), Some(op)));
            }
        }
        *self = positional;
        Ok((
            dash_to_none(requester),
            dash_to_none(request_id),
            dash_to_none(operation),
        ))
    }

    /// Byte offset just past `token`, which must be a slice of this cursor's line.
    fn end_of(&self, token: &str) -> usize {
        token.as_ptr() as usize - self.line.as_ptr() as usize + token.len()
    }
}

#[cfg(test)]
mod tests;
