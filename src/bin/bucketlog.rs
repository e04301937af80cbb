//! The `bucketlog` command line: parse logs to NDJSON, generate synthetic logs, and replay
//! Lambda events locally.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bucketlog::adapters::aws_pipeline;
use bucketlog::adapters::emf::EmfMetrics;
use bucketlog::adapters::local::LocalStore;
use bucketlog::adapters::local_state::LocalDetectionState;
use bucketlog::batch_ops::BackfillRange;
use bucketlog::config::Config;
use bucketlog::curate::{Curator, WriterSink};
use bucketlog::generate::{GenerateOptions, Shape, write_shaped_log};
use bucketlog::geo::{ClientLookups, DatabaseLocation};
use bucketlog::input::{ReadError, decode_reader};
use bucketlog::logging::init_text_logging;
use bucketlog::pipeline::Pipeline;
use bucketlog::ports::ObjectStore;
use clap::{Parser, Subcommand};

#[path = "bucketlog/backfill.rs"]
mod backfill;
use backfill::{BackfillPlan, backfill};
#[path = "bucketlog/compact.rs"]
mod compact;
use compact::{CompactPlan, compact};

#[derive(Parser)]
#[command(
    name = "bucketlog",
    version,
    about = "S3 server access logs in, enriched NDJSON out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse access logs (plain or gzip, from files or stdin) into NDJSON on stdout.
    /// GEOIP_DB and ASN_DB (local .mmdb paths) add the client's country, city and network.
    Parse {
        /// Log files; none, or `-`, reads stdin.
        files: Vec<PathBuf>,
        /// Where rejected lines go (NDJSON); without it they go to stderr.
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// No summary line and no progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run the Lambda handler locally on event files (no AWS account needed).
    Replay {
        /// Event files (JSON), as Lambda would receive them.
        #[arg(required = true)]
        events: Vec<PathBuf>,
        /// Folder holding the log objects, one sub-folder per bucket.
        #[arg(long, default_value = "events/store")]
        store: PathBuf,
        /// Folder where outputs and state go, one sub-folder per bucket.
        #[arg(long, default_value = "out/store")]
        out: PathBuf,
        /// Use S3 (or the endpoint in AWS_ENDPOINT_URL) instead of local folders; metrics
        /// and alerts then go where METRICS_MODE and ALERT_TOPIC_ARN say.
        #[arg(long)]
        s3: bool,
        /// Local replays append their metrics here, in CloudWatch Embedded Metric Format.
        /// A local replay runs as of the latest time its events carry (S3's `eventTime`,
        /// EventBridge's `time`), so old events are not treated as weeks-late data.
        #[arg(long, default_value = "out/metrics.emf.ndjson")]
        metrics: PathBuf,
    },
    /// Run existing log objects through the handler as a backfill (old alerts are
    /// recorded, not sent), or write the S3 Batch Operations manifest that does it.
    /// Resumable: objects already processed are skipped by their markers.
    Backfill {
        /// The bucket holding the log objects (a folder under --store locally).
        #[arg(long)]
        bucket: String,
        /// Only keys under this prefix.
        #[arg(long, default_value = "raw/")]
        prefix: String,
        /// The first delivery day (YYYY-MM-DD, the date in the log object's name).
        #[arg(long)]
        since: Option<String>,
        /// The last delivery day, inclusive.
        #[arg(long)]
        until: Option<String>,
        /// Write a Batch Operations CSV manifest here instead of processing anything.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Objects processed at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Stop after this many objects (a later run goes on from there).
        #[arg(long)]
        limit: Option<usize>,
        /// Use S3 (or the endpoint in AWS_ENDPOINT_URL) instead of local folders.
        #[arg(long)]
        s3: bool,
        /// Folder holding the log objects, one sub-folder per bucket.
        #[arg(long, default_value = "events/store")]
        store: PathBuf,
        /// Folder where outputs and state go, one sub-folder per bucket.
        #[arg(long, default_value = "out/store")]
        out: PathBuf,
        /// Local backfills append their metrics here, in CloudWatch Embedded Metric Format.
        #[arg(long, default_value = "out/metrics.emf.ndjson")]
        metrics: PathBuf,
    },
    /// Compact the curated records of dirty partitions into the Parquet lake
    /// (`LAKE_PREFIX`), as the scheduled function does: local replays' outputs under
    /// --out, or S3 with --s3 (or AWS_ENDPOINT_URL).
    Compact {
        /// Folder of local replays' outputs, one sub-folder per bucket; every bucket
        /// there is compacted unless --bucket names one.
        #[arg(long, default_value = "out/store")]
        out: PathBuf,
        /// Only this bucket (with --s3, the bucket holding the curated records; default
        /// OUTPUT_BUCKET).
        #[arg(long)]
        bucket: Option<String>,
        /// Compact partitions last written at least this many minutes ago (default
        /// LAKE_SETTLE_MINUTES, 15); 0 compacts every dirty partition now.
        #[arg(long)]
        settle_minutes: Option<i64>,
        /// Use S3 (or the endpoint in AWS_ENDPOINT_URL) instead of local folders.
        #[arg(long)]
        s3: bool,
    },
    /// Write a deterministic synthetic access log.
    Gen {
        /// How many lines.
        #[arg(long, short = 'n', default_value_t = 1000)]
        lines: u64,
        /// PRNG seed: the same seed gives the same log.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Unix time of the first record.
        #[arg(long, default_value_t = GenerateOptions::default().start_unix_seconds)]
        start_unix: i64,
        /// Seconds the records are spread over.
        #[arg(long, default_value_t = 3600)]
        span_seconds: u64,
        /// How records spread over buckets and hours: `time` (in order, three buckets),
        /// `interleaved:N`, `hours:BUCKETSxHOURS` (random order), `buckets:N` or `fuzzed`.
        #[arg(long, default_value = "time")]
        shape: Shape,
        /// gzip the output.
        #[arg(long)]
        gzip: bool,
        /// Output file (default stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bucketlog: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Parse {
            files,
            rejects,
            quiet,
        } => parse(files, rejects, quiet),
        Command::Replay {
            events,
            store,
            out,
            s3,
            metrics,
        } => replay(events, store, out, s3, metrics),
        Command::Backfill {
            bucket,
            prefix,
            since,
            until,
            manifest,
            concurrency,
            limit,
            s3,
            store,
            out,
            metrics,
        } => {
            let plan = BackfillPlan {
                bucket,
                range: BackfillRange {
                    prefix,
                    since,
                    until,
                },
                manifest,
                concurrency: concurrency.max(1),
                limit,
            };
            backfill(
                plan,
                Folders {
                    store,
                    out,
                    metrics,
                },
                s3,
            )
        }
        Command::Compact {
            out,
            bucket,
            settle_minutes,
            s3,
        } => compact(CompactPlan {
            out,
            bucket,
            settle_minutes,
            s3,
        }),
        Command::Gen {
            lines,
            seed,
            start_unix,
            span_seconds,
            shape,
            gzip,
            output,
        } => {
            let options = GenerateOptions {
                seed,
                start_unix_seconds: start_unix,
                span_seconds,
            };
            generate(options, shape, lines, gzip, output)
        }
    }
}

