//! Detection across delivered objects (issue 9): the delivery simulator in
//! `support/delivery.rs` cuts one hour of a bucket's traffic, with three injected attacks,
//! into the objects that H front-end hosts would write, and delivers them late, out of
//! order and sometimes twice. Every object goes into moto's S3 through the real
//! `aws-sdk-s3`; every arrival, in arrival order, goes through the real handler
//! (`Pipeline::handle` on an S3 `ObjectCreated` event built from `events/s3-put.json`).
//! Alerts are read back from SNS through an SQS subscription, and from the alert
//! documents in S3, and compared with the ground truth.
//!
//! Newcomer alerts (`new_requester`, `new_remote_ip`) are kept out of recall and false
//! alerts: the simulated hour lies inside the default 168-hour learning period, so every
//! subject is learned and none may fire; their count is asserted to be zero apart.
//!
//! The pipeline keeps its detection state in the local implementation of the
//! `DetectionState` port (see `build_pipeline` for why not moto's DynamoDB). Each layout's row
//! of the table in BENCHMARKS.md comes from `cargo test --test delivery_sim -- --nocapture`.
//! The seed is
//! [`DEFAULT_SEED`] unless `BUCKETLOG_SIM_SEED` names another.
//!
//! The same delivery, two hours of it, also measures the bill:
//! `requests_per_log_object_at_16_hosts` counts what each object asks of S3, CloudWatch
//! and the detection state (BENCHMARKS.md, "Requests per log object").

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use bucketlog::adapters::cloudwatch::CloudWatchMetrics;
use bucketlog::adapters::counting::{CountingStore, PriceClass, RequestsByPrefix, in_class};
use bucketlog::adapters::dynamodb_markers::DynamoMarkers;
use bucketlog::adapters::local_state::LocalDetectionState;
use bucketlog::adapters::s3::S3Store;
use bucketlog::alerts::known::KnownSightings;
use bucketlog::config::Config;
use bucketlog::event::ObjectRef;
use bucketlog::pipeline::{Pipeline, system_now};
use bucketlog::ports::{
    ClaimOutcome, CountQuery, CountUpdate, DetectionState, DirtyMarkRead, EpisodeClaim,
    MarkerStore, MinuteCounts, PutCondition, PutOutcome, StateError, StoreError,
};
use serde_json::Value;
use support::delivery::{
    Attack, DEFAULT_SEED, Layout, Scorecard, SeenAlert, SimConfig, Simulation, Target, simulate,
};
use support::dynamodb::PageModel;
use support::inbox::{self, AlertInbox};
use support::moto::{MotoServer, unique_bucket};
use support::s3;
use support::scratch::Scratch;

/// The event S3 sends for a new object, as in the sample events.
const EVENT_TEMPLATE: &str = include_str!("../events/s3-put.json");

/// Everything one simulated run needs: its own moto server (so runs in parallel do not
/// queue behind each other), the log bucket, and a topic feeding a queue.
struct World {
    /// Kept alive for the run; stopped on drop.
    server: MotoServer,
    s3: aws_sdk_s3::Client,
    inbox: AlertInbox,
    /// Where the access logs are delivered and the outputs go.
    log_bucket: String,
    /// The local detection state's folder, shared by every pipeline of the run.
    scratch: Scratch,
}

impl World {
    async fn new(name: &str) -> World {
        let server = MotoServer::start();
        let sdk = inbox::sdk_config(&server.endpoint).await;
        let s3 = s3::client(&server.endpoint).await;
        let log_bucket = unique_bucket(name);
        s3::create_bucket(&s3, &log_bucket).await;
        World {
            server,
            inbox: AlertInbox::create(&sdk, &log_bucket).await,
            s3,
            scratch: Scratch::new(&format!("sim-{log_bucket}")),
            log_bucket,
        }
    }

    /// Every alert delivered to the topic so far, in delivery order (drains the queue).
    async fn notifications(&self) -> Vec<Value> {
        self.inbox.drain().await
    }

    /// How many curated records are stored under `curated/`.
    async fn curated_records(&self) -> usize {
        let mut records = 0;
        for (key, _) in s3::list(&self.s3, &self.log_bucket, "curated/").await {
            records += s3::ndjson(&s3::get(&self.s3, &self.log_bucket, &key).await).len();
        }
        records
    }

    /// Every alert document line stored under `alerts/`.
    async fn stored_alerts(&self) -> Vec<Value> {
        s3::stored_alerts(&self.s3, &self.log_bucket).await
    }
}

/// The configuration under test: the defaults (every alert rule and threshold as shipped,
/// learning 168 h), with metrics off because the simulator scores alerts, not metrics.
fn config(log_bucket: &str) -> Config {
    // OUTPUT_BUCKET is the log bucket, where outputs go by default; CloudWatch Logs
    // batches have no log bucket and need it said.
    let vars: HashMap<&str, &str> = [("METRICS_MODE", "off"), ("OUTPUT_BUCKET", log_bucket)]
        .into_iter()
        .collect();
    Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).expect("valid config")
}

/// The one place the pipeline under test is built.
async fn build_pipeline(world: &World) -> Pipeline<S3Store> {
    // The detection state is the local implementation of the same port (what `bucketlog
    // replay` uses), not moto's DynamoDB: moto's queries take seconds per object on an
    // hour of counters (BENCHMARKS.md, "Detection state"), so the 64-host hour would take
    // hours there. The DynamoDB adapter itself is tested against moto in
    // tests/shared_detection.rs.
    let state =
        LocalDetectionState::open(world.scratch.join("state.json")).expect("detection state");
    Pipeline::new(S3Store::new(world.s3.clone()), config(&world.log_bucket))
        .with_notifier(world.inbox.notifier())
        .with_detection_state(Box::new(state))
}

