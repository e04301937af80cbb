//! What the whole handler costs per GiB of logs, beside what the parser alone costs, in
//! one run: the function's own `Pipeline::handle` over an in-memory object store (no
//! filesystem, no network), with metrics rendered as EMF and the alert detectors on.
//!
//! ```sh
//! cargo bench --bench handler -- --lines 200000 --runs 5
//! cargo bench --bench handler -- --case gzip --case parse --runs 3
//! cargo bench --bench handler -- --shape buckets:1     # one source bucket, as S3 writes
//! cargo bench --bench handler -- --shape buckets:1 --lines 361 --baseline 5000
//! ```
//!
//! The default input is `bucketlog gen`'s: three buckets taking random turns, record by
//! record, over an hour. S3 itself writes one source bucket per log object; `--shape
//! buckets:1` measures that.
//!
//! Each handler run starts from an empty store, so its requester baseline is a new
//! bucket's. `--baseline N` stores, before each run, a baseline of N requesters and N
//! addresses for every source bucket, learning long over: a steady bucket's, with the
//! default `ALERT_BASELINE_MAX_ENTRIES` at 5000. Without a detection table the function
//! reads and parses it for every log object. The generated addresses are all new to it,
//! so every run also merges, evicts and writes it back: the worst case.
//!
//! `--warm` makes each handler case one warm function instead: one pipeline and store
//! for all its runs, each run a new log object (its own key) of the same records, as a
//! warm Lambda handles a bucket's objects in turn. From the second run on, the bucket's
//! baseline is the version the function itself last read or wrote, and nothing in the
//! records is new to it: a steady bucket whose objects bring known subjects.
//!
//! Cases (all by default, interleaved run by run so that the machine's load falls on
//! each alike):
//! - `parse`: the curator alone into a discarding writer, what `bucketlog parse -q`
//!   does to `/dev/null`;
//! - `parse+gzip`, `parse+zstd`: the curator straight into one of the handler's
//!   compressors, output discarded: the floor under a handler writing that format, since
//!   the compressed NDJSON must stay byte for byte what it is;
//! - `gzip`, `zstd`, `none`: the handler with that `OUTPUT_COMPRESSION`, over
//!   [`MemoryStore::discarding_parts`] (uploaded parts are counted and dropped, as S3
//!   takes them away from the function);
//! - `local`: the handler over the local-folder store and the local detection state in a
//!   temporary folder, as `bucketlog replay` runs it with the default output (zstd since
//!   December 2026); its system time is a cost users see.
//!
//! CPU time is the process's user and system time (`getrusage`) around each run only;
//! generating the input is not counted. For instruction counts, run one case under
//! callgrind with collection limited to [`measured`]: `bench/handler_callgrind` does that.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs every case once on a
//! small object and checks that each curated every line, so the benchmark cannot rot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use bucketlog::adapters::emf::EmfMetrics;
use bucketlog::adapters::local::LocalStore;
use bucketlog::adapters::local_state::LocalDetectionState;
use bucketlog::adapters::memory::MemoryStore;
use bucketlog::alerts::baseline::Baseline;
use bucketlog::codec::MemberEncoder;
use bucketlog::config::Config;
use bucketlog::curate::{CurationSink, Curator, Rejected, WriterSink};
use bucketlog::enrich::Enriched;
use bucketlog::event::ObjectRef;
use bucketlog::generate::{GenerateOptions, Shape, write_shaped_log};
use bucketlog::input::ObjectDecoder;
use bucketlog::pipeline::Pipeline;
use bucketlog::ports::ObjectStore;
use serde_json::Value;

/// The log bucket the benchmark's object is delivered to.
const BUCKET: &str = "bench-logs";
/// The object's key, under the default `RAW_PREFIX`.
const KEY: &str = "raw/2026-11-20-14-05-12-5A1B2C3D4E5F6789";
/// A fixed "now" an hour after the generated records, so no metric is too old to publish.
const NOW: i64 = 1_795_190_400;