fn generate(
    options: GenerateOptions,
    shape: Shape,
    lines: u64,
    gzip: bool,
    output: Option<PathBuf>,
) -> Result<()> {
    let out: Box<dyn Write> = match &output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
        write_shaped_log(&mut enc, options, shape, lines)?;
        enc.finish()?.flush()?;
    } else {
        write_shaped_log(&mut out, options, shape, lines)?;
        out.flush()?;
    }
    Ok(())
}

/// Where a local replay writes CloudWatch Logs batches when `OUTPUT_BUCKET` is not set:
/// a folder of this name under `--out`.
const LOCAL_BATCH_BUCKET: &str = "cloudwatch-logs";

/// What `replay` and `backfill` start with: the configuration from the environment,
/// text logging, an async runtime, and whether to use S3 (`--s3`, or `AWS_ENDPOINT_URL`).
fn handler_setup(s3: bool) -> Result<(Config, tokio::runtime::Runtime, bool)> {
    let config = Config::from_lookup(|name| std::env::var(name).ok())?;
    init_text_logging(&config.log_level);
    let use_s3 = s3 || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    // One thread: the handler is one task, and its CPU work stays on it (no hand-offs).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok((config, runtime, use_s3))
}

fn replay(
    events: Vec<PathBuf>,
    store: PathBuf,
    out: PathBuf,
    s3: bool,
    metrics: PathBuf,
) -> Result<()> {
    let (config, runtime, use_s3) = handler_setup(s3)?;
    runtime.block_on(async {
        if use_s3 {
            let pipeline = aws_pipeline(config).await?;
            replay_events(&pipeline, &events).await?;
            eprintln!("bucketlog: outputs written through the S3 API");
        } else {
            let folders = Folders {
                store,
                out,
                metrics,
            };
            let pipeline = local_pipeline(config, &folders)?.with_clock(replay_clock);
            if let Some(then) = events_time(&events) {
                let behind = (bucketlog::pipeline::system_now() - then).max(0);
                REPLAY_CLOCK_BEHIND.store(behind, Ordering::Relaxed);
                if behind > 0 {
                    let days = behind as f64 / 86_400.0;
                    eprintln!("bucketlog: replaying as of the events' own time, {days:.1} days ago");
                }
            }
            replay_events(&pipeline, &events).await?;
            let Folders { out, metrics, .. } = folders;
            eprintln!(
                "bucketlog: outputs written under {}/ (one folder per bucket; delete it to replay from scratch); metrics appended to {}",
                out.display(),
                metrics.display()
            );
        }
        Ok(())
    })
}

