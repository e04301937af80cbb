//! A deterministic, seeded simulation of how S3 really delivers server access logs, for
//! testing detection across many small, late log objects (issue 9).
//!
//! - **Traffic:** one source bucket at `rate` requests per second (exactly that many in
//!   every second), as real S3 access log lines. The background is meant to stay quiet:
//!   anonymous readers from many addresses (a few of them busy), application roles on
//!   their own instance addresses, IAM users mostly behind two office NAT addresses, AWS's
//!   own traffic (`svc:` requesters and `aws-internal` user agents), a few percent of 404s
//!   and a low rate of 403s spread over every kind of subject. No scanner user agents and
//!   no TLS older than 1.2, so those alerts have nothing to fire on.
//! - **Attacks (the ground truth):** the three, each starting on a minute boundary
//!   so a perfect detector has a 6-minute window holding all of it:
//!   A: one anonymous address gets 120 403s over 5 minutes;
//!   B: 300 403s in one minute from 30 anonymous addresses (10 each);
//!   C: one IAM user gets 45 403s over 6 minutes, from an office NAT address that other
//!   users share, so only the requester can be blamed for it.
//! - **Hosts:** each request goes to one of H front-end hosts, chosen at random. A host
//!   appends what it served to its buffer and writes its own object on its own 5-minute
//!   timer (a random phase per host) or when the buffer reaches 5,000 records, whichever
//!   comes first. Keys are AWS's `raw/YYYY-mm-DD-HH-MM-SS-UniqueString`, stamped with the
//!   flush time; the unique string differs per host and flush. [`Layout::OneObject`]
//!   puts the whole hour in one object instead.
//! - **Delivery:** each object arrives late: mostly minutes, some hours, a few days. The
//!   arrival order follows from that, so objects arrive out of order. Some objects are
//!   delivered twice (a duplicate event, later); every run has at least one.
//!
//! The same seed always gives the same objects, bodies, arrival order and ground truth.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::collections::HashSet;

use bucketlog::access_log::LogTime;
use bucketlog::generate::{GeneratedRecord, SplitMix64};

/// The seed the recorded results (BENCHMARKS.md) were measured with.
pub const DEFAULT_SEED: u64 = 9;

/// The bucket owner's canonical ID written in every line.
const OWNER: &str = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be";

/// The account the bucket, its roles and users live in.
const ACCOUNT: &str = "123456789012";

/// The office NAT addresses most IAM users (and attack C) come from.
pub const OFFICE_NAT: [&str; 2] = ["203.0.113.10", "203.0.113.11"];

/// How the hour's records are cut into log objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The whole hour in one object: what today's per-object detection was designed for.
    OneObject,
    /// This many front-end hosts, each flushing its own objects.
    Hosts(u32),
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layout::OneObject => f.write_str("all in one object"),
            Layout::Hosts(h) => write!(f, "{h}"),
        }
    }
}

/// Sizes of the background population.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Population {
    /// Distinct anonymous reader addresses (picked with a skew, so a few are busy).
    pub anonymous_ips: usize,
    /// Application roles.
    pub roles: usize,
    /// Sessions (instances, each with its own address) per role.
    pub sessions_per_role: usize,
    /// IAM users (80% of their requests through the office NAT, the rest from home).
    pub users: usize,
}