/// One thing to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Parse,
    /// The curator straight into one compressor: the least any handler writing that
    /// format pays, the floor under the handler's own case.
    ParseCompressed(&'static str),
    Handler(&'static str),
    Local,
}

impl Case {
    fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "parse" => Case::Parse,
            "parse+gzip" => Case::ParseCompressed("gzip"),
            "parse+zstd" => Case::ParseCompressed("zstd"),
            "gzip" => Case::Handler("gzip"),
            "zstd" => Case::Handler("zstd"),
            "none" => Case::Handler("none"),
            "local" => Case::Local,
            other => bail!(
                "unknown case {other:?} (parse, parse+gzip, parse+zstd, gzip, zstd, none, local)"
            ),
        })
    }

    fn name(self) -> String {
        match self {
            Case::Parse => "parse (curator → discarded NDJSON)".into(),
            Case::ParseCompressed(c) => format!("parse → one {c} compressor, discarded"),
            Case::Handler(c) => format!("handler, in-memory store, OUTPUT_COMPRESSION={c}"),
            Case::Local => "handler, local folders (bucketlog replay), default output".into(),
        }
    }
}

/// Options from the command line.
struct Options {
    lines: u64,
    runs: usize,
    cases: Vec<Case>,
    /// How the generated records spread over buckets and hours (`bucketlog gen --shape`).
    shape: Shape,
    /// Requesters and addresses in the baseline stored before each handler run (0: none).
    baseline: usize,
    /// One warm pipeline per handler case for all its runs, each run a new log object.
    warm: bool,
    /// Check after each handler run that the stored baselines were merged into (under
    /// `cargo test`; it reads them back, so it is not done when measuring).
    verify: bool,
}

fn options(args: &[String]) -> Result<Options> {
    let mut lines = 200_000;
    let mut runs = 3;
    let mut cases = Vec::new();
    let mut shape = Shape::TimeOrder;
    let mut baseline = 0;
    let mut warm = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--lines" => lines = value()?.parse().context("--lines")?,
            "--runs" => runs = value()?.parse().context("--runs")?,
            "--case" => cases.push(Case::parse(value()?)?),
            "--shape" => shape = value()?.parse().map_err(anyhow::Error::msg)?,
            "--baseline" => baseline = value()?.parse().context("--baseline")?,
            "--warm" => warm = true,
            "--bench" => {}
            other => bail!("unknown argument {other:?}"),
        }
    }
    if cases.is_empty() {
        cases = [
            "parse",
            "parse+gzip",
            "parse+zstd",
            "gzip",
            "zstd",
            "none",
            "local",
        ]
        .into_iter()
        .map(Case::parse)
        .collect::<Result<_>>()?;
    }
    ensure!(lines > 0 && runs > 0, "--lines and --runs must be positive");
    Ok(Options {
        lines,
        runs,
        cases,
        shape,
        baseline,
        warm,
        verify: false,
    })
}

/// User and system CPU seconds of this process so far.
fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

/// The S3 event for the benchmark's object `key`, from the sample event shipped in
/// `events/`.
fn s3_event(key: &str, size: usize) -> Result<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/s3-put.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let mut event: Value = serde_json::from_str(&text)?;
    let s3 = &mut event["Records"][0]["s3"];
    s3["bucket"]["name"] = BUCKET.into();
    s3["bucket"]["arn"] = format!("arn:aws:s3:::{BUCKET}").into();
    s3["object"]["key"] = key.into();
    s3["object"]["size"] = size.into();
    Ok(event)
}

/// The function's configuration with metrics as EMF and `compression` as
/// `OUTPUT_COMPRESSION` (`None`: the default).
fn config(compression: Option<&str>) -> Result<Config> {
    Ok(Config::from_lookup(|name| match name {
        "OUTPUT_COMPRESSION" => compression.map(str::to_string),
        "METRICS_MODE" => Some("emf".into()),
        _ => None,
    })?)
}