/// How many seconds a local replay's clock runs behind the system clock.
static REPLAY_CLOCK_BEHIND: AtomicI64 = AtomicI64::new(0);

/// A local replay's clock: the system clock moved back to the events' own time, so that a
/// sample from weeks ago is replayed as it happened: its metrics are not dropped as older
/// than CloudWatch takes, and its delivery delay is the events', not the weeks since.
fn replay_clock() -> i64 {
    bucketlog::pipeline::system_now() - REPLAY_CLOCK_BEHIND.load(Ordering::Relaxed)
}

/// The latest time any of the event files carries (unreadable files are left to the
/// replay itself to report).
fn events_time(events: &[PathBuf]) -> Option<i64> {
    events
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .filter_map(|payload| bucketlog::event::latest_event_time(&payload))
        .max()
}

/// The local folders a replay or backfill reads and writes.
struct Folders {
    /// Log objects, one sub-folder per bucket.
    store: PathBuf,
    /// Outputs and state, one sub-folder per bucket.
    out: PathBuf,
    /// Where EMF metrics are appended.
    metrics: PathBuf,
}

/// The handler over local folders: log objects read from `store`, outputs and detection
/// state under `out`, metrics appended to `metrics` in EMF.
fn local_pipeline(config: Config, folders: &Folders) -> Result<Pipeline<LocalStore>> {
    let Folders {
        store,
        out,
        metrics,
    } = folders;
    if let Some(dir) = metrics.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(metrics)
        .with_context(|| format!("cannot open {}", metrics.display()))?;
    let sink = EmfMetrics::to_writer(config.metrics_namespace.clone(), Box::new(file));
    // Counts, alert episodes and first sightings persist under --out, so successive
    // runs see each other's, as the function's invocations share its table.
    let state = LocalDetectionState::under(out).context("cannot open the detection state")?;
    let lookups = ClientLookups::open_local(config.geoip_db.as_ref(), config.asn_db.as_ref())?;
    Ok(Pipeline::new(LocalStore::layered(out, store), config)
        .with_client_lookups(lookups)
        .with_metrics(Box::new(sink))
        .with_detection_state(Box::new(state))
        .with_batch_output_bucket(LOCAL_BATCH_BUCKET))
}