impl Default for Population {
    fn default() -> Self {
        Self {
            anonymous_ips: 1500,
            roles: 6,
            sessions_per_role: 4,
            users: 30,
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The PRNG seed.
    pub seed: u64,
    /// The source bucket named in every record.
    pub bucket: String,
    /// Unix time of the first second simulated; a whole minute (an hour is best).
    pub start: i64,
    /// Seconds simulated.
    pub seconds: i64,
    /// Background requests in every second (attacks come on top).
    pub rate: u32,
    /// Hosts or one object.
    pub layout: Layout,
    /// A host's flush interval.
    pub flush_seconds: i64,
    /// A host flushes when its buffer holds this many records.
    pub flush_records: usize,
    /// Objects delivered twice, per thousand.
    pub duplicate_per_mille: u64,
    /// Who the background traffic comes from.
    pub population: Population,
}

impl SimConfig {
    /// The simulation: one hour at 20 requests/s from `start`, 5-minute or
    /// 5,000-record flushes, 3% duplicates.
    pub fn new(layout: Layout, start: i64) -> Self {
        Self {
            seed: DEFAULT_SEED,
            bucket: "sim-assets".into(),
            start: start - start.rem_euclid(60),
            seconds: 3600,
            rate: 20,
            layout,
            flush_seconds: 300,
            flush_records: 5000,
            duplicate_per_mille: 30,
            population: Population::default(),
        }
    }
}

/// What an alert about an attack may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The whole bucket (an alert with no subject).
    Bucket,
    /// One remote address.
    RemoteIp(String),
    /// One requester.
    Requester(String),
}

/// One injected attack: the ground truth.
#[derive(Debug, Clone)]
pub struct Attack {
    /// `A`, `B` or `C`.
    pub name: &'static str,
    /// What it is, for humans.
    pub what: String,
    /// First request (Unix seconds).
    pub start: i64,
    /// End of its last minute (exclusive).
    pub end: i64,
    /// 403 responses injected.
    pub forbidden: u64,
    /// What a correct alert about it names.
    pub target: Target,
}

/// One log object as a host wrote it.
#[derive(Debug, Clone)]
pub struct SimObject {
    /// `raw/YYYY-mm-DD-HH-MM-SS-UniqueString`.
    pub key: String,
    /// The access log lines, each ending in `\n`.
    pub body: Vec<u8>,
    /// The host that wrote it.
    pub host: u32,
    /// When the host wrote it (Unix seconds).
    pub flushed_at: i64,
    /// Records in it.
    pub records: usize,
    /// Its earliest and latest record time.
    pub first: i64,
    /// See `first`.
    pub last: i64,
}

/// One delivery event, in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Index into [`Simulation::objects`].
    pub object: usize,
    /// When the event arrives (Unix seconds).
    pub at: i64,
    /// True for the second delivery of an object already delivered.
    pub duplicate: bool,
}

/// The simulated delivery and its ground truth.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// What was simulated.
    pub config: SimConfig,
    /// Every object written, in flush order.
    pub objects: Vec<SimObject>,
    /// Every delivery, in arrival order (its index is the arrival position).
    pub arrivals: Vec<Arrival>,
    /// The attacks injected.
    pub attacks: Vec<Attack>,
    /// Requests in all objects (background and attacks).
    pub requests: usize,
}

/// One request, before it is written as a line.
struct Request {
    time: i64,
    ip: String,
    requester: Option<String>,
    operation: &'static str,
    key: Option<String>,
    status: u16,
    user_agent: &'static str,
}

const UA_CLI: &str =
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023 prompt/off command/s3.cp";
const UA_BOTO: &str = "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.12.2 cfg/retry-mode#legacy Botocore/1.34.69";
const UA_JAVA: &str = "aws-sdk-java/2.25.16 Linux/5.10.213 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy";
const UA_BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36";
const UA_INTERNAL: &str = "aws-internal/3 aws-sdk-java/1.12.690 Linux/5.10.213 OpenJDK_64-Bit_Server_VM/25.402-b08 java/1.8.0_402 kotlin/1.5.31 vendor/Oracle_Corporation cfg/retry-mode/standard";
const UA_CURL: &str = "curl/8.5.0";
const UA_PYTHON: &str = "python-requests/2.31.0";

const KEY_DIRS: &[&str] = &["images", "css", "js", "downloads", "reports/2026", "data"];
const KEY_NAMES: &[&str] = &[
    "logo.png",
    "hero banner.jpg",
    "site.css",
    "app.js",
    "annual report.pdf",
    "part-00000.parquet",
    "index.html",
    "menu café.txt",
];

/// Who the background traffic comes from.
struct People {
    anonymous: Vec<String>,
    /// (requester ARN, instance address).
    sessions: Vec<(String, String)>,
    /// (requester ARN, home address).
    users: Vec<(String, String)>,
}