/// What one run read and wrote.
struct Ran {
    records: u64,
    /// Curated bytes written (`None` for a warm run, whose store holds every run's).
    output_bytes: Option<u64>,
    /// Whether every stored baseline was read and written back changed (`--baseline`;
    /// the benchmark's addresses are all new to it), when checked.
    baselines_rewritten: Option<bool>,
    /// Baseline reads the warm pipeline served without parsing so far (`--warm`).
    baseline_cache_hits: Option<u64>,
}

/// The records a handler response reports, over every processed object.
fn records_in(response: &Value) -> u64 {
    response["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["records"].as_u64())
        .sum()
}

/// A steady bucket's baseline for each source bucket of `log`, as the store holds it:
/// `entries` requesters and as many addresses, last seen a day before the records, and
/// learning started a month before.
fn stored_baselines(log: &[u8], entries: usize) -> Result<Vec<(ObjectRef, bytes::Bytes)>> {
    let mut buckets: Vec<&str> = log
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok()?.split(' ').nth(1))
        .collect();
    buckets.sort_unstable();
    buckets.dedup();
    // Only asked where the baselines live.
    let pipeline = Pipeline::new(MemoryStore::default(), config(None)?);
    Ok(buckets
        .into_iter()
        .map(|bucket| {
            let mut baseline = Baseline::new(bucket, NOW - 30 * 86_400);
            for i in 0..entries {
                let seen = NOW - 86_400 - i as i64;
                baseline
                    .requesters
                    .insert(format!("arn:aws:iam::123456789012:role/known-{i:05}"), seen);
                let ip = format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255);
                baseline.remote_ips.insert(ip, seen);
            }
            let at = pipeline.baseline_ref(BUCKET, bucket);
            (at, bytes::Bytes::from(baseline.to_json()))
        })
        .collect())
}

/// What every run of every case is given.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    log: &'a bytes::Bytes,
    /// The S3 event for the log object at [`KEY`].
    event: &'a Value,
    runtime: &'a tokio::runtime::Runtime,
    /// The local case's folder.
    scratch: &'a Path,
    /// The baselines stored before each handler run (`--baseline`).
    baselines: &'a [(ObjectRef, bytes::Bytes)],
    /// Check that the stored baselines were merged into (`Options::verify`).
    verify: bool,
}