async fn replay_events<S: ObjectStore>(pipeline: &Pipeline<S>, events: &[PathBuf]) -> Result<()> {
    let mut failures = Vec::new();
    for path in events {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let payload: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        println!("== {}", path.display());
        match pipeline.handle(&payload).await {
            Ok(response) => println!("{}", serde_json::to_string_pretty(&response)?),
            Err(e) => {
                println!("error: {e}");
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} event file(s) failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(())
}

/// Totals over all inputs of one `parse` run.
#[derive(Default)]
struct Totals {
    records: u64,
    rejected: u64,
    blank: u64,
    bytes: u64,
}

fn parse(files: Vec<PathBuf>, rejects: Option<PathBuf>, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let lookups = Arc::new(ClientLookups::open_local(
        DatabaseLocation::from_setting(std::env::var("GEOIP_DB").ok()).as_ref(),
        DatabaseLocation::from_setting(std::env::var("ASN_DB").ok()).as_ref(),
    )?);
    let stdout = BufWriter::with_capacity(1 << 18, io::stdout().lock());
    let rejects_out: Box<dyn Write> = match &rejects {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(io::stderr()),
    };
    let mut sink = WriterSink::new(stdout, rejects_out);
    let mut totals = Totals::default();
    let inputs = if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files
    };
    let mut failures = Vec::new();
    for path in &inputs {
        let (name, reader, size): (Option<String>, Box<dyn Read>, Option<u64>) =
            if path.as_os_str() == "-" {
                (None, Box::new(io::stdin().lock()), None)
            } else {
                match File::open(path) {
                    Ok(f) => {
                        let size = f.metadata().ok().map(|m| m.len());
                        (Some(path.display().to_string()), Box::new(f), size)
                    }
                    Err(e) => {
                        failures.push(format!("{}: cannot open: {e}", path.display()));
                        continue;
                    }
                }
            };
        let show_progress = !quiet
            && io::stderr().is_terminal()
            && size.is_some_and(|s| s >= PROGRESS_THRESHOLD_BYTES);
        let reader = Progress::new(reader, size.filter(|_| show_progress));
        let label = name.clone().unwrap_or_else(|| "stdin".into());
        let curator = Curator::new(sink, name).with_lookups(Arc::clone(&lookups));
        match decode_reader(reader, curator) {
            Ok((curator, summary)) => {
                let stats = curator.stats();
                totals.records += stats.records;
                totals.rejected += stats.rejected;
                totals.blank += stats.blank;
                totals.bytes += summary.input_bytes;
                sink = curator.into_sink();
            }
            Err(e) => {
                // The curator (and the sink inside it) is gone with the error: report and stop.
                let what = match &e {
                    ReadError::Io(_) => "cannot read",
                    ReadError::Decode(_) => "cannot decode",
                };
                bail!("{label}: {what}: {e}");
            }
        }
        if let Some(e) = sink.take_error() {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("cannot write output");
        }
    }
    match sink.finish() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        other => other.map(|_| ()).context("cannot write output")?,
    }
    if !quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "bucketlog: {} records, {} rejected, {} blank, {} bytes in {:.2} s",
            totals.records, totals.rejected, totals.blank, totals.bytes, secs
        );
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// Inputs at least this large get a progress bar when stderr is a terminal.
const PROGRESS_THRESHOLD_BYTES: u64 = 64 << 20;

/// Counts bytes read and redraws a one-line progress bar on stderr at most 5 times a second.
struct Progress<R> {
    inner: R,
    total: Option<u64>,
    read: u64,
    last_draw: Instant,
}

impl<R: Read> Progress<R> {
    fn new(inner: R, total: Option<u64>) -> Self {
        Self {
            inner,
            total,
            read: 0,
            last_draw: Instant::now(),
        }
    }

    fn draw(&self, done: bool) {
        let Some(total) = self.total.filter(|t| *t > 0) else {
            return;
        };
        let fraction = (self.read as f64 / total as f64).min(1.0);
        let filled = (fraction * 30.0) as usize;
        eprint!(
            "\r[{}{}] {:5.1}% of {} MiB{}",
            "#".repeat(filled),
            " ".repeat(30 - filled),
            fraction * 100.0,
            total >> 20,
            if done { "\n" } else { "" }
        );
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if n == 0 {
            self.draw(true);
        } else if self.last_draw.elapsed() >= Duration::from_millis(200) {
            self.last_draw = Instant::now();
            self.draw(false);
        }
        Ok(n)
    }
}