/// Unix seconds of an RFC 3339 time as alerts write it (`2026-11-20T14:05:00Z`).
fn unix_of(text: &str) -> i64 {
    let field = |range: std::ops::Range<usize>| -> i64 {
        text.get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an RFC 3339 time: {text:?}"))
    };
    let (y, m, d) = (field(0..4), field(5..7), field(8..10));
    let (hh, mm, ss) = (field(11..13), field(14..16), field(17..19));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

fn seen(alert: &Value) -> SeenAlert {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    SeenAlert {
        alert_id: text(&alert["alert_id"]),
        alert_type: text(&alert["type"]),
        subject: alert["subject"].is_object().then(|| {
            (
                text(&alert["subject"]["kind"]),
                text(&alert["subject"]["value"]),
            )
        }),
        window_start: unix_of(alert["window_start"].as_str().unwrap_or_default()),
        window_end: unix_of(alert["window_end"].as_str().unwrap_or_default()),
        count: alert["count"].as_u64().unwrap_or(0),
    }
}

/// The S3 notification for one arrival, from the sample event.
fn event_for(bucket: &str, key: &str, body: &[u8], at: i64, position: usize) -> Value {
    let mut event: Value = serde_json::from_str(EVENT_TEMPLATE).expect("sample event");
    let record = &mut event["Records"][0];
    record["eventTime"] = bucketlog::access_log::LogTime::from_unix_seconds(at)
        .rfc3339()
        .as_str()
        .replace('Z', ".000Z")
        .into();
    record["s3"]["bucket"]["name"] = bucket.into();
    record["s3"]["bucket"]["arn"] = format!("arn:aws:s3:::{bucket}").into();
    record["s3"]["object"]["key"] = s3::encode_event_key(key).into();
    record["s3"]["object"]["size"] = body.len().into();
    record["s3"]["object"]["sequencer"] = format!("{position:018X}").into();
    event
}

/// What one run found, and what it cost.
struct Run {
    sim: Simulation,
    score: Scorecard,
    /// Every notification read back.
    notified: Vec<SeenAlert>,
    /// Every alert document line stored.
    stored: Vec<SeenAlert>,
    /// Deliveries the handler reported as `processed` and as `duplicate`.
    processed: usize,
    duplicates_reported: usize,
    /// Seconds: simulating, uploading, handling every arrival, reading back.
    seconds: [f64; 4],
    /// Curated records stored, counted for CloudWatch Logs deliveries.
    curated_records: Option<usize>,
}

impl Run {
    /// One row of the table in BENCHMARKS.md.
    fn row(&self) -> String {
        let s = &self.score;
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.sim.config.layout,
            self.sim.objects.len(),
            s.verdict("A"),
            s.verdict("B"),
            s.verdict("C"),
            s.false_alerts.len()
        )
    }
}

/// The start of the simulated hour: a whole hour, three hours ago, so every record is
/// recent enough for any store's retention; the results do not depend on it.
fn simulated_start() -> i64 {
    let now = system_now();
    now - now.rem_euclid(3600) - 3 * 3600
}

/// How the simulated hour reaches the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Text log objects in S3, announced by S3 events.
    S3Objects,
    /// AWS's structured delivery: each object's records as JSON, in one CloudWatch Logs
    /// subscription batch per object (one log stream per host); a duplicate arrival
    /// re-sends the same batch.
    LogsBatches,
}

/// Simulates `layout`, delivers every object through the handler, reads the alerts back.
async fn run(layout: Layout) -> Run {
    run_delivered(layout, Delivery::S3Objects).await
}

/// The CloudWatch Logs subscription invocation for one simulated object.
fn logs_batch(object: &support::delivery::SimObject, index: usize) -> Value {
    let messages: Vec<String> = String::from_utf8_lossy(&object.body)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(support::cwl::json_record)
        .collect();
    support::cwl::envelope(
        "/aws/s3/access-logs",
        &format!("host-{}", object.host),
        index as u64 * 1_000_000,
        object.flushed_at * 1000,
        &messages,
    )
}

/// [`run`], delivered as `delivery` says.
async fn run_delivered(layout: Layout, delivery: Delivery) -> Run {
    let t = Instant::now();
    let seed = std::env::var("BUCKETLOG_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let sim = simulate(&SimConfig {
        seed,
        ..SimConfig::new(layout, simulated_start())
    });
    let simulated = t.elapsed().as_secs_f64();
    let name = match (layout, delivery) {
        (Layout::OneObject, _) => "sim-one".to_string(),
        (Layout::Hosts(h), Delivery::S3Objects) => format!("sim-{h}h"),
        (Layout::Hosts(h), Delivery::LogsBatches) => format!("sim-cwl-{h}h"),
    };
    let world = World::new(&name).await;
    let pipeline = build_pipeline(&world).await;

    // Every object exists before any event announces it, as in S3.
    let t = Instant::now();
    let to_upload = match delivery {
        Delivery::S3Objects => &sim.objects[..],
        Delivery::LogsBatches => &[],
    };
    let batches: Vec<Value> = match delivery {
        Delivery::S3Objects => Vec::new(),
        Delivery::LogsBatches => sim
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| logs_batch(o, i))
            .collect(),
    };
    upload_all(&world, to_upload).await;
    let uploaded = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let (mut processed, mut duplicates_reported) = (0, 0);
    for (position, arrival) in sim.arrivals.iter().enumerate() {
        let object = &sim.objects[arrival.object];
        let event = match delivery {
            Delivery::S3Objects => event_for(
                &world.log_bucket,
                &object.key,
                &object.body,
                arrival.at,
                position,
            ),
            Delivery::LogsBatches => batches[arrival.object].clone(),
        };
        let response = pipeline
            .handle(&event)
            .await
            .unwrap_or_else(|e| panic!("arrival {position} ({}): {e}", object.key));
        match response["objects"][0]["outcome"].as_str() {
            Some("processed") => processed += 1,
            Some("duplicate") => duplicates_reported += 1,
            other => panic!("arrival {position} ({}): outcome {other:?}", object.key),
        }
    }
    let handled = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let notified: Vec<SeenAlert> = world.notifications().await.iter().map(seen).collect();
    let stored: Vec<SeenAlert> = world.stored_alerts().await.iter().map(seen).collect();
    let curated_records = match delivery {
        Delivery::S3Objects => None,
        Delivery::LogsBatches => Some(world.curated_records().await),
    };
    let read_back = t.elapsed().as_secs_f64();
    let score = Scorecard::score(&sim.attacks, &notified);
    let run = Run {
        sim,
        score,
        notified,
        stored,
        processed,
        duplicates_reported,
        seconds: [simulated, uploaded, handled, read_back],
        curated_records,
    };
    eprintln!("{}", run.row());
    eprintln!(
        "  seed {}, {} arrivals ({} duplicates), {} requests; seconds: simulate {:.1}, \
         upload {:.1}, handle {:.1}, read back {:.1}; false alerts: {:?}",
        run.sim.config.seed,
        run.sim.arrivals.len(),
        run.sim.duplicates(),
        run.sim.requests,
        run.seconds[0],
        run.seconds[1],
        run.seconds[2],
        run.seconds[3],
        run.score.false_alerts
    );
    run
}