/// One run of `case` on `log`. Only what happens in here is counted by callgrind
/// (`--toggle-collect`), so it must not be inlined.
#[inline(never)]
fn measured(case: Case, inputs: &Inputs<'_>, warm: Option<(&Warm, &Value)>) -> Result<Ran> {
    let Inputs {
        log,
        event,
        runtime,
        scratch,
        baselines,
        verify,
    } = *inputs;
    match case {
        Case::Parse => {
            let mut out = CountingSink(0);
            let sink = WriterSink::new(&mut out, std::io::sink());
            let mut decoder = ObjectDecoder::new(Curator::new(sink, None));
            for chunk in log.chunks(bucketlog::adapters::memory::READ_CHUNK) {
                decoder.push(chunk)?;
            }
            let (curator, _) = decoder.finish()?;
            let records = curator.stats().records;
            curator.into_sink().finish()?;
            Ok(Ran {
                records,
                output_bytes: Some(out.0),
                baselines_rewritten: None,
                baseline_cache_hits: None,
            })
        }
        Case::ParseCompressed(format) => {
            let encoder = match format {
                "zstd" => MemberEncoder::zstd()?,
                _ => MemberEncoder::gzip(),
            };
            let mut sink = CompressingSink {
                encoder,
                bytes: 0,
                error: None,
            };
            let mut decoder = ObjectDecoder::new(Curator::new(&mut sink, None));
            for chunk in log.chunks(bucketlog::adapters::memory::READ_CHUNK) {
                decoder.push(chunk)?;
            }
            let (curator, _) = decoder.finish()?;
            let records = curator.stats().records;
            drop(curator);
            if let Some(e) = sink.error.take() {
                return Err(e.into());
            }
            sink.encoder.finish_member()?;
            sink.bytes += sink.encoder.output_mut().len() as u64;
            Ok(Ran {
                records,
                output_bytes: Some(sink.bytes),
                baselines_rewritten: None,
                baseline_cache_hits: None,
            })
        }
        Case::Handler(_) if let Some((warm, event)) = warm => {
            let response = runtime.block_on(warm.pipeline.handle(event))?;
            Ok(Ran {
                records: records_in(&response),
                output_bytes: None,
                baselines_rewritten: None,
                baseline_cache_hits: Some(warm.pipeline.baseline_cache_hits()),
            })
        }
        Case::Handler(compression) => {
            let pipeline = memory_pipeline(compression, baselines)?;
            pipeline.store().insert(&log_object(), log.clone());
            let response = runtime.block_on(pipeline.handle(event))?;
            let output_bytes = pipeline
                .store()
                .objects()
                .iter()
                .filter(|(_, key, _)| key.starts_with("curated/"))
                .map(|(_, _, size)| size)
                .sum();
            Ok(Ran {
                records: records_in(&response),
                output_bytes: Some(output_bytes),
                baselines_rewritten: verify.then(|| {
                    baselines.iter().all(|(at, stored)| {
                        runtime
                            .block_on(pipeline.store().get_small(at))
                            .is_ok_and(|now| now.is_some_and(|(bytes, _)| bytes != stored[..]))
                    })
                }),
                baseline_cache_hits: None,
            })
        }
        Case::Local => {
            let out = scratch.join("out");
            let _ = std::fs::remove_dir_all(&out);
            let state = LocalDetectionState::under(&out)?;
            let metrics = std::fs::File::create(scratch.join("metrics.emf.ndjson"))?;
            let pipeline = Pipeline::new(
                LocalStore::layered(&out, scratch.join("store")),
                config(None)?,
            )
            .with_metrics(Box::new(EmfMetrics::to_writer(
                "S3AccessLogs".into(),
                Box::new(metrics),
            )))
            .with_detection_state(Box::new(state))
            .with_clock(|| NOW);
            let response = runtime.block_on(pipeline.handle(event))?;
            Ok(Ran {
                records: records_in(&response),
                output_bytes: Some(folder_bytes(&out.join(BUCKET).join("curated"))?),
                baselines_rewritten: None,
                baseline_cache_hits: None,
            })
        }
    }
}

/// Compresses every record into one member, counting and discarding the output.
struct CompressingSink {
    encoder: MemberEncoder,
    bytes: u64,
    error: Option<std::io::Error>,
}

impl CompressingSink {
    fn push(&mut self, json: &[u8]) {
        if let Err(e) = self.encoder.push_record(json) {
            self.error.get_or_insert(e);
        }
        let out = self.encoder.output_mut();
        self.bytes += out.len() as u64;
        out.clear();
    }
}

impl CurationSink for &mut CompressingSink {
    fn curated(&mut self, _record: &Enriched<'_>, json: &[u8]) {
        self.push(json);
    }

    fn rejected(&mut self, _rejected: &Rejected<'_>, json: &[u8]) {
        self.push(json);
    }
}

/// Counts what the parse case writes, and discards it.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_object() -> ObjectRef {
    ObjectRef {
        bucket: BUCKET.into(),
        key: KEY.into(),
    }
}

/// Bytes in every file under `dir`.
fn folder_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| d.display().to_string())? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// A temporary folder holding the local case's log object, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(log: &[u8]) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("bucketlog-bench-{}", std::process::id()));
        let raw = dir.join("store").join(BUCKET).join(KEY);
        if let Some(parent) = raw.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&raw, log)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A warm function (`--warm`): one pipeline handling every run's log object in turn.