fn public_ip(rng: &mut SplitMix64) -> String {
    if rng.below(8) == 0 {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.below(0x10000),
            rng.below(0x10000),
            1 + rng.below(0xfffe)
        )
    } else {
        format!(
            "{}.{}.{}.{}",
            rng.pick(&[34, 52, 54, 81, 86, 91, 103, 152, 185, 188]),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        )
    }
}

impl People {
    fn new(rng: &mut SplitMix64, p: &Population) -> Self {
        let anonymous = (0..p.anonymous_ips).map(|_| public_ip(rng)).collect();
        let roles = [
            "WebAppRole",
            "ThumbnailerRole",
            "EtlRole",
            "ReportingRole",
            "BackupRole",
            "SearchIndexerRole",
            "MlTrainingRole",
            "ApiRole",
        ];
        let mut sessions = Vec::new();
        for r in 0..p.roles {
            for _ in 0..p.sessions_per_role {
                let instance = format!("i-0{:016x}", rng.next_u64() >> 4);
                let arn = format!(
                    "arn:aws:sts::{ACCOUNT}:assumed-role/{}/{instance}",
                    roles[r % roles.len()]
                );
                let ip = format!("10.20.{}.{}", rng.below(64), 1 + rng.below(254));
                sessions.push((arn, ip));
            }
        }
        let users = (0..p.users)
            .map(|u| {
                (
                    format!("arn:aws:iam::{ACCOUNT}:user/staff{u:02}"),
                    public_ip(rng),
                )
            })
            .collect();
        Self {
            anonymous,
            sessions,
            users,
        }
    }

    /// One background request at `time`.
    fn request(&self, rng: &mut SplitMix64, time: i64) -> Request {
        let roll = rng.below(1000);
        let (ip, requester, user_agent, internal) = match roll {
            // 45%: anonymous readers of the public parts, skewed towards a few busy ones.
            0..=449 => {
                let u = (rng.below(1 << 20) as f64) / f64::from(1 << 20);
                let i = ((self.anonymous.len() as f64) * u * u * u) as usize;
                let ua = if rng.below(4) == 0 {
                    UA_CURL
                } else {
                    UA_BROWSER
                };
                (self.anonymous[i].clone(), None, ua, false)
            }
            // 35%: application roles, each session on its own instance address.
            450..=799 => {
                let (arn, ip) = rng.pick(&self.sessions);
                let ua = if rng.below(2) == 0 { UA_JAVA } else { UA_BOTO };
                (ip.clone(), Some(arn.clone()), ua, false)
            }
            // 17%: IAM users, mostly through the office NAT.
            800..=969 => {
                let (arn, home) = rng.pick(&self.users);
                let ip = if rng.below(5) == 0 {
                    home.clone()
                } else {
                    rng.pick(&OFFICE_NAT).to_string()
                };
                (ip, Some(arn.clone()), UA_CLI, false)
            }
            // 3%: AWS's own traffic (replication, inventory, the logging service).
            _ => {
                let ip = format!("52.216.{}.{}", rng.below(256), 1 + rng.below(254));
                if rng.below(2) == 0 {
                    (
                        ip,
                        Some("svc:s3.amazonaws.com".to_string()),
                        UA_INTERNAL,
                        true,
                    )
                } else {
                    let arn = format!("arn:aws:sts::{ACCOUNT}:assumed-role/ReplicationRole/s3");
                    (ip, Some(arn), UA_INTERNAL, true)
                }
            }
        };
        let (operation, object) = match rng.below(100) {
            0..=69 => ("REST.GET.OBJECT", true),
            70..=81 => ("REST.HEAD.OBJECT", true),
            82..=91 if requester.is_some() => ("REST.PUT.OBJECT", true),
            82..=91 => ("REST.GET.OBJECT", true),
            _ => ("REST.GET.BUCKET", false),
        };
        let status = if internal {
            200
        } else {
            match rng.below(1000) {
                0..=2 => 403,
                3..=32 => 404,
                33..=52 => 304,
                53..=72 => 206,
                73..=74 => 503,
                _ => 200,
            }
        };
        let key = object.then(|| {
            bucketlog::generate::encode_key(&format!(
                "{}/{}",
                rng.pick(KEY_DIRS),
                rng.pick(KEY_NAMES)
            ))
        });
        Request {
            time,
            ip,
            requester,
            operation,
            key,
            status,
            user_agent,
        }
    }
}