/// Puts every object into the log bucket, four at a time.
async fn upload_all(world: &World, objects: &[support::delivery::SimObject]) {
    let mut uploads = tokio::task::JoinSet::new();
    for object in objects {
        while uploads.len() >= 4 {
            uploads.join_next().await.expect("task").expect("upload");
        }
        let (client, bucket) = (world.s3.clone(), world.log_bucket.clone());
        let (key, body) = (object.key.clone(), object.body.clone());
        uploads.spawn(async move { s3::put(&client, &bucket, &key, body).await });
    }
    while let Some(done) = uploads.join_next().await {
        done.expect("upload");
    }
}

/// What holds for every run, whatever the detection finds: each object processed once,
/// each duplicate event reported as one, and every notification backed by a document.
fn assert_delivered_once_and_documented(run: &Run) {
    assert_eq!(run.processed, run.sim.objects.len(), "objects processed");
    assert_eq!(
        run.duplicates_reported,
        run.sim.duplicates(),
        "duplicate events"
    );
    let stored: HashSet<&str> = run.stored.iter().map(|a| a.alert_id.as_str()).collect();
    for alert in &run.notified {
        assert!(
            stored.contains(alert.alert_id.as_str()),
            "notified but no alert document: {alert:?}"
        );
    }
}

/// What issue 9 asks of every layout: each attack found, with exactly one notification,
/// no false alert from the background, and no newcomer (the hour is being learned).
fn assert_every_attack_found_once(run: &Run) {
    assert_delivered_once_and_documented(run);
    for (attack, result) in run.sim.attacks.iter().zip(&run.score.attacks) {
        assert_eq!(
            result.notifications.len(),
            1,
            "attack {} ({}) at {} hosts: {}",
            attack.name,
            attack.what,
            run.sim.config.layout,
            result.verdict()
        );
    }
    assert!(
        run.score.false_alerts.is_empty(),
        "false alerts at {} hosts: {:#?}",
        run.sim.config.layout,
        run.score.false_alerts
    );
    assert_eq!(run.score.newcomers, 0, "newcomer alerts while learning");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_finds_every_attack_once_when_the_hour_is_one_object() {
    // What today's per-object detection does right: with the whole hour in one object,
    // every attack is found, once, and nothing else. This proves the simulator, the
    // delivery through moto and the scoring, independently of the shared state.
    let run = run(Layout::OneObject).await;
    assert_eq!(run.sim.objects.len(), 1);
    assert_every_attack_found_once(&run);
    let [a, b, c] = [0, 1, 2].map(|i| &run.score.attacks[i].notifications[0]);
    assert_eq!(
        a.subject,
        Some(("remote_ip".into(), "198.51.100.23".into()))
    );
    assert_eq!(a.count, 120);
    assert_eq!(b.subject, None);
    assert!(b.count >= 300, "{b:?}");
    assert_eq!(c.subject.as_ref().map(|s| s.0.as_str()), Some("requester"));
    assert_eq!(c.count, 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_found_once_in_cloudwatch_logs_batches_from_16_hosts() {
    // AWS's structured delivery: the same hour as JSON records, one subscription batch per
    // host flush, out of order and some twice. The same detection must hold.
    let run = run_delivered(Layout::Hosts(16), Delivery::LogsBatches).await;
    assert!(
        run.sim.objects.len() > 100,
        "{} batches",
        run.sim.objects.len()
    );
    assert_every_attack_found_once(&run);
    assert_eq!(
        run.curated_records,
        Some(run.sim.requests),
        "every request curated once, re-sent batches included"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_found_once_at_1_host() {
    assert_every_attack_found_once(&run(Layout::Hosts(1)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_found_once_at_4_hosts() {
    assert_every_attack_found_once(&run(Layout::Hosts(4)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_found_once_at_16_hosts() {
    assert_every_attack_found_once(&run(Layout::Hosts(16)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_found_once_at_64_hosts() {
    assert_every_attack_found_once(&run(Layout::Hosts(64)).await);
}

/// Requests per API call and key prefix, from `before` to `after`.
fn requests_between(before: &RequestsByPrefix, after: &RequestsByPrefix) -> RequestsByPrefix {
    after
        .iter()
        .map(|(what, n)| (what.clone(), n - before.get(what).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// What one object asked of the detection state: the port's calls, and the capacity
/// units DynamoDB bills for them, computed on a model of the adapter's count pages
/// ([`PageModel`]; moto reports no consumed capacity).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct StateUse {
    /// Count updates added (`add_counts`), and the write units of their page writes.
    updates: u64,
    count_wru: u64,
    /// Series read (`read_counts`), and the read units of the page queries covering them.
    queries: u64,
    count_rru: u64,
    /// Subjects looked up as sightings (`first_sightings`), those of them a warm
    /// function reads (not remembered from the last hour), and those seen first here.
    sightings: u64,
    sightings_read: u64,
    first_sightings: u64,
    /// Episode claims, notifications marked sent, learning starts read.
    claims: u64,
    marks: u64,
    learning: u64,
    /// Calls on the idempotency markers in the table, and the units they are billed.
    marker_calls: u64,
    marker_wru: u64,
    marker_rru: u64,
}

impl StateUse {
    fn minus(self, before: StateUse) -> StateUse {
        StateUse {
            updates: self.updates - before.updates,
            count_wru: self.count_wru - before.count_wru,
            queries: self.queries - before.queries,
            count_rru: self.count_rru - before.count_rru,
            sightings: self.sightings - before.sightings,
            sightings_read: self.sightings_read - before.sightings_read,
            first_sightings: self.first_sightings - before.first_sightings,
            claims: self.claims - before.claims,
            marks: self.marks - before.marks,
            learning: self.learning - before.learning,
            marker_calls: self.marker_calls - before.marker_calls,
            marker_wru: self.marker_wru - before.marker_wru,
            marker_rru: self.marker_rru - before.marker_rru,
        }
    }

    /// Write and read capacity units on DynamoDB, by how `src/adapters/dynamodb.rs`
    /// calls it: the count pages as the model bills them; a first sighting, a claim, a
    /// mark and the learning start are one small conditional write each; sightings are
    /// read eventually consistent (half a unit each): all of them when `warm` is false
    /// (each object in a new function instance), else those a warm instance does not
    /// remember ([`KnownSightings`]). The markers' units are [`CountingMarkers`]'.
    fn units(self, warm: bool) -> (f64, f64) {
        let wru = self.count_wru
            + self.first_sightings
            + self.claims
            + self.marks
            + self.learning
            + self.marker_wru;
        let read = if warm {
            self.sightings_read
        } else {
            self.sightings
        };
        let rru = self.count_rru + self.marker_rru;
        (wru as f64, rru as f64 + read as f64 / 2.0)
    }
}

/// The detection state under test, counting what each call asks for.
#[derive(Clone)]
struct CountingState {
    inner: Arc<LocalDetectionState>,
    used: Arc<Mutex<StateUse>>,
    pages: Arc<Mutex<PageModel>>,
    /// What one warm function instance remembers, on the simulated clock (`now`).
    known: Arc<Mutex<KnownSightings>>,
    now: Arc<AtomicI64>,
}

impl CountingState {
    fn used(&self) -> StateUse {
        *self.used.lock().expect("counts")
    }

    fn add(&self, f: impl FnOnce(&mut StateUse)) {
        f(&mut self.used.lock().expect("counts"));
    }
}

#[async_trait]
impl DetectionState for CountingState {
    async fn add_counts(&self, apply_id: &str, updates: &[CountUpdate]) -> Result<u64, StateError> {
        let (wru, rru) = self.pages.lock().expect("pages").add(apply_id, updates);
        self.add(|u| {
            u.updates += updates.len() as u64;
            u.count_wru += wru;
            u.count_rru += rru;
        });
        self.inner.add_counts(apply_id, updates).await
    }

    async fn read_counts(
        &self,
        queries: &[CountQuery],
    ) -> Result<Vec<Vec<MinuteCounts>>, StateError> {
        let rru = self.pages.lock().expect("pages").read_units(queries);
        self.add(|u| {
            u.queries += queries.len() as u64;
            u.count_rru += rru;
        });
        self.inner.read_counts(queries).await
    }

    async fn claim_episode(&self, claim: &EpisodeClaim) -> Result<ClaimOutcome, StateError> {
        self.add(|u| u.claims += 1);
        self.inner.claim_episode(claim).await
    }

    async fn mark_sent(&self, episode: &str) -> Result<(), StateError> {
        self.add(|u| u.marks += 1);
        self.inner.mark_sent(episode).await
    }

    async fn first_sightings(
        &self,
        keys: &[String],
        claimer: &str,
    ) -> Result<Vec<bool>, StateError> {
        let first = self.inner.first_sightings(keys, claimer).await?;
        let distinct = keys.iter().collect::<HashSet<_>>().len() as u64;
        let new = first.iter().filter(|&&f| f).count() as u64;
        let now = self.now.load(Ordering::Relaxed);
        let mut known = self.known.lock().expect("known");
        let mut read = HashSet::new();
        for (key, &first) in keys.iter().zip(&first) {
            if known.answer(claimer, key, now).is_none() {
                read.insert(key);
                known.remember(key, if first { claimer } else { "another" }, now);
            }
        }
        self.add(|u| {
            u.sightings += distinct;
            u.sightings_read += read.len() as u64;
            u.first_sightings += new;
        });
        Ok(first)
    }

    async fn learning_start(&self, bucket: &str, earliest: i64) -> Result<i64, StateError> {
        self.add(|u| u.learning += 1);
        self.inner.learning_start(bucket, earliest).await
    }
}

/// One processed object: the S3 requests it made, its PutMetricData calls and what it
/// asked of the detection state.
struct ObjectRequests {
    s3: RequestsByPrefix,
    metric_calls: u64,
    state: StateUse,
}

/// One hour's processed objects.
#[derive(Default)]
struct HourOfRequests {
    objects: Vec<ObjectRequests>,
}

impl HourOfRequests {
    /// The mean per object of what `count` picks from each.
    fn mean(&self, count: impl Fn(&ObjectRequests) -> u64) -> f64 {
        let total: u64 = self.objects.iter().map(count).sum();
        total as f64 / self.objects.len().max(1) as f64
    }

    fn mean_of(&self, api: &'static str, prefix: &str) -> f64 {
        self.mean(|o| o.s3.get(&(api, prefix.to_string())).copied().unwrap_or(0))
    }

    /// Mean write units, read units with every object in a new instance, and read
    /// units in one warm instance, per object.
    fn state_units(&self) -> (f64, f64, f64) {
        let n = self.objects.len().max(1) as f64;
        let (mut wru, mut cold, mut warm) = (0.0, 0.0, 0.0);
        for o in &self.objects {
            let (w, r) = o.state.units(false);
            wru += w;
            cold += r;
            warm += o.state.units(true).1;
        }
        (wru / n, cold / n, warm / n)
    }

    fn put_class(&self) -> f64 {
        self.mean(|o| in_class(&o.s3, PriceClass::PutCopyPostList))
    }
}

/// The template's idempotency markers: the real adapter on moto's DynamoDB, billed as
/// DynamoDB bills it by item size (moto reports no consumed capacity): a write the larger
/// of the item's size before and after, per KB, refused ones too; a strongly consistent
/// GetItem or Query a unit per 4 KB read, at least one.
#[derive(Clone)]
struct CountingMarkers {
    inner: DynamoMarkers,
    state: CountingState,
    /// The estimated size of every marker item written, by key.
    sizes: Arc<Mutex<HashMap<String, u64>>>,
}

impl CountingMarkers {
    /// An item's size by DynamoDB's rules (names, plus string and binary lengths, plus
    /// about one byte per two digits of a number, plus one): `pk`, `sk` (19 digits), `e`,
    /// `b`, `v` (24 characters) and `expires` (10 digits), as
    /// `src/adapters/dynamodb_markers.rs` writes them.
    fn item_bytes(marker: &ObjectRef, body: usize) -> u64 {
        let (object, version) = marker.key.rsplit_once('@').unwrap_or((&marker.key, ""));
        let pk = 2 + marker.bucket.len() + 1 + object.len() + 1;
        (2 + pk + 2 + 11 + 1 + version.len() + 1 + body + 1 + 24 + 7 + 6) as u64
    }

    fn size(&self, marker: &ObjectRef) -> Option<u64> {
        self.sizes.lock().expect("sizes").get(&marker.key).copied()
    }

    fn bill(&self, wru: u64, rru: u64) {
        self.state.add(|u| {
            u.marker_calls += 1;
            u.marker_wru += wru;
            u.marker_rru += rru;
        });
    }
}

#[async_trait]
impl MarkerStore for CountingMarkers {
    async fn get_marker(
        &self,
        marker: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        self.bill(0, self.size(marker).unwrap_or(0).div_ceil(4096).max(1));
        self.inner.get_marker(marker).await
    }

    async fn put_marker(
        &self,
        marker: &ObjectRef,
        body: Vec<u8>,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        let new = Self::item_bytes(marker, body.len());
        let old = self.size(marker).unwrap_or(0);
        self.bill(new.max(old).div_ceil(1024), 0);
        let outcome = self.inner.put_marker(marker, body, condition).await?;
        if matches!(outcome, PutOutcome::Written { .. }) {
            self.sizes
                .lock()
                .expect("sizes")
                .insert(marker.key.clone(), new);
        }
        Ok(outcome)
    }

    async fn marker_versions(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError> {
        let keys = self.inner.marker_versions(prefix).await?;
        let read: u64 = {
            let sizes = self.sizes.lock().expect("sizes");
            keys.iter().filter_map(|k| sizes.get(k)).sum()
        };
        self.bill(0, read.div_ceil(4096).max(1));
        Ok(keys)
    }

    async fn delete_marker(&self, marker: &ObjectRef) -> Result<(), StoreError> {
        let old = self.sizes.lock().expect("sizes").remove(&marker.key);
        self.bill(old.unwrap_or(0).div_ceil(1024).max(1), 0);
        self.inner.delete_marker(marker).await
    }

    fn location(&self, marker: &ObjectRef) -> String {
        self.inner.location(marker)
    }

    /// Billed at the item's size: `pk` (`d#{out}/` and the folder), `sk`, `e` (the
    /// partition), `b` and `v`, as `src/adapters/dynamodb_markers.rs` writes them.
    async fn put_dirty_mark(&self, mark: &ObjectRef, body: Vec<u8>) -> Result<(), StoreError> {
        use bucketlog::lake::partition::DIRTY_DIR;
        let folder = mark
            .key
            .rfind(DIRTY_DIR)
            .map_or(0, |at| at + DIRTY_DIR.len());
        let pk = 2 + mark.bucket.len() + 1 + folder;
        let bytes = 2 + pk + 2 + 11 + 1 + (mark.key.len() - folder) + 1 + body.len() + 1 + 24;
        self.bill((bytes as u64).div_ceil(1024), 0);
        self.inner.put_dirty_mark(mark, body).await
    }

    async fn dirty_marks(&self, prefix: &ObjectRef) -> Result<Vec<DirtyMarkRead>, StoreError> {
        self.inner.dirty_marks(prefix).await
    }

    async fn clear_dirty_mark(&self, mark: &ObjectRef, version: &str) -> Result<bool, StoreError> {
        self.inner.clear_dirty_mark(mark, version).await
    }
}

/// Two simulated hours delivered through one configuration.
struct RequestRun {
    hours: [HourOfRequests; 2],
    duplicates: Vec<RequestsByPrefix>,
    /// The baseline's lists (requesters, addresses), when the S3 baseline is used.
    baseline: Option<(usize, usize)>,
}

/// Delivers `sim` (starting at `start`) through the default configuration, or the
/// template's (`shared`: the detection state and EMF metrics), counting every request.
async fn deliver_counting(sim: &Simulation, start: i64, shared: bool) -> RequestRun {
    let world = World::new(if shared { "req-shared" } else { "req-default" }).await;
    upload_all(&world, &sim.objects).await;
    let sdk = inbox::sdk_config(&world.server.endpoint).await;
    let metrics = CloudWatchMetrics::new(
        aws_sdk_cloudwatch::Client::new(&sdk),
        format!("Test/{}", world.log_bucket),
    );
    let store = CountingStore::new(S3Store::new(world.s3.clone()));
    let dir = Scratch::new(&format!("req-{}", world.log_bucket));
    let state = CountingState {
        inner: Arc::new(LocalDetectionState::open(dir.join("state.json")).expect("state")),
        used: Arc::default(),
        pages: Arc::new(Mutex::new(PageModel::new())),
        known: Arc::default(),
        now: Arc::default(),
    };
    let vars: HashMap<&str, &str> = [("OUTPUT_BUCKET", world.log_bucket.as_str())].into();
    let config = Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).expect("config");
    let mut pipeline = Pipeline::new(store.clone(), config);
    pipeline = if shared {
        // EMF lines cost no request; only the state is counted. The markers live in the
        // detection table, as with the template's DETECTION_TABLE (MARKERS=auto).
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let table = format!("{}-state", world.log_bucket);
        support::dynamodb::create_table(&dynamodb, &table).await;
        let markers = CountingMarkers {
            inner: DynamoMarkers::new(dynamodb, table),
            state: state.clone(),
            sizes: Arc::default(),
        };
        pipeline
            .with_detection_state(Box::new(state.clone()))
            .with_marker_store(Box::new(markers))
    } else {
        pipeline.with_metrics(Box::new(metrics.clone()))
    };

    let mut hours = [HourOfRequests::default(), HourOfRequests::default()];
    let mut duplicates = Vec::new();
    for (position, arrival) in sim.arrivals.iter().enumerate() {
        let object = &sim.objects[arrival.object];
        let event = event_for(
            &world.log_bucket,
            &object.key,
            &object.body,
            arrival.at,
            position,
        );
        state.now.store(arrival.at, Ordering::Relaxed);
        let before = (store.by_prefix(), metrics.calls(), state.used());
        let response = pipeline
            .handle(&event)
            .await
            .unwrap_or_else(|e| panic!("arrival {position} ({}): {e}", object.key));
        let made = requests_between(&before.0, &store.by_prefix());
        match response["objects"][0]["outcome"].as_str() {
            Some("processed") => {
                let hour = usize::from(object.first >= start + 3600);
                hours[hour].objects.push(ObjectRequests {
                    s3: made,
                    metric_calls: metrics.calls() - before.1,
                    state: state.used().minus(before.2),
                });
            }
            Some("duplicate") => duplicates.push(made),
            other => panic!("arrival {position} ({}): outcome {other:?}", object.key),
        }
    }
    let baseline = if shared {
        None
    } else {
        let key = format!("state/baseline/{}.json", sim.config.bucket);
        let baseline: Value =
            serde_json::from_slice(&s3::get(&world.s3, &world.log_bucket, &key).await)
                .expect("baseline JSON");
        let known = |list: &str| baseline[list].as_object().map_or(0, |m| m.len());
        Some((known("requesters"), known("remote_ips")))
    };
    drop(dir);
    RequestRun {
        hours,
        duplicates,
        baseline,
    }
}

/// Picks one count from an object's requests.
type PerObject<'a> = &'a dyn Fn(&ObjectRequests) -> u64;

/// Prints one configuration's table of requests per object (BENCHMARKS.md).
fn print_requests(title: &str, run: &RequestRun) {
    eprintln!("{title}");
    let kinds: std::collections::BTreeSet<(&str, String)> = run
        .hours
        .iter()
        .flat_map(|h| h.objects.iter().flat_map(|o| o.s3.keys().cloned()))
        .collect();
    eprintln!("| request | key prefix | first hour | second hour |");
    let [first, second] = &run.hours;
    for (api, prefix) in &kinds {
        let (a, b) = (first.mean_of(api, prefix), second.mean_of(api, prefix));
        eprintln!("| {api} | {prefix} | {a:.2} | {b:.2} |");
    }
    let rows: [(&str, PerObject); 4] = [
        ("PutMetricData", &|o| o.metric_calls),
        ("S3 PUT, COPY, POST, LIST", &|o| {
            in_class(&o.s3, PriceClass::PutCopyPostList)
        }),
        ("S3 GET", &|o| in_class(&o.s3, PriceClass::GetAndOther)),
        ("state: updates, queries, sightings (first), claims", &|o| {
            o.state.updates + o.state.queries + o.state.sightings + o.state.claims
        }),
    ];
    for (name, count) in rows {
        eprintln!(
            "| {name} | | {:.2} | {:.2} |",
            first.mean(count),
            second.mean(count)
        );
    }
    for (i, hour) in run.hours.iter().enumerate() {
        let n = hour.objects.len().max(1) as f64;
        let sum = |f: fn(&StateUse) -> u64| {
            hour.objects.iter().map(|o| f(&o.state)).sum::<u64>() as f64 / n
        };
        let (wru, cold, warm) = hour.state_units();
        eprintln!(
            "hour {}: state per object: {:.1} updates ({:.1} WRU), {:.1} queries ({:.1} RRU), \
             {:.1} sightings ({:.1} read by a warm instance, {:.2} first), {:.2} claims, \
             {:.1} marker calls ({:.1} WRU, {:.1} RRU); \
             about {:.1} WRU and {:.1} RRU ({:.1} RRU warm)",
            i + 1,
            sum(|u| u.updates),
            sum(|u| u.count_wru),
            sum(|u| u.queries),
            sum(|u| u.count_rru),
            sum(|u| u.sightings),
            sum(|u| u.sightings_read),
            sum(|u| u.first_sightings),
            sum(|u| u.claims),
            sum(|u| u.marker_calls),
            sum(|u| u.marker_wru),
            sum(|u| u.marker_rru),
            wru,
            cold,
            warm
        );
    }
}

/// A duplicate delivery opens the object (for its ETag), reads its marker and stops: two
/// GETs, nothing written; one GET when the marker is in the table (`s3_markers` false).
fn assert_duplicates_only_read(run: &RequestRun, s3_markers: bool) {
    assert!(
        !run.duplicates.is_empty(),
        "the simulation delivers some objects twice"
    );
    let gets = if s3_markers { 2 } else { 1 };
    for made in &run.duplicates {
        assert_eq!(
            (
                in_class(made, PriceClass::PutCopyPostList),
                in_class(made, PriceClass::GetAndOther)
            ),
            (0, gets),
            "a duplicate delivery made {made:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_log_object_at_16_hosts() {
    // S3 bills every request, whatever its size, and S3 delivers many small objects, so
    // the requests made per log object weigh more in the bill than the function's CPU
    // (BENCHMARKS.md, "Requests per log object"). Two hours at 16 hosts (objects of a few
    // hundred records, out of order, some twice), twice: through the binary's default
    // configuration (curated output, the lake's dirty marks, the S3 baseline, metrics
    // through PutMetricData), and through the template's (the shared detection state
    // instead of the S3 baseline, EMF metrics). The first hour meets most of the
    // bucket's requesters and addresses for the first time; the second is what a bucket
    // costs once they are known.
    let start = simulated_start() - 3600;
    let sim = simulate(&SimConfig {
        seconds: 7200,
        ..SimConfig::new(Layout::Hosts(16), start)
    });
    let records = sim.requests as f64 / sim.objects.len() as f64;
    let bytes =
        sim.objects.iter().map(|o| o.body.len()).sum::<usize>() as f64 / sim.objects.len() as f64;
    eprintln!(
        "{} objects of {records:.0} records ({:.0} KiB) on average, {} delivered twice",
        sim.objects.len(),
        bytes / 1024.0,
        sim.arrivals.iter().filter(|a| a.duplicate).count()
    );
    let (default, shared) = tokio::join!(
        deliver_counting(&sim, start, false),
        deliver_counting(&sim, start, true)
    );
    print_requests("binary defaults (S3 baseline, METRICS_MODE=api)", &default);
    print_requests(
        "the template's (DETECTION_TABLE, METRICS_MODE=emf)",
        &shared,
    );
    let (requesters, addresses) = default.baseline.expect("the S3 baseline");
    eprintln!("the baseline knows {requesters} requesters and {addresses} addresses");

    for (run, s3_markers) in [(&default, true), (&shared, false)] {
        assert_eq!(
            run.hours[0].objects.len() + run.hours[1].objects.len(),
            sim.objects.len()
        );
        assert_duplicates_only_read(run, s3_markers);
        for object in run.hours.iter().flat_map(|h| &h.objects) {
            // The log object and, in S3, its marker; the output and, in S3, its dirty mark.
            let (gets, puts) = if s3_markers { (2, 2) } else { (1, 1) };
            assert!(in_class(&object.s3, PriceClass::GetAndOther) >= gets);
            assert!(in_class(&object.s3, PriceClass::PutCopyPostList) >= puts);
        }
    }
    for object in default.hours.iter().flat_map(|h| &h.objects) {
        assert!(
            object.metric_calls >= 1,
            "each object's metrics are published"
        );
        assert_eq!(
            object.state,
            StateUse::default(),
            "no shared state by default"
        );
    }
    for object in shared.hours.iter().flat_map(|h| &h.objects) {
        assert!(object.state.updates >= 1 && object.state.sightings >= 1);
        // The marks in the table: the marker read, claimed, the Query for earlier
        // versions, done; a dirty mark per partition written (two for an object that
        // spans an hour's end).
        let partitions: u64 = object
            .s3
            .iter()
            .filter(|((api, p), _)| *api == "PutObject" && p.starts_with("curated/"))
            .map(|(_, n)| n)
            .sum();
        assert!(partitions >= 1);
        assert_eq!(object.state.marker_calls, 4 + partitions);
        assert!(
            object
                .s3
                .keys()
                .all(|(_, p)| p != "state/processed/" && p != "state/lake/"),
            "{:?}",
            object.s3
        );
        assert_eq!(
            object
                .s3
                .keys()
                .filter(|(_, p)| p == "state/baseline/")
                .count(),
            0
        );
    }
    // What an object costs in DynamoDB once the bucket is known: counts written in pages
    // of a minute, each object's part on a page of its own, cost about its own bytes,
    // a dozen write units per object, where one page per minute shared by every object
    // cost 25.6 and a transactional write per (subject, minute) 763; a warm instance
    // reads few sightings again.
    let (wru, cold, warm) = shared.hours[1].state_units();
    assert!(wru <= 14.0, "{wru:.1} write units per object");
    assert!(
        cold <= 150.0 && warm < cold / 2.0,
        "read units per object: {cold:.1} in new instances, {warm:.1} warm"
    );
    // What an object costs in S3 once the bucket is known: its output, its partition's
    // dirty mark, its marker twice and the supersede listing, and a baseline write for
    // few. A new request per object raises the bill by a sixth (BENCHMARKS.md): it must be
    // decided, not slipped in.
    assert!(
        default.hours[1].put_class() <= 5.25,
        "PUT-class requests per object: {}",
        default.hours[1].put_class()
    );
    // With the marks in the table: the output alone.
    assert!(
        shared.hours[1].put_class() <= 1.0,
        "PUT-class requests per object with the table: {}",
        shared.hours[1].put_class()
    );
    // Once the baseline knows the bucket's subjects, most objects leave it unwritten; the
    // lists stay below the size where every move is written.
    let baseline_writes = |h: &HourOfRequests| h.mean_of("PutObject", "state/baseline/");
    assert!(
        baseline_writes(&default.hours[1]) < 0.2 * baseline_writes(&default.hours[0]),
        "baseline writes per object: {} then {}",
        baseline_writes(&default.hours[0]),
        baseline_writes(&default.hours[1])
    );
    assert!(addresses + bucketlog::alerts::detect::SEEN_COUNTERS <= 5_000);
}

// The simulator itself, without moto: pure logic, so plain unit-level checks.

fn sim(layout: Layout) -> Simulation {
    // A fixed start: 2026-11-20T14:00:00Z.
    simulate(&SimConfig::new(layout, 1_795_183_200))
}

#[test]
fn the_simulator_is_deterministic_and_cuts_every_request_into_exactly_one_object() {
    let a = sim(Layout::Hosts(4));
    let b = sim(Layout::Hosts(4));
    assert_eq!(a.arrivals, b.arrivals);
    assert!(
        a.objects
            .iter()
            .zip(&b.objects)
            .all(|(x, y)| x.key == y.key && x.body == y.body)
    );
    let other = simulate(&SimConfig {
        seed: 10,
        ..SimConfig::new(Layout::Hosts(4), 1_795_183_200)
    });
    assert_ne!(a.objects[0].body, other.objects[0].body);

    // 20 requests/s for an hour, plus the 465 attack requests, each in one object.
    let injected: u64 = a.attacks.iter().map(|x| x.forbidden).sum();
    assert_eq!(injected, 120 + 300 + 45);
    assert_eq!(a.requests, 72_000 + 465);
    let lines: usize = a
        .objects
        .iter()
        .map(|o| o.body.iter().filter(|&&b| b == b'\n').count())
        .sum();
    assert_eq!(lines, a.requests);
    let records: usize = a.objects.iter().map(|o| o.records).sum();
    assert_eq!(records, a.requests);
    let per_minute = a.records_per_minute();
    assert_eq!(per_minute.len(), 60, "every line parses, in the hour");
    let b_minute = a.attacks[1].start;
    assert_eq!(per_minute[&b_minute], 1200 + 300);
}

#[test]
fn hosts_flush_every_five_minutes_or_at_5000_records_into_aws_shaped_keys() {
    for (hosts, expected) in [
        (1u32, 24..=25),
        (4, 52..=53),
        (16, 208..=209),
        (64, 832..=833),
    ] {
        let s = sim(Layout::Hosts(hosts));
        assert!(
            expected.contains(&s.objects.len()),
            "{hosts} hosts: {} objects",
            s.objects.len()
        );
        let (_, largest) = s.object_sizes();
        assert!(largest <= 5000, "{largest} records in one object");
        let mut keys = HashSet::new();
        for o in &s.objects {
            assert!(
                o.last - o.first < 300,
                "{} spans {}s",
                o.key,
                o.last - o.first
            );
            assert!(o.flushed_at >= o.last);
            // raw/YYYY-mm-DD-HH-MM-SS-UniqueString
            let name = o.key.strip_prefix("raw/").expect("raw/ prefix");
            let parsed = bucketlog::logkey::parse_log_key(&o.key);
            assert!(parsed.delivered.is_some(), "{} is AWS's format", o.key);
            assert_eq!(name.len(), 19 + 1 + 16, "{name}");
            assert!(keys.insert(o.key.clone()), "duplicate key {}", o.key);
        }
        let hosts_seen: HashSet<u32> = s.objects.iter().map(|o| o.host).collect();
        assert_eq!(hosts_seen.len(), hosts as usize);
    }
    let one = sim(Layout::OneObject);
    assert_eq!(one.objects.len(), 1);
    assert_eq!(one.objects[0].records, one.requests);
}

#[test]
fn objects_arrive_late_out_of_order_and_some_twice() {
    let s = sim(Layout::Hosts(64));
    assert!(s.arrivals.windows(2).all(|w| w[0].at <= w[1].at));
    let mut firsts = HashSet::new();
    for a in &s.arrivals {
        let object = &s.objects[a.object];
        assert!(
            a.at >= object.flushed_at + 120,
            "arrives after it was written"
        );
        if a.duplicate {
            assert!(
                firsts.contains(&a.object),
                "a duplicate follows its first delivery"
            );
        } else {
            assert!(firsts.insert(a.object), "one first delivery per object");
        }
    }
    assert_eq!(firsts.len(), s.objects.len());
    let duplicates = s.duplicates();
    assert!((10..=50).contains(&duplicates), "{duplicates} duplicates");
    assert!(
        s.overtaken() > s.objects.len() / 4,
        "{} overtaken",
        s.overtaken()
    );
    let days_late = s
        .arrivals
        .iter()
        .filter(|a| a.at - s.objects[a.object].flushed_at > 86_400)
        .count();
    assert!(days_late >= 1, "some objects arrive days late");
}

#[test]
fn scoring_tells_found_partial_missed_and_false_alerts_apart() {
    let attacks = vec![
        Attack {
            name: "A",
            what: "one address".into(),
            start: 600,
            end: 900,
            forbidden: 120,
            target: Target::RemoteIp("198.51.100.23".into()),
        },
        Attack {
            name: "B",
            what: "bucket".into(),
            start: 1440,
            end: 1500,
            forbidden: 300,
            target: Target::Bucket,
        },
        Attack {
            name: "C",
            what: "user".into(),
            start: 2460,
            end: 2820,
            forbidden: 45,
            target: Target::Requester("u".into()),
        },
    ];
    let alert = |id: &str, kind: Option<(&str, &str)>, start: i64, end: i64, count| SeenAlert {
        alert_id: id.into(),
        alert_type: "forbidden_spike".into(),
        subject: kind.map(|(k, v)| (k.into(), v.into())),
        window_start: start,
        window_end: end,
        count,
    };
    let notified = vec![
        alert("a", Some(("remote_ip", "198.51.100.23")), 600, 900, 120),
        alert("b", None, 1440, 1500, 80),
        alert("b", None, 1440, 1500, 70),
        // The right address, but outside A's time: a false alert.
        alert("x", Some(("remote_ip", "198.51.100.23")), 3000, 3060, 40),
        // C's user, but the wrong kind of subject: not about C.
        alert("y", Some(("remote_ip", "u")), 2460, 2820, 45),
        SeenAlert {
            alert_type: "new_requester".into(),
            ..alert("n", Some(("requester", "new")), 0, 60, 1)
        },
    ];
    let score = Scorecard::score(&attacks, &notified);
    assert_eq!(score.verdict("A"), "found");
    assert!(
        score.verdict("B").starts_with("found as 2 partial alerts"),
        "{}",
        score.verdict("B")
    );
    assert_eq!(score.verdict("C"), "missed");
    let false_ids: Vec<&str> = score
        .false_alerts
        .iter()
        .map(|a| a.alert_id.as_str())
        .collect();
    assert_eq!(false_ids, ["x", "y"]);
    assert_eq!(score.newcomers, 1);
}

#[test]
fn alert_times_are_read_as_unix_seconds() {
    assert_eq!(unix_of("2026-11-20T14:00:00Z"), 1_795_183_200);
    assert_eq!(unix_of("1970-01-01T00:00:00Z"), 0);
    assert_eq!(unix_of("2024-02-29T23:59:59Z"), 1_709_251_199);
}