struct Warm {
    pipeline: Pipeline<MemoryStore>,
    /// Runs so far, which names the next run's log object.
    runs: std::cell::Cell<usize>,
}

impl Warm {
    /// A warm function with `compression` over a store holding the stored `baselines`.
    fn new(compression: &str, baselines: &[(ObjectRef, bytes::Bytes)]) -> Result<Self> {
        Ok(Self {
            pipeline: memory_pipeline(compression, baselines)?,
            runs: std::cell::Cell::new(0),
        })
    }

    /// Stores `log` as the next run's log object, under a key of its own, and returns the
    /// event announcing it: done before the run is timed, as the cold cases' event is.
    fn deliver(&self, log: &bytes::Bytes) -> Result<Value> {
        let run = self.runs.get();
        self.runs.set(run + 1);
        let at = ObjectRef {
            bucket: BUCKET.into(),
            key: format!("{KEY}-{run}"),
        };
        self.pipeline.store().insert(&at, log.clone());
        s3_event(&at.key, log.len())
    }
}

/// The function with `compression` and its metrics as EMF (discarded), over
/// [`MemoryStore::discarding_parts`] holding the stored `baselines`.
fn memory_pipeline(
    compression: &str,
    baselines: &[(ObjectRef, bytes::Bytes)],
) -> Result<Pipeline<MemoryStore>> {
    let store = MemoryStore::discarding_parts();
    for (at, baseline) in baselines {
        store.insert(at, baseline.clone());
    }
    Ok(Pipeline::new(store, config(Some(compression))?)
        .with_metrics(Box::new(EmfMetrics::to_writer(
            "S3AccessLogs".into(),
            Box::new(std::io::sink()),
        )))
        .with_clock(|| NOW))
}