/// The three attacks of the issue, placed in the hour, and their requests.
fn attacks(config: &SimConfig, rng: &mut SplitMix64) -> (Vec<Attack>, Vec<Request>) {
    let t0 = config.start;
    let a_ip = "198.51.100.23".to_string();
    let c_user = format!("arn:aws:iam::{ACCOUNT}:user/contractor-leaked-key");
    let mut requests = Vec::new();
    let denied = |time: i64, ip: String, requester: Option<String>, key: String, ua| Request {
        time,
        ip,
        requester,
        operation: "REST.GET.OBJECT",
        key: Some(key),
        status: 403,
        user_agent: ua,
    };
    // A: minute 8, one address, 120 403s over 5 minutes (one every 2.5 s).
    let a_start = t0 + 8 * 60;
    for i in 0..120 {
        requests.push(denied(
            a_start + i * 5 / 2,
            a_ip.clone(),
            None,
            format!("private/invoice-{:05}.pdf", 1000 + i),
            UA_CURL,
        ));
    }
    // B: minute 24, 300 403s within the minute from 30 addresses, 10 each.
    let b_start = t0 + 24 * 60;
    let b_ips: Vec<String> = (0..30).map(|i| format!("192.0.2.{}", 100 + i)).collect();
    for i in 0..300 {
        requests.push(denied(
            b_start + rng.below(60) as i64,
            b_ips[i % 30].clone(),
            None,
            format!("backups/db-{:04}.sql.gz", rng.below(10_000)),
            UA_PYTHON,
        ));
    }
    // C: minute 41, one IAM user, 45 403s over 6 minutes (one every 8 s), through the
    // office NAT that other users share.
    let c_start = t0 + 41 * 60;
    for i in 0..45 {
        requests.push(denied(
            c_start + i * 8,
            OFFICE_NAT[0].to_string(),
            Some(c_user.clone()),
            format!("payroll/2026/{:02}.csv", i % 12 + 1),
            UA_CLI,
        ));
    }
    requests.sort_by_key(|r| r.time);
    let attacks = vec![
        Attack {
            name: "A",
            what: format!("{a_ip} gets 120 403s over 5 minutes"),
            start: a_start,
            end: a_start + 5 * 60,
            forbidden: 120,
            target: Target::RemoteIp(a_ip),
        },
        Attack {
            name: "B",
            what: "300 403s in one minute from 30 addresses".into(),
            start: b_start,
            end: b_start + 60,
            forbidden: 300,
            target: Target::Bucket,
        },
        Attack {
            name: "C",
            what: format!("{c_user} gets 45 403s over 6 minutes"),
            start: c_start,
            end: c_start + 6 * 60,
            forbidden: 45,
            target: Target::Requester(c_user),
        },
    ];
    (attacks, requests)
}

