//! Deterministic synthetic access logs: the same seed always gives the same lines, so tests,
//! benchmarks and load tests can share inputs without shipping large files.
//!
//! The mix is meant to look like a busy bucket: mostly object reads, some writes and
//! listings, 2xx/3xx/4xx/5xx statuses with matching error codes, IPv4 and IPv6 clients,
//! anonymous, IAM-user, assumed-role, canonical-ID and AWS-service requesters, keys that
//! need URL-encoding, and the usual user agents (with the odd scanner).
//!
//! Keys are written as S3 writes them (see [`encode_logged_key`]): twice URL-encoded in
//! the key field for `REST.*` operations, once for multi-object deletes and lifecycle
//! expirations, and once (as clients send it) in the request line.

use std::io::{self, Write};

use crate::access_log::LogTime;

/// A small, fast, seedable PRNG (SplitMix64): good enough for synthetic data, no dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Picks an item, weighted by the first element of each pair.
    pub fn weighted<'t, T>(&mut self, table: &'t [(u32, T)]) -> &'t T {
        let total: u64 = table.iter().map(|(w, _)| u64::from(*w)).sum();
        let mut roll = self.below(total);
        for (w, item) in table {
            if roll < u64::from(*w) {
                return item;
            }
            roll -= u64::from(*w);
        }
        &table[table.len() - 1].1
    }

    /// Picks an item uniformly.
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One synthetic record, owned, with every field as it will be written (`None` is `-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedRecord {
    /// Bucket owner canonical ID.
    pub bucket_owner: String,
    /// Bucket name.
    pub bucket: String,
    /// Request time.
    pub time: LogTime,
    /// Client address.
    pub remote_ip: String,
    /// Requester (`None` for anonymous).
    pub requester: Option<String>,
    /// Request ID.
    pub request_id: String,
    /// Operation.
    pub operation: String,
    /// URL-encoded key (`None` for bucket-level operations).
    pub key: Option<String>,
    /// Request line.
    pub request_uri: String,
    /// HTTP status.
    pub http_status: u16,
    /// Error code for failures.
    pub error_code: Option<String>,
    /// Bytes sent.
    pub bytes_sent: Option<u64>,
    /// Object size.
    pub object_size: Option<u64>,
    /// Total time.
    pub total_time_ms: u64,
    /// Turn-around time.
    pub turn_around_time_ms: Option<u64>,
    /// Referer.
    pub referer: Option<String>,
    /// User agent.
    pub user_agent: String,
    /// Host ID.
    pub host_id: String,
    /// TLS version (`None` for plain HTTP).
    pub tls_version: Option<String>,
    /// Whether an ACL was required.
    pub acl_required: bool,
    /// Source region (`None` for traffic from outside AWS).
    pub source_region: Option<String>,
}

impl GeneratedRecord {
    /// Makes the record one of `bucket`'s: its bucket field, and the bucket its path-style
    /// request line names, as S3 would log a request to that bucket.
    pub fn move_to(&mut self, bucket: String) {
        let old = format!(" /{}", self.bucket);
        if let Some(at) = self.request_uri.find(&old) {
            let end = at + old.len();
            let rest = &self.request_uri[end..];
            if rest.is_empty() || rest.starts_with(['/', '?', ' ']) {
                self.request_uri.replace_range(at + 2..end, &bucket);
            }
        }
        self.bucket = bucket;
    }

    /// Writes the record as one access log line, without the newline.
    pub fn write_line(&self, out: &mut impl Write) -> io::Result<()> {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let num = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
        let f = self.time.utc();
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS[(f.month as usize).saturating_sub(1) % 12];
        let (cipher, auth) = match &self.tls_version {
            Some(_) => ("ECDHE-RSA-AES128-GCM-SHA256", "AuthHeader"),
            None => ("-", "AuthHeader"),
        };
        let signature = if self.requester.is_some() {
            "SigV4"
        } else {
            "-"
        };
        write!(
            out,
            "{} {} [{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000] {} {} {} {} {} \"{}\" {} {} {} {} {} {} \"{}\" \"{}\" - {} {} {} {} {}.s3.us-east-1.amazonaws.com {} - {} {}",
            self.bucket_owner,
            self.bucket,
            f.day,
            month,
            f.year,
            f.hour,
            f.minute,
            f.second,
            self.remote_ip,
            dash(&self.requester),
            self.request_id,
            self.operation,
            dash(&self.key),
            self.request_uri,
            self.http_status,
            dash(&self.error_code),
            num(self.bytes_sent),
            num(self.object_size),
            self.total_time_ms,
            num(self.turn_around_time_ms),
            dash(&self.referer),
            self.user_agent,
            self.host_id,
            signature,
            cipher,
            if self.requester.is_some() { auth } else { "-" },
            self.bucket,
            dash(&self.tls_version),
            if self.acl_required { "Yes" } else { "-" },
            dash(&self.source_region),
        )
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateOptions {
    /// The PRNG seed.
    pub seed: u64,
    /// Unix time of the first record.
    pub start_unix_seconds: i64,
    /// Seconds the records are spread over (times never go backwards).
    pub span_seconds: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            seed: 42,
            // 2026-11-20T14:00:00Z
            start_unix_seconds: 1_795_183_200,
            span_seconds: 3600,
        }
    }
}

const OWNER: &str = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be";
const BUCKETS: &[&str] = &["example-assets", "example-data", "example-backups"];
const KEY_DIRS: &[&str] = &["images", "reports/2026", "backups/db", "public", "tmp"];
const KEY_NAMES: &[&str] = &[
    "logo.png",
    "annual report.pdf",
    "café menu.txt",
    "data+more.csv",
    "a&b=c.json",
    "index.html",
    "dump-0001.sql.gz",
    "100%.txt",
    "中文.txt",
];
const USER_AGENTS: &[(u32, &str)] = &[
    (
        25,
        "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023 prompt/off command/s3.cp",
    ),
    (
        20,
        "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.12.2 cfg/retry-mode#legacy Botocore/1.34.69",
    ),
    (
        15,
        "aws-sdk-java/2.25.16 Linux/5.10.213 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
    ),
    (
        15,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
    ),
    (
        8,
        "S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488 Linux/5.10.216 OpenJDK_64-Bit_Server_VM/25.372-b08 java/1.8.0_372 vendor/Oracle_Corporation cfg/retry-mode/standard",
    ),
    (
        7,
        "aws-internal/3 aws-sdk-java/1.12.690 Linux/5.10.213 OpenJDK_64-Bit_Server_VM/25.402-b08 java/1.8.0_402 kotlin/1.5.31 vendor/Oracle_Corporation cfg/retry-mode/standard",
    ),
    (6, "curl/8.5.0"),
    (2, "Wget/1.21.4"),
    (
        1,
        "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    ),
    (1, "sqlmap/1.8.3#stable (https://sqlmap.org)"),
];

#[derive(Clone, Copy)]
struct Op {
    operation: &'static str,
    method: &'static str,
    object: bool,
}

const OPS: &[(u32, Op)] = &[
    (
        60,
        Op {
            operation: "REST.GET.OBJECT",
            method: "GET",
            object: true,
        },
    ),
    (
        12,
        Op {
            operation: "REST.PUT.OBJECT",
            method: "PUT",
            object: true,
        },
    ),
    (
        12,
        Op {
            operation: "REST.HEAD.OBJECT",
            method: "HEAD",
            object: true,
        },
    ),
    (
        8,
        Op {
            operation: "REST.GET.BUCKET",
            method: "GET",
            object: false,
        },
    ),
    (
        3,
        Op {
            operation: "REST.DELETE.OBJECT",
            method: "DELETE",
            object: true,
        },
    ),
    (
        2,
        Op {
            operation: "REST.COPY.OBJECT",
            method: "PUT",
            object: true,
        },
    ),
    (
        2,
        Op {
            operation: "REST.GET.ACL",
            method: "GET",
            object: false,
        },
    ),
    (
        1,
        Op {
            operation: "S3.COMPUTE.OBJECT.CHECKSUM",
            method: "POST",
            object: true,
        },
    ),
    (
        2,
        Op {
            operation: "BATCH.DELETE.OBJECT",
            method: "POST",
            object: true,
        },
    ),
    (
        1,
        Op {
            operation: LIFECYCLE_EXPIRE,
            method: "-",
            object: true,
        },
    ),
];

/// The lifecycle expiration: S3 itself (`AmazonS3`) deletes, with no request line.
const LIFECYCLE_EXPIRE: &str = "S3.EXPIRE.OBJECT";

const STATUSES: &[(u32, (u16, Option<&str>))] = &[
    (80, (200, None)),
    (4, (206, None)),
    (3, (304, None)),
    (5, (403, Some("AccessDenied"))),
    (5, (404, Some("NoSuchKey"))),
    (1, (500, Some("InternalError"))),
    (2, (503, Some("SlowDown"))),
];

/// Percent-encodes a key the way clients put it in a request path (unreserved characters
/// and `/` kept, a space is `%20`).
pub fn encode_key(key: &str) -> String {
    encode_with(key, false)
}

/// Percent-encodes a key the way S3's log writer does: like [`encode_key`], but a space
/// is `+` (and so a `+` is `%2B`).
pub fn encode_key_form(key: &str) -> String {
    encode_with(key, true)
}

/// The key field S3 writes for `operation` on the object `key`: [`encode_key_form`]
/// once for `BATCH.*` and `S3.*` operations, then [`encode_key`] over that for `REST.*`
/// and `WEBSITE.*` (twice-encoded), matching [`crate::keys::KeyEncoding`].
pub fn encode_logged_key(key: &str, operation: &str) -> String {
    use crate::keys::KeyEncoding;
    match KeyEncoding::of(Some(operation)) {
        KeyEncoding::Twice => encode_key(&encode_key_form(key)),
        KeyEncoding::Once => encode_key_form(key),
        KeyEncoding::Unknown => encode_key(key),
    }
}

fn encode_with(key: &str, space_as_plus: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(key.len() * 3);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else if b == b' ' && space_as_plus {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An endless, deterministic stream of synthetic records.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: SplitMix64,
    options: GenerateOptions,
    index: u64,
    total: u64,
}

impl Generator {
    /// A generator for `total` records (used to spread times over the span).
    pub fn new(options: GenerateOptions, total: u64) -> Self {
        Self {
            rng: SplitMix64::new(options.seed),
            options,
            index: 0,
            total: total.max(1),
        }
    }

    /// The next record.
    pub fn next_record(&mut self) -> GeneratedRecord {
        let rng = &mut self.rng;
        let offset = (u128::from(self.index) * u128::from(self.options.span_seconds)
            / u128::from(self.total)) as i64;
        self.index += 1;
        let time = LogTime::from_unix_seconds(self.options.start_unix_seconds + offset);
        let bucket = rng.pick(BUCKETS).to_string();
        let op = *rng.weighted(OPS);
        let (status, error) = *rng.weighted(STATUSES);
        let requester = match rng.below(100) {
            0..=19 => None,
            20..=49 => Some(format!(
                "arn:aws:iam::1234567890{:02}:user/user{}",
                rng.below(3),
                rng.below(50)
            )),
            50..=79 => Some(format!(
                "arn:aws:sts::123456789012:assumed-role/{}/session-{}",
                rng.pick(&["AppRole", "DataPipeline", "Admin"]),
                rng.below(1000)
            )),
            80..=89 => Some(OWNER.to_string()),
            _ => Some(rng.pick(&["svc:s3.amazonaws.com", "AmazonS3"]).to_string()),
        };
        let remote_ip = if rng.below(5) == 0 {
            format!(
                "2001:db8:{:x}::{:x}",
                rng.below(0x10000),
                rng.below(0x10000)
            )
        } else {
            format!(
                "{}.{}.{}.{}",
                rng.pick(&[192, 198, 203, 10, 172]),
                rng.below(256),
                rng.below(256),
                1 + rng.below(254)
            )
        };
        let object_key = op
            .object
            .then(|| format!("{}/{}", rng.pick(KEY_DIRS), rng.pick(KEY_NAMES)));
        let key = object_key
            .as_deref()
            .map(|k| encode_logged_key(k, op.operation));
        let query = if op.object {
            if rng.below(10) == 0 {
                "?versionId=3HL4kqtJlcpXroDTDmJ"
            } else {
                ""
            }
        } else if op.operation == "REST.GET.ACL" {
            "?acl"
        } else {
            "?list-type=2&prefix=images%2F"
        };
        let path = match &object_key {
            Some(_) if op.operation == "BATCH.DELETE.OBJECT" => format!("/{bucket}"),
            Some(k) => format!("/{bucket}/{}", encode_key(k)),
            None => format!("/{bucket}"),
        };
        let query = if op.operation == "BATCH.DELETE.OBJECT" {
            "?delete"
        } else {
            query
        };
        let request_uri = if op.operation == LIFECYCLE_EXPIRE {
            "-".to_string()
        } else {
            format!("{} {}{} HTTP/1.1", op.method, path, query)
        };
        let requester = if op.operation == LIFECYCLE_EXPIRE {
            Some("AmazonS3".to_string())
        } else {
            requester
        };
        let object_size = (op.object && op.method != "DELETE").then(|| rng.below(50_000_000));
        let bytes_sent = match (status, op.method) {
            (200 | 206, "GET") => Some(object_size.unwrap_or(4096).min(10_000_000)),
            (_, _) if error.is_some() => Some(200 + rng.below(200)),
            _ => None,
        };
        let total_time_ms = 1 + rng.below(400);
        GeneratedRecord {
            bucket_owner: OWNER.to_string(),
            time,
            remote_ip,
            request_id: format!("{:016X}", rng.next_u64()),
            operation: op.operation.to_string(),
            key,
            request_uri,
            http_status: status,
            error_code: error.map(str::to_string),
            bytes_sent,
            object_size,
            total_time_ms,
            turn_around_time_ms: error.is_none().then_some(total_time_ms / 2),
            referer: (rng.below(20) == 0)
                .then(|| format!("https://www.example.com/{}", rng.below(100))),
            user_agent: rng.weighted(USER_AGENTS).to_string(),
            host_id: format!("{:016x}{:016x}=", rng.next_u64(), rng.next_u64()),
            tls_version: match rng.below(20) {
                0 => None,
                1 => Some("TLSv1.1".to_string()),
                2..=6 => Some("TLSv1.3".to_string()),
                _ => Some("TLSv1.2".to_string()),
            },
            acl_required: rng.below(50) == 0,
            source_region: (rng.below(3) > 0)
                .then(|| rng.pick(&["us-east-1", "eu-west-1"]).to_string()),
            requester,
            bucket,
        }
    }
}

/// Writes `lines` synthetic log lines, each ending in `\n`.
pub fn write_log(out: &mut impl Write, options: GenerateOptions, lines: u64) -> io::Result<()> {
    let mut generator = Generator::new(options, lines);
    for _ in 0..lines {
        generator.next_record().write_line(out)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// How records are spread over buckets and hours: the partition-churn shapes that
/// `bench/partition_churn` and `tests/partition_churn.rs` use. Every shape but
/// [`Shape::TimeOrder`] overrides each record's bucket (`bucket-0000`, …) and, for
/// [`Shape::RandomHours`], its time, from a second PRNG, so the rest of each line is the
/// same as [`write_log`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// [`write_log`]'s own records: three buckets, times in order over the span.
    #[default]
    TimeOrder,
    /// `n` buckets taking turns record by record, times in order.
    Interleaved(u32),
    /// `buckets` buckets and `hours` hours from the start, each record at random.
    RandomHours {
        /// How many buckets.
        buckets: u32,
        /// How many hours.
        hours: u32,
    },
    /// `n` buckets, each record's picked at random; times in order.
    Buckets(u32),
    /// [`write_log`]'s lines with one to four random byte edits each (replaced, deleted or
    /// inserted bytes, which may be invalid UTF-8): timestamps, buckets and fields broken
    /// at random, as a fuzzer would.
    Fuzzed,
}

impl std::str::FromStr for Shape {
    type Err = String;

    /// `time`, `interleaved:N`, `hours:BxH`, `buckets:N` or `fuzzed`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |v: &str| {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{v:?} is not a positive number in shape {s:?}"))
        };
        match s.split_once(':') {
            None if s == "time" => Ok(Shape::TimeOrder),
            None if s == "fuzzed" => Ok(Shape::Fuzzed),
            Some(("interleaved", n)) => Ok(Shape::Interleaved(number(n)?)),
            Some(("buckets", n)) => Ok(Shape::Buckets(number(n)?)),
            Some(("hours", bh)) => {
                let (b, h) = bh
                    .split_once('x')
                    .ok_or_else(|| format!("shape {s:?}: expected hours:BUCKETSxHOURS"))?;
                Ok(Shape::RandomHours {
                    buckets: number(b)?,
                    hours: number(h)?,
                })
            }
            _ => Err(format!(
                "unknown shape {s:?}: time, interleaved:N, hours:BxH, buckets:N or fuzzed"
            )),
        }
    }
}

/// Writes `lines` synthetic log lines spread as `shape` says, each ending in `\n`.
pub fn write_shaped_log(
    out: &mut impl Write,
    options: GenerateOptions,
    shape: Shape,
    lines: u64,
) -> io::Result<()> {
    let mut generator = Generator::new(options, lines);
    let mut rng = SplitMix64::new(options.seed ^ 0x5EED_0F5A_A9E5);
    let mut line = Vec::with_capacity(1024);
    for index in 0..lines {
        let mut record = generator.next_record();
        match shape {
            Shape::TimeOrder | Shape::Fuzzed => {}
            Shape::Interleaved(n) => record.move_to(shape_bucket(index % u64::from(n))),
            Shape::Buckets(n) => record.move_to(shape_bucket(rng.below(u64::from(n)))),
            Shape::RandomHours { buckets, hours } => {
                record.move_to(shape_bucket(rng.below(u64::from(buckets))));
                let hour = rng.below(u64::from(hours)) as i64;
                record.time = LogTime::from_unix_seconds(
                    options.start_unix_seconds + hour * 3600 + rng.below(3600) as i64,
                );
            }
        }
        line.clear();
        record.write_line(&mut line)?;
        if shape == Shape::Fuzzed {
            mutate(&mut line, &mut rng);
        }
        line.push(b'\n');
        out.write_all(&line)?;
    }
    Ok(())
}

fn shape_bucket(i: u64) -> String {
    format!("bucket-{i:04}")
}

/// One to four random edits; never a newline, so one line stays one line.
fn mutate(line: &mut Vec<u8>, rng: &mut SplitMix64) {
    const BYTES: &[u8] = b" \"[]-+:/0123456789azAZ%\t\r\x00\x7f\xc3\xa9\xff";
    for _ in 0..1 + rng.below(4) {
        if line.is_empty() {
            return;
        }
        let at = rng.below(line.len() as u64) as usize;
        let byte = *rng.pick(BYTES);
        match rng.below(3) {
            0 => line[at] = byte,
            1 => {
                line.remove(at);
            }
            _ => line.insert(at, byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_output() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_log(&mut a, GenerateOptions::default(), 200).unwrap();
        write_log(&mut b, GenerateOptions::default(), 200).unwrap();
        assert_eq!(a, b);
        let mut c = Vec::new();
        write_log(
            &mut c,
            GenerateOptions {
                seed: 7,
                ..Default::default()
            },
            200,
        )
        .unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn encode_key_escapes_what_s3_escapes() {
        assert_eq!(encode_key("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
        assert_eq!(encode_key_form("a b/c+d%é"), "a+b/c%2Bd%25%C3%A9");
    }

    #[test]
    fn logged_keys_have_s3s_shape_per_operation() {
        let key = "dt=1/a b+c.txt";
        assert_eq!(
            encode_logged_key(key, "REST.GET.OBJECT"),
            "dt%253D1/a%2Bb%252Bc.txt"
        );
        assert_eq!(
            encode_logged_key(key, "BATCH.DELETE.OBJECT"),
            "dt%3D1/a+b%2Bc.txt"
        );
        assert_eq!(
            encode_logged_key(key, "S3.EXPIRE.OBJECT"),
            "dt%3D1/a+b%2Bc.txt"
        );
    }

    #[test]
    fn generated_keys_decode_to_the_object_key() {
        use crate::enrich::{Enriched, Lineage};
        let mut g = Generator::new(GenerateOptions::default(), 2000);
        let mut line = Vec::new();
        let (mut twice, mut once) = (0, 0);
        for _ in 0..2000 {
            let record = g.next_record();
            line.clear();
            record.write_line(&mut line).unwrap();
            let text = String::from_utf8(line.clone()).unwrap();
            let parsed = crate::access_log::parse_line(&text).unwrap();
            let Some(key) = parsed.key else { continue };
            let lineage = Lineage {
                source_object: None,
                source_line: 1,
            };
            let decoded = Enriched::new(parsed, lineage, false).key_decoded.unwrap();
            // Every generated key is DIR/NAME from the tables above.
            let (dir, name) = decoded.rsplit_once('/').unwrap();
            assert!(KEY_DIRS.contains(&dir), "{key} -> {decoded}");
            assert!(KEY_NAMES.contains(&name), "{key} -> {decoded}");
            match crate::keys::KeyEncoding::of(parsed.operation) {
                crate::keys::KeyEncoding::Twice => twice += usize::from(key != decoded),
                _ => once += usize::from(key != decoded),
            }
        }
        assert!(
            twice > 100 && once > 5,
            "both shapes exercised: {twice} {once}"
        );
    }

    #[test]
    fn times_never_go_backwards() {
        let mut g = Generator::new(GenerateOptions::default(), 1000);
        let times: Vec<_> = (0..1000).map(|_| g.next_record().time).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn shapes_parse_and_spread_records_as_named() {
        assert_eq!("time".parse(), Ok(Shape::TimeOrder));
        assert_eq!("interleaved:5".parse(), Ok(Shape::Interleaved(5)));
        assert_eq!(
            "hours:3x1500".parse(),
            Ok(Shape::RandomHours {
                buckets: 3,
                hours: 1500
            })
        );
        assert_eq!("buckets:4000".parse(), Ok(Shape::Buckets(4000)));
        assert!("hours:3".parse::<Shape>().is_err());
        assert!("interleaved:0".parse::<Shape>().is_err());

        let mut out = Vec::new();
        write_shaped_log(
            &mut out,
            GenerateOptions::default(),
            Shape::Interleaved(5),
            10,
        )
        .unwrap();
        let buckets: Vec<&str> = std::str::from_utf8(&out)
            .unwrap()
            .lines()
            .map(|l| l.split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(
            &buckets[..6],
            [
                "bucket-0000",
                "bucket-0001",
                "bucket-0002",
                "bucket-0003",
                "bucket-0004",
                "bucket-0000"
            ]
        );
        // Time order is write_log's output, byte for byte.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_shaped_log(&mut a, GenerateOptions::default(), Shape::TimeOrder, 50).unwrap();
        write_log(&mut b, GenerateOptions::default(), 50).unwrap();
        assert_eq!(a, b);
        // Fuzzed lines stay one per line.
        let mut f = Vec::new();
        write_shaped_log(&mut f, GenerateOptions::default(), Shape::Fuzzed, 100).unwrap();
        assert_eq!(f.iter().filter(|&&c| c == b'\n').count(), 100);
    }

    #[test]
    fn a_moved_record_names_its_new_bucket_in_the_request_path() {
        let mut out = Vec::new();
        write_shaped_log(&mut out, GenerateOptions::default(), Shape::Buckets(3), 300).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        let mut path_style = 0;
        for line in text.lines() {
            let bucket = line.split(' ').nth(1).unwrap();
            let Some((_, request)) = line.split_once(" \"") else {
                continue;
            };
            let path = request.split(' ').nth(1).unwrap_or("");
            if let Some(rest) = path.strip_prefix('/') {
                path_style += 1;
                let named = rest.split(['/', '?']).next().unwrap();
                assert_eq!(named, bucket, "{line}");
            }
        }
        assert!(path_style > 200, "{path_style} path-style request lines");

        let mut record = Generator::new(GenerateOptions::default(), 1).next_record();
        record.request_uri = format!("GET /{0}x/{0}/k HTTP/1.1", record.bucket);
        record.move_to("other".into());
        assert_eq!(record.bucket, "other");
        assert!(
            record.request_uri.starts_with("GET /example-"),
            "a longer name is not cut"
        );
    }
}