/// One case's measurements.
struct Measured {
    case: Case,
    user: Vec<f64>,
    sys: Vec<f64>,
    wall: Vec<f64>,
    ran: Option<Ran>,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The process's resident memory in KiB, from `/proc/self/status`.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Builds the user agent regexes (uap-core), once per process, as the first non-AWS user
/// agent of a cold start does; returns their CPU seconds and resident KiB. Done before the
/// measured runs, so that no case pays it.
fn warm_up_user_agents() -> Result<(f64, Option<u64>)> {
    let before = rss_kib();
    let (u0, s0) = cpu_seconds();
    ensure!(
        bucketlog::user_agent::warm_up(),
        "the user agent regexes did not build"
    );
    let (u1, s1) = cpu_seconds();
    let grew = rss_kib()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok((u1 - u0 + s1 - s0, grew))
}

fn run(opts: &Options) -> Result<Vec<Measured>> {
    let mut log = Vec::new();
    write_shaped_log(&mut log, GenerateOptions::default(), opts.shape, opts.lines)?;
    let log = bytes::Bytes::from(log);
    let event = s3_event(KEY, log.len())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let scratch = Scratch::new(&log)?;
    let baselines = match opts.baseline {
        0 => Vec::new(),
        entries => stored_baselines(&log, entries)?,
    };
    let warm: Vec<Option<Warm>> = opts
        .cases
        .iter()
        .map(|case| match case {
            Case::Handler(compression) if opts.warm => Warm::new(compression, &baselines).map(Some),
            _ => Ok(None),
        })
        .collect::<Result<_>>()?;
    let inputs = Inputs {
        log: &log,
        event: &event,
        runtime: &runtime,
        scratch: &scratch.0,
        baselines: &baselines,
        verify: opts.verify,
    };
    let mut results: Vec<Measured> = opts
        .cases
        .iter()
        .map(|&case| Measured {
            case,
            user: Vec::new(),
            sys: Vec::new(),
            wall: Vec::new(),
            ran: None,
        })
        .collect();
    for _ in 0..opts.runs {
        for (m, warm) in results.iter_mut().zip(&warm) {
            let warm_event = warm.as_ref().map(|w| w.deliver(&log)).transpose()?;
            let (u0, s0) = cpu_seconds();
            let t0 = Instant::now();
            let ran = measured(m.case, &inputs, warm.as_ref().zip(warm_event.as_ref()))?;
            let wall = t0.elapsed().as_secs_f64();
            let (u1, s1) = cpu_seconds();
            ensure!(
                ran.records == opts.lines,
                "{}: {} of {} lines curated",
                m.case.name(),
                ran.records,
                opts.lines
            );
            ensure!(
                ran.baselines_rewritten != Some(false),
                "{}: the stored baselines were not merged into",
                m.case.name()
            );
            m.user.push(u1 - u0);
            m.sys.push(s1 - s0);
            m.wall.push(wall);
            m.ran = Some(ran);
        }
    }
    Ok(results)
}

fn report(opts: &Options, input_bytes: u64, results: &[Measured]) {
    let gib = input_bytes as f64 / (1u64 << 30) as f64;
    let cpu = |m: &Measured| {
        median(
            &m.user
                .iter()
                .zip(&m.sys)
                .map(|(u, s)| u + s)
                .collect::<Vec<_>>(),
        )
    };
    let parse = results.iter().find(|m| m.case == Case::Parse).map(cpu);
    println!(
        "{} lines, {:.1} MiB of generated log (shape {:?}), {} runs each, interleaved; medians\n",
        opts.lines,
        input_bytes as f64 / (1u64 << 20) as f64,
        opts.shape,
        opts.runs
    );
    println!(
        "| case | CPU s (user + sys) | of which sys | lines per CPU-s | CPU-s per GiB | × parse | curated output |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for m in results {
        let total = cpu(m);
        let ratio = parse.map_or("–".to_string(), |p| format!("{:.2}×", total / p));
        let out = m
            .ran
            .as_ref()
            .and_then(|r| r.output_bytes)
            .map_or("–".to_string(), |b| {
                format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
            });
        println!(
            "| {} | {:.3} | {:.3} | {:.0} | {:.2} | {} | {} |",
            m.case.name(),
            total,
            median(&m.sys),
            opts.lines as f64 / total,
            total / gib,
            ratio,
            out
        );
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --all-targets`: every case once on a small object.
        let opts = Options {
            verify: true,
            ..options(&["--lines".into(), "2000".into(), "--runs".into(), "1".into()])?
        };
        let results = run(&opts)?;
        ensure!(results.len() == opts.cases.len(), "every case ran");
        let lines = opts.lines;
        let steady = Options {
            baseline: 100,
            cases: vec![Case::parse("zstd")?],
            ..opts
        };
        run(&steady)?;
        // A warm function: from the second object on, the baseline it last wrote is not
        // parsed again.
        let warm = Options {
            runs: 3,
            warm: true,
            shape: "buckets:1".parse().map_err(anyhow::Error::msg)?,
            ..steady
        };
        let ran = run(&warm)?;
        let hits = ran[0].ran.as_ref().and_then(|r| r.baseline_cache_hits);
        ensure!(
            hits == Some(2),
            "a warm pipeline parsed its own baseline again: {hits:?}"
        );
        println!(
            "bench/handler.rs: every case curated all {lines} lines, merged into a stored baseline, and a warm pipeline kept it"
        );
        return Ok(());
    }
    let opts = options(&args)?;
    let mut log = Vec::new();
    write_shaped_log(&mut log, GenerateOptions::default(), opts.shape, opts.lines)?;
    let (warm_cpu, warm_kib) = warm_up_user_agents()?;
    let results = run(&opts)?;
    report(&opts, log.len() as u64, &results);
    println!(
        "\nOnce per process, before the runs: the user agent regexes took {:.0} ms of CPU and {} KiB of resident memory.",
        warm_cpu * 1000.0,
        warm_kib.map_or("?".to_string(), |k| k.to_string())
    );
    Ok(())
}