fn write_line(bucket: &str, r: Request, rng: &mut SplitMix64, out: &mut Vec<u8>) {
    let error_code = match r.status {
        403 => Some("AccessDenied".to_string()),
        404 => Some("NoSuchKey".to_string()),
        503 => Some("SlowDown".to_string()),
        _ => None,
    };
    let path = match &r.key {
        Some(k) => format!("/{bucket}/{k}"),
        None => format!("/{bucket}?list-type=2&prefix=images%2F"),
    };
    let method = match r.operation {
        "REST.HEAD.OBJECT" => "HEAD",
        "REST.PUT.OBJECT" => "PUT",
        _ => "GET",
    };
    let size = r.key.as_ref().map(|_| 1000 + rng.below(5_000_000));
    let bytes_sent = match r.status {
        200 | 206 if method == "GET" => size.or(Some(2048)),
        _ if error_code.is_some() => Some(243),
        _ => None,
    };
    let total_time_ms = 1 + rng.below(250);
    let record = GeneratedRecord {
        bucket_owner: OWNER.to_string(),
        bucket: bucket.to_string(),
        time: LogTime::from_unix_seconds(r.time),
        remote_ip: r.ip,
        requester: r.requester,
        request_id: format!("{:016X}", rng.next_u64()),
        operation: r.operation.to_string(),
        key: r.key,
        request_uri: format!("{method} {path} HTTP/1.1"),
        http_status: r.status,
        turn_around_time_ms: error_code.is_none().then_some(total_time_ms / 2),
        error_code,
        bytes_sent,
        object_size: size,
        total_time_ms,
        referer: None,
        user_agent: r.user_agent.to_string(),
        host_id: format!("{:016x}{:016x}=", rng.next_u64(), rng.next_u64()),
        tls_version: Some(
            if rng.below(4) == 0 {
                "TLSv1.3"
            } else {
                "TLSv1.2"
            }
            .to_string(),
        ),
        acl_required: false,
        source_region: None,
    };
    // Writing to a Vec cannot fail.
    let _ = record.write_line(out);
    out.push(b'\n');
}

/// `raw/YYYY-mm-DD-HH-MM-SS-UniqueString`.
fn log_key(flushed_at: i64, unique: u64) -> String {
    let u = LogTime::from_unix_seconds(flushed_at).utc();
    format!(
        "raw/{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{unique:016X}",
        u.year, u.month, u.day, u.hour, u.minute, u.second
    )
}

/// A host's buffer, written as one object when it flushes.
struct Host {
    body: Vec<u8>,
    records: usize,
    first: i64,
    last: i64,
    next_timer: i64,
    flushes: u64,
}

impl Host {
    fn flush(&mut self, seed: u64, host: u32, at: i64, out: &mut Vec<SimObject>) {
        if self.records == 0 {
            return;
        }
        let unique = SplitMix64::new(seed ^ (u64::from(host) << 32) ^ self.flushes).next_u64();
        self.flushes += 1;
        out.push(SimObject {
            key: log_key(at, unique),
            body: std::mem::take(&mut self.body),
            host,
            flushed_at: at,
            records: self.records,
            first: self.first,
            last: self.last,
        });
        self.records = 0;
    }
}

/// How late one object arrives, in seconds: mostly minutes, some hours, a few days.
fn delivery_delay(rng: &mut SplitMix64) -> i64 {
    let roll = rng.below(1000);
    let seconds = match roll {
        0..=849 => 120 + rng.below(58 * 60),
        850..=979 => 3600 + rng.below(11 * 3600),
        _ => 86_400 + rng.below(3 * 86_400),
    };
    seconds as i64
}

/// Runs the simulation.
pub fn simulate(config: &SimConfig) -> Simulation {
    let mut rng = SplitMix64::new(config.seed);
    let people = People::new(&mut rng, &config.population);
    let (attacks, mut injected) = attacks(config, &mut rng);
    injected.reverse();
    let hosts = match config.layout {
        Layout::OneObject => 1,
        Layout::Hosts(h) => h.max(1),
    };
    let mut host_rng = SplitMix64::new(config.seed.wrapping_mul(31).wrapping_add(7));
    let mut line_rng = SplitMix64::new(config.seed.wrapping_mul(131).wrapping_add(3));
    let end = config.start + config.seconds;
    let mut buffers: Vec<Host> = (0..hosts)
        .map(|_| Host {
            body: Vec::new(),
            records: 0,
            first: 0,
            last: 0,
            next_timer: match config.layout {
                Layout::OneObject => i64::MAX,
                Layout::Hosts(_) => {
                    config.start + 1 + host_rng.below(config.flush_seconds as u64 - 1) as i64
                }
            },
            flushes: 0,
        })
        .collect();
    let mut objects = Vec::new();
    let mut requests = 0;
    for second in config.start..end {
        let mut batch: Vec<Request> = (0..config.rate)
            .map(|_| people.request(&mut rng, second))
            .collect();
        while injected.last().is_some_and(|r| r.time == second) {
            batch.extend(injected.pop());
        }
        for request in batch {
            let h = host_rng.below(u64::from(hosts)) as u32;
            let host = &mut buffers[h as usize];
            while request.time >= host.next_timer {
                let at = host.next_timer;
                host.flush(config.seed, h, at, &mut objects);
                host.next_timer += config.flush_seconds;
            }
            if host.records == 0 {
                host.first = request.time;
            }
            host.last = request.time;
            host.records += 1;
            requests += 1;
            write_line(&config.bucket, request, &mut line_rng, &mut host.body);
            if config.layout != Layout::OneObject && host.records >= config.flush_records {
                host.flush(config.seed, h, second, &mut objects);
            }
        }
    }
    for (h, host) in buffers.iter_mut().enumerate() {
        let at = match config.layout {
            Layout::OneObject => end,
            Layout::Hosts(_) => host.next_timer,
        };
        host.flush(config.seed, h as u32, at, &mut objects);
    }
    objects.sort_by(|a, b| a.flushed_at.cmp(&b.flushed_at).then(a.host.cmp(&b.host)));
    let arrivals = deliver(&objects, config, &mut SplitMix64::new(config.seed ^ 0xD311));
    Simulation {
        config: config.clone(),
        objects,
        arrivals,
        attacks,
        requests,
    }
}

/// Each object's arrival (and, for some, a second one), sorted by arrival time.
fn deliver(objects: &[SimObject], config: &SimConfig, rng: &mut SplitMix64) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let at = object.flushed_at + delivery_delay(rng);
        arrivals.push(Arrival {
            object: i,
            at,
            duplicate: false,
        });
        if rng.below(1000) < config.duplicate_per_mille {
            arrivals.push(Arrival {
                object: i,
                at: at + 1 + rng.below(3600) as i64,
                duplicate: true,
            });
        }
    }
    // Every run re-delivers at least one object, so every run exercises a duplicate.
    if !arrivals.iter().any(|a| a.duplicate)
        && let Some(first) = arrivals.first().copied()
    {
        arrivals.push(Arrival {
            at: first.at + 1 + rng.below(3600) as i64,
            duplicate: true,
            ..first
        });
    }
    // Stable: a duplicate never overtakes its first delivery (it is strictly later).
    arrivals.sort_by_key(|a| a.at);
    arrivals
}

/// An alert as read back (from SNS or an alert document), in the terms scoring needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenAlert {
    /// Its stable ID.
    pub alert_id: String,
    /// `forbidden_spike`, `new_requester`, ...
    pub alert_type: String,
    /// `(kind, value)` when it is about one subject.
    pub subject: Option<(String, String)>,
    /// Its window (Unix seconds, end exclusive).
    pub window_start: i64,
    /// See `window_start`.
    pub window_end: i64,
    /// Matching requests it reports.
    pub count: u64,
}

impl SeenAlert {
    /// True for the newcomer alerts, which are scored apart (see [`Scorecard`]).
    pub fn is_newcomer(&self) -> bool {
        matches!(self.alert_type.as_str(), "new_requester" | "new_remote_ip")
    }

    fn names(&self, target: &Target) -> bool {
        let subject = self.subject.as_ref().map(|(k, v)| (k.as_str(), v.as_str()));
        match (target, subject) {
            (Target::Bucket, None) => true,
            (Target::RemoteIp(ip), Some(("remote_ip", v))) => v == ip,
            (Target::Requester(r), Some(("requester", v))) => v == r,
            _ => false,
        }
    }

    /// True when this is a 403 spike alert naming the attack's target in a window that
    /// overlaps the attack.
    pub fn is_about(&self, attack: &Attack) -> bool {
        self.alert_type == "forbidden_spike"
            && self.names(&attack.target)
            && self.window_start < attack.end
            && attack.start < self.window_end
    }
}

/// How one attack was detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackResult {
    /// The attack's name.
    pub name: &'static str,
    /// The notifications about it, in the order they were read.
    pub notifications: Vec<SeenAlert>,
}

impl AttackResult {
    /// `found`, `found as N partial alerts (counts ...)` or `missed`.
    pub fn verdict(&self) -> String {
        match self.notifications.len() {
            0 => "missed".into(),
            1 => "found".into(),
            n => {
                let mut counts: Vec<u64> = self.notifications.iter().map(|a| a.count).collect();
                counts.sort_unstable();
                let ids: HashSet<&str> = self
                    .notifications
                    .iter()
                    .map(|a| a.alert_id.as_str())
                    .collect();
                format!(
                    "found as {n} partial alerts (counts {counts:?}, {} distinct alert_id)",
                    ids.len()
                )
            }
        }
    }
}

/// Notifications compared with the ground truth.
///
/// Newcomer alerts (`new_requester`, `new_remote_ip`) are kept out of recall and false
/// alerts and only counted: the simulated hour lies inside the learning period (168 h by
/// default), so none is expected, and with learning on, their count is asserted apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scorecard {
    /// One entry per attack, in the attacks' order.
    pub attacks: Vec<AttackResult>,
    /// Notifications about no attack (newcomers excluded).
    pub false_alerts: Vec<SeenAlert>,
    /// Newcomer notifications.
    pub newcomers: usize,
}

impl Scorecard {
    /// Sorts each notification into the attack it is about, or into the false alerts.
    pub fn score(attacks: &[Attack], notifications: &[SeenAlert]) -> Scorecard {
        let mut results: Vec<AttackResult> = attacks
            .iter()
            .map(|a| AttackResult {
                name: a.name,
                notifications: Vec::new(),
            })
            .collect();
        let mut false_alerts = Vec::new();
        let mut newcomers = 0;
        for alert in notifications {
            if alert.is_newcomer() {
                newcomers += 1;
                continue;
            }
            match attacks.iter().position(|a| alert.is_about(a)) {
                Some(i) => results[i].notifications.push(alert.clone()),
                None => false_alerts.push(alert.clone()),
            }
        }
        Scorecard {
            attacks: results,
            false_alerts,
            newcomers,
        }
    }

    /// The verdict for the attack named `name`.
    pub fn verdict(&self, name: &str) -> String {
        self.attacks
            .iter()
            .find(|a| a.name == name)
            .map_or_else(|| "unknown attack".into(), AttackResult::verdict)
    }
}

impl Simulation {
    /// Records per object: (smallest, largest).
    pub fn object_sizes(&self) -> (usize, usize) {
        let sizes = self.objects.iter().map(|o| o.records);
        (sizes.clone().min().unwrap_or(0), sizes.max().unwrap_or(0))
    }

    /// How many deliveries are duplicates.
    pub fn duplicates(&self) -> usize {
        self.arrivals.iter().filter(|a| a.duplicate).count()
    }

    /// How many objects arrive after an object flushed later than them: a measure of the
    /// shuffle.
    pub fn overtaken(&self) -> usize {
        let mut latest_flush = i64::MIN;
        let mut overtaken = 0;
        for a in self.arrivals.iter().filter(|a| !a.duplicate) {
            let flushed = self.objects[a.object].flushed_at;
            if flushed < latest_flush {
                overtaken += 1;
            }
            latest_flush = latest_flush.max(flushed);
        }
        overtaken
    }

    /// Records per minute of event time, per host (for checks and debugging).
    pub fn records_per_minute(&self) -> BTreeMap<i64, usize> {
        let mut out = BTreeMap::new();
        for object in &self.objects {
            for line in object.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                if let Some(t) = line_time(line) {
                    *out.entry(t - t.rem_euclid(60)).or_default() += 1;
                }
            }
        }
        out
    }
}

/// The event time of one access log line, read back with the crate's own parser.
pub fn line_time(line: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(line).ok()?;
    let record = bucketlog::access_log::parse_line(text).ok()?;
    Some(record.time.unix_seconds())
}
