//! Detection on state shared by every invocation, against real components: moto's
//! DynamoDB, S3, SNS and SQS on 127.0.0.1 through the real aws-sdk clients. Attacks are
//! spread over several small log objects, delivered out of order, concurrently, late and
//! twice; notifications are read back from an SQS queue subscribed to the topic. The
//! local state (`bucketlog replay`) is checked over two pipelines sharing one folder.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use bucketlog::access_log::LogTime;
use bucketlog::adapters::dynamodb::DynamoDetectionState;
use bucketlog::adapters::dynamodb_markers::DynamoMarkers;
use bucketlog::adapters::local::LocalStore;
use bucketlog::adapters::local_state::LocalDetectionState;
use bucketlog::adapters::s3::S3Store;
use bucketlog::alerts::SubjectKind;
use bucketlog::alerts::shared::{bucket_series, subject_series};
use bucketlog::config::Config;
use bucketlog::event::ObjectRef;
use bucketlog::pipeline::Pipeline;
use bucketlog::ports::{
    ClaimOutcome, CountQuery, CountUpdate, DetectionState, EpisodeClaim, MarkerStore, MinuteCounts,
    PutCondition, PutOutcome, StateError, StateErrorKind,
};
use serde_json::Value;
use support::dynamodb::{ModelPage, PageModel};
use support::inbox::{self, AlertInbox};
use support::{moto, s3};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

const ATTACKER: &str = "203.0.113.66";
const QUIET: &str = "198.51.100.7";
const CLIENT: &str = "192.0.2.10";

fn now() -> i64 {
    bucketlog::pipeline::system_now()
}

/// One access-log line for `bucket` at Unix time `t`; `n` makes the request ID unique.
fn line(bucket: &str, t: i64, ip: &str, status: u16, n: usize) -> String {
    let u = LogTime::from_unix_seconds(t).utc();
    format!(
        "79a5 {bucket} [{:02}/{}/{}:{:02}:{:02}:{:02} +0000] {ip} - REQ{t}x{n}x{status} \
         REST.GET.OBJECT k/{n} \"GET /{bucket}/k/{n} HTTP/1.1\" {status} - 10 10 12 3 \"-\" \
         \"curl/8.4\" - HOSTID SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader \
         {bucket}.s3.amazonaws.com TLSv1.2 - -",
        u.day,
        MONTHS[(u.month - 1) as usize],
        u.year,
        u.hour,
        u.minute,
        u.second
    )
}

/// `count` requests from `ip` with `status`, spread over the minute starting at `minute`.
fn burst(bucket: &str, minute: i64, ip: &str, status: u16, count: usize, n0: usize) -> Vec<String> {
    (0..count)
        .map(|i| line(bucket, minute + (i as i64 % 60), ip, status, n0 + i))
        .collect()
}

/// A bucket, a detection table, and a topic feeding a queue.
struct World {
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    inbox: AlertInbox,
    bucket: String,
    table: String,
}

impl World {
    async fn new(prefix: &str) -> World {
        let server = moto::shared();
        let sdk = inbox::sdk_config(&server.endpoint).await;
        let s3 = s3::client(&server.endpoint).await;
        let bucket = moto::unique_bucket(prefix);
        s3::create_bucket(&s3, &bucket).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let table = format!("{bucket}-detection");
        support::dynamodb::create_table(&dynamodb, &table).await;
        World {
            inbox: AlertInbox::create(&sdk, &bucket).await,
            s3,
            dynamodb,
            bucket,
            table,
        }
    }

    fn state(&self) -> DynamoDetectionState {
        DynamoDetectionState::new(self.dynamodb.clone(), self.table.clone())
    }

    /// Every item in the table (a test's few).
    async fn items(&self) -> Vec<std::collections::HashMap<String, AttributeValue>> {
        let scan = self.dynamodb.scan().table_name(&self.table).send().await;
        scan.expect("scan the table").items.unwrap_or_default()
    }

    /// The markers in the table, as the function keeps them when it has one.
    fn markers(&self) -> DynamoMarkers {
        DynamoMarkers::new(self.dynamodb.clone(), self.table.clone())
    }

    /// A pipeline sharing the table (state and markers) and publishing to the topic.
    fn pipeline_with(&self, state: Box<dyn DetectionState>) -> Pipeline<S3Store> {
        Pipeline::new(S3Store::new(self.s3.clone()), config())
            .with_notifier(self.inbox.notifier())
            .with_detection_state(state)
            .with_marker_store(Box::new(self.markers()))
    }

    fn pipeline(&self) -> Pipeline<S3Store> {
        self.pipeline_with(Box::new(self.state()))
    }

    /// Uploads a log object and returns the event announcing it.
    async fn log_object(&self, name: &str, lines: &[String]) -> Value {
        s3::put_log(&self.s3, &self.bucket, name, lines).await
    }

    /// Every alert delivered to the topic so far (drains the queue).
    async fn delivered(&self) -> Vec<Value> {
        self.inbox.drain().await
    }

    /// The delivered 403-spike alerts.
    async fn spikes(&self) -> Vec<Value> {
        self.delivered()
            .await
            .into_iter()
            .filter(|a| a["type"] == "forbidden_spike")
            .collect()
    }

    /// Merged (403s, requests) of a series over minutes `[from, to]`.
    async fn counts(&self, series: String, from: i64, to: i64) -> (u64, u64) {
        let read = self
            .state()
            .read_counts(&[CountQuery { series, from, to }])
            .await
            .expect("read counts");
        read[0]
            .iter()
            .fold((0, 0), |(f, t), m| (f + m.forbidden, t + m.total))
    }

    async fn ip_counts(&self, ip: &str, from: i64, to: i64) -> (u64, u64) {
        self.counts(
            subject_series(&self.bucket, SubjectKind::RemoteIp, ip),
            from,
            to,
        )
        .await
    }
}

fn config() -> Config {
    Config::from_lookup(|_| None).expect("default config")
}

fn minute_of(t: i64) -> i64 {
    t - t.rem_euclid(60)
}

fn outcome(response: &Value) -> &str {
    response["objects"][0]["outcome"].as_str().unwrap_or("?")
}

/// Object `i` of an attack: 9 of the attacker's 45 403s (in minute `i`), a quiet
/// address's 5 403s among 20 requests, and a busy client's successful requests.
fn attack_part(bucket: &str, t0: i64, i: usize) -> Vec<String> {
    let minute = t0 + 60 * i as i64;
    let mut lines = burst(bucket, minute, ATTACKER, 403, 9, 1000 * i);
    lines.extend(burst(bucket, minute, QUIET, 403, 5, 1000 * i + 100));
    lines.extend(burst(bucket, minute, QUIET, 200, 15, 1000 * i + 200));
    lines.extend(burst(bucket, minute, CLIENT, 200, 30, 1000 * i + 300));
    lines.sort_by_key(|l| l[l.find('[').unwrap_or(0)..].to_string());
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_spread_over_out_of_order_objects_adds_up_and_alerts_once() {
    let w = World::new("spread").await;
    let pipeline = w.pipeline();
    let t0 = minute_of(now() - 3 * 3600);
    // Five objects, none holding more than 9 of the attacker's 403s, processed out of
    // order, and the second one delivered twice.
    let mut events = Vec::new();
    for i in 0..5 {
        let name = format!("2026-11-22-10-0{i}-00-HOST{i}");
        events.push(w.log_object(&name, &attack_part(&w.bucket, t0, i)).await);
    }
    for i in [3, 1, 4, 1, 0, 2] {
        pipeline.handle(&events[i]).await.expect("handled");
    }
    let last = t0 + 4 * 60;
    assert_eq!(w.ip_counts(ATTACKER, t0, last).await, (45, 45));
    assert_eq!(w.ip_counts(QUIET, t0, last).await, (25, 100));
    assert_eq!(
        w.counts(bucket_series(&w.bucket), t0, last).await,
        (70, 295)
    );
    let spikes = w.spikes().await;
    assert_eq!(spikes.len(), 1, "{spikes:#?}");
    let alert = &spikes[0];
    assert_eq!(alert["subject"]["value"], ATTACKER);
    assert_eq!(alert["count"], 45);
    assert_eq!(alert["window_start"], bucketlog_time(t0));
    assert_eq!(alert["window_end"], bucketlog_time(t0 + 300));
    assert!(alert["detection_delay_seconds"].as_i64().unwrap() >= 3 * 3600 - 300 - 60);
    // A later object of the same attack joins the alert: nobody is notified again.
    let more = burst(&w.bucket, t0 + 300, ATTACKER, 403, 9, 9000);
    let event = w.log_object("2026-11-22-10-05-00-HOST9", &more).await;
    pipeline.handle(&event).await.expect("handled");
    assert!(w.spikes().await.is_empty());
}

fn bucketlog_time(t: i64) -> String {
    LogTime::from_unix_seconds(t).rfc3339().as_str().to_string()
}

/// moto alone does not apply concurrent `TransactWriteItems` atomically (it deep-copies the
/// table for its rollback and can restore a stale copy; seen: 36 of 48 counts). Real
/// DynamoDB does, so the test harness's moto front end (`scripts/moto_server_cbor.py`)
/// handles DynamoDB requests one at a time, and the two invocations still overlap in
/// everything else: S3 reads, markers, SNS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_over_the_same_minutes_count_exactly_and_notify_once() {
    let w = World::new("concurrent").await;
    let (a, b) = (w.pipeline(), w.pipeline());
    let t0 = minute_of(now() - 3600);
    // Two hosts' objects over the same two minutes: 24 + 24 of the attacker's 403s.
    let mut first = burst(&w.bucket, t0, ATTACKER, 403, 12, 0);
    first.extend(burst(&w.bucket, t0 + 60, ATTACKER, 403, 12, 100));
    let mut second = burst(&w.bucket, t0, ATTACKER, 403, 12, 200);
    second.extend(burst(&w.bucket, t0 + 60, ATTACKER, 403, 12, 300));
    let ea = w.log_object("2026-11-22-11-00-00-HOSTA", &first).await;
    let eb = w.log_object("2026-11-22-11-00-00-HOSTB", &second).await;
    let (ra, rb) = tokio::join!(a.handle(&ea), b.handle(&eb));
    ra.expect("first handled");
    rb.expect("second handled");
    assert_eq!(w.ip_counts(ATTACKER, t0, t0 + 60).await, (48, 48));
    let spikes = w.spikes().await;
    assert_eq!(spikes.len(), 1, "{spikes:#?}");
    assert_eq!(spikes[0]["count"], 48);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_changes_no_count_even_without_its_marker() {
    let w = World::new("duplicate").await;
    let pipeline = w.pipeline();
    let t0 = minute_of(now() - 3600);
    let lines = attack_part(&w.bucket, t0, 0);
    let event = w.log_object("2026-11-22-12-00-00-HOST0", &lines).await;
    let first = pipeline.handle(&event).await.expect("handled");
    assert_eq!(outcome(&first), "processed");
    let once = w.ip_counts(ATTACKER, t0, t0).await;
    assert_eq!(once, (9, 9));
    let again = pipeline.handle(&event).await.expect("handled");
    assert_eq!(outcome(&again), "duplicate");
    // Even with the marker gone (a redelivery the ledger cannot recognise), the counts'
    // own applied items keep them from being added twice.
    let marker = first["objects"][0]["marker"].as_str().unwrap().to_string();
    let key = marker
        .split_once(&format!("dynamodb://{}/{}/", w.table, w.bucket))
        .unwrap()
        .1;
    let marker = ObjectRef {
        bucket: w.bucket.clone(),
        key: key.to_string(),
    };
    w.markers()
        .delete_marker(&marker)
        .await
        .expect("delete marker");
    let third = pipeline.handle(&event).await.expect("handled");
    assert_eq!(outcome(&third), "processed");
    assert_eq!(w.ip_counts(ATTACKER, t0, t0).await, once);
    assert_eq!(w.ip_counts(QUIET, t0, t0).await, (5, 20));
}

fn marker(w: &World, key: &str) -> ObjectRef {
    ObjectRef {
        bucket: w.bucket.clone(),
        key: key.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_in_the_table_keep_the_conditions_the_ledger_relies_on() {
    let w = World::new("markers").await;
    let markers = w.markers().with_ttl_days(Some(30));
    let first = marker(&w, "state/processed/src/raw/a@etag1");
    assert_eq!(markers.get_marker(&first).await.unwrap(), None);
    let created = markers
        .put_marker(&first, b"{\"n\":1}".to_vec(), PutCondition::IfAbsent)
        .await
        .unwrap();
    let PutOutcome::Written { etag: Some(v1) } = created else {
        panic!("{created:?}")
    };
    let again = markers
        .put_marker(&first, b"{\"n\":2}".to_vec(), PutCondition::IfAbsent)
        .await
        .unwrap();
    assert_eq!(again, PutOutcome::PreconditionFailed);
    assert_eq!(
        markers.get_marker(&first).await.unwrap(),
        Some((b"{\"n\":1}".to_vec(), Some(v1.clone())))
    );
    let stale = PutCondition::IfMatch("not-the-version".into());
    let refused = markers
        .put_marker(&first, b"x".to_vec(), stale)
        .await
        .unwrap();
    assert_eq!(refused, PutOutcome::PreconditionFailed);
    let replaced = markers
        .put_marker(
            &first,
            b"{\"n\":3}".to_vec(),
            PutCondition::IfMatch(v1.clone()),
        )
        .await
        .unwrap();
    let PutOutcome::Written { etag: Some(v2) } = replaced else {
        panic!("{replaced:?}")
    };
    assert_ne!(v1, v2, "every write has a new version tag");
    let behind = markers
        .put_marker(&first, b"y".to_vec(), PutCondition::IfMatch(v1))
        .await
        .unwrap();
    assert_eq!(behind, PutOutcome::PreconditionFailed);

    // Every version of one object, and nothing of an object whose key goes on after '@'.
    let second = marker(&w, "state/processed/src/raw/a@etag2");
    let longer = marker(&w, "state/processed/src/raw/a@b@etag1");
    for m in [&second, &longer] {
        let put = markers.put_marker(m, b"{}".to_vec(), PutCondition::IfAbsent);
        assert!(matches!(put.await.unwrap(), PutOutcome::Written { .. }));
    }
    let mut versions = markers
        .marker_versions(&marker(&w, "state/processed/src/raw/a@"))
        .await
        .unwrap();
    versions.sort();
    assert_eq!(versions, [first.key.clone(), second.key.clone()]);

    // MARKER_TTL_DAYS: the item expires 30 days after its last write.
    let item = w
        .items()
        .await
        .into_iter()
        .find(|i| {
            i["pk"].as_s().ok() == Some(&format!("m#{}/state/processed/src/raw/a@", w.bucket))
                && i["e"].as_s().ok().map(String::as_str) == Some("etag1")
        })
        .expect("the first marker's item");
    let expires: i64 = item["expires"].as_n().unwrap().parse().unwrap();
    assert!((expires - now() - 30 * 86_400).abs() < 120, "{expires}");

    markers.delete_marker(&first).await.unwrap();
    assert_eq!(markers.get_marker(&first).await.unwrap(), None);
    markers
        .delete_marker(&first)
        .await
        .expect("deleting a gone marker is fine");
    assert!(markers.get_marker(&second).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_marks_in_the_table_change_on_every_write_and_clear_only_unchanged() {
    let w = World::new("dirty").await;
    let marks = w.markers().with_ttl_days(Some(30));
    let folder = marker(&w, "state/lake/dirty/");
    let hour = marker(&w, "state/lake/dirty/bucket=src/dt=2026-11-20/hour=14");
    let next = marker(&w, "state/lake/dirty/bucket=src/dt=2026-11-20/hour=15");
    assert!(marks.dirty_marks(&folder).await.unwrap().is_empty());
    marks
        .put_dirty_mark(&hour, b"{\"w\":1}".to_vec())
        .await
        .unwrap();
    let read = marks.dirty_marks(&folder).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(
        (read[0].key.as_str(), read[0].body.as_slice()),
        (hour.key.as_str(), &b"{\"w\":1}"[..])
    );
    let v1 = read[0].version.clone().expect("a version tag");
    // A write during a compaction: the same partition, a new version, still one mark.
    marks
        .put_dirty_mark(&hour, b"{\"w\":2}".to_vec())
        .await
        .unwrap();
    marks
        .put_dirty_mark(&next, b"{\"w\":3}".to_vec())
        .await
        .unwrap();
    let read = marks.dirty_marks(&folder).await.unwrap();
    let keys: Vec<&str> = read.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, [hour.key.as_str(), next.key.as_str()]);
    let v2 = read[0].version.clone().expect("a version tag");
    assert_ne!(v1, v2);
    assert!(
        !marks.clear_dirty_mark(&hour, &v1).await.unwrap(),
        "changed since read"
    );
    assert!(marks.clear_dirty_mark(&hour, &v2).await.unwrap());
    assert!(
        !marks.clear_dirty_mark(&hour, &v2).await.unwrap(),
        "already gone"
    );
    let left: Vec<String> = marks
        .dirty_marks(&folder)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(left, std::slice::from_ref(&next.key));
    // Another output bucket's marks are its own; marks never expire.
    let elsewhere = ObjectRef {
        bucket: format!("{}-other", w.bucket),
        key: folder.key.clone(),
    };
    assert!(marks.dirty_marks(&elsewhere).await.unwrap().is_empty());
    let items = w.items().await;
    let item = items
        .iter()
        .find(|i| i["pk"].as_s().ok() == Some(&format!("d#{}/state/lake/dirty/", w.bucket)))
        .expect("the mark's item");
    assert!(!item.contains_key("expires"), "{item:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compaction_clears_the_table_marks_and_the_marks_left_in_s3_before_the_switch() {
    let w = World::new("dirtyflow").await;
    let t0 = minute_of(now() - 7200);
    let t0 = t0 - t0.rem_euclid(3600) + 600;
    // Before the switch: a function with its markers in S3 marks the first hour there.
    let before = Pipeline::new(S3Store::new(w.s3.clone()), config());
    let early: Vec<String> = (0..12)
        .map(|n| line(&w.bucket, t0 + n as i64 * 60, QUIET, 200, n))
        .collect();
    let event = w.log_object("2026-11-22-12-00-00-HOSTA", &early).await;
    assert_eq!(
        outcome(&before.handle(&event).await.expect("handled")),
        "processed"
    );
    assert_eq!(
        s3::list(&w.s3, &w.bucket, "state/lake/dirty/").await.len(),
        1
    );
    // After it: the same hour and the next, marked in the table.
    let pipeline = w.pipeline();
    let late: Vec<String> = (0..20)
        .map(|n| line(&w.bucket, t0 + 1800 + n as i64 * 120, CLIENT, 200, 100 + n))
        .collect();
    let event = w.log_object("2026-11-22-13-00-00-HOSTB", &late).await;
    assert_eq!(
        outcome(&pipeline.handle(&event).await.expect("handled")),
        "processed"
    );
    let folder = marker(&w, "state/lake/dirty/");
    assert_eq!(w.markers().dirty_marks(&folder).await.unwrap().len(), 2);
    assert_eq!(
        s3::list(&w.s3, &w.bucket, "state/lake/dirty/").await.len(),
        1
    );

    // The scheduled compaction, as the template's compaction function runs it: the same
    // table for its marks, OUTPUT_BUCKET, and no settle time.
    let vars: HashMap<&str, &str> = [
        ("OUTPUT_BUCKET", w.bucket.as_str()),
        ("LAKE_SETTLE_MINUTES", "0"),
    ]
    .into();
    let scheduled = Pipeline::new(
        S3Store::new(w.s3.clone()),
        Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).expect("config"),
    )
    .with_marker_store(Box::new(w.markers()));
    let event = serde_json::json!({
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "detail": {}
    });
    let answer = scheduled.handle(&event).await.expect("compacted");
    let report = &answer["compaction"];
    assert_eq!(report["failed"], serde_json::json!([]), "{answer}");
    let rows: Vec<(String, u64, bool)> = report["compacted"]
        .as_array()
        .expect("compacted partitions")
        .iter()
        .map(|p| {
            (
                p["partition"].as_str().unwrap_or_default().to_string(),
                p["rows"].as_u64().unwrap_or_default(),
                p["still_dirty"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    assert_eq!(rows.len(), 2, "each partition once: {rows:?}");
    assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), 32);
    assert!(rows.iter().all(|r| !r.2), "{rows:?}");
    assert!(w.markers().dirty_marks(&folder).await.unwrap().is_empty());
    assert!(
        s3::list(&w.s3, &w.bucket, "state/lake/dirty/")
            .await
            .is_empty()
    );
    assert_eq!(s3::list(&w.s3, &w.bucket, "lake/").await.len(), 2);
    // Nothing dirty is left: the next run compacts nothing.
    let again = pipeline
        .compactor(w.bucket.as_str())
        .run(now(), 0, None)
        .await
        .expect("listed");
    assert!(
        again.compacted.is_empty() && again.settling == 0,
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_markers_in_the_table_an_object_is_processed_once_and_a_new_version_supersedes() {
    let w = World::new("markerflow").await;
    let markers = w.markers();
    let pipeline = Pipeline::new(S3Store::new(w.s3.clone()), config())
        .with_detection_state(Box::new(w.state()))
        .with_marker_store(Box::new(markers.clone()));
    let t0 = minute_of(now() - 7200);
    let t0 = t0 - t0.rem_euclid(3600) + 600;
    // Version 1 spans two hours (two curated partitions); version 2 only the first.
    let v1: Vec<String> = (0..30)
        .map(|n| line(&w.bucket, t0 + (n as i64) * 120, CLIENT, 200, n))
        .collect();
    let v2: Vec<String> = (0..10)
        .map(|n| line(&w.bucket, t0 + n as i64, QUIET, 200, 100 + n))
        .collect();
    let event = w.log_object("2026-11-22-12-00-00-HOSTM", &v1).await;

    let first = pipeline.handle(&event).await.expect("handled");
    assert_eq!(outcome(&first), "processed");
    let location = first["objects"][0]["marker"].as_str().unwrap();
    assert!(
        location.starts_with(&format!(
            "dynamodb://{}/{}/state/processed/",
            w.table, w.bucket
        )),
        "{location}"
    );
    // Claim, one Query for earlier versions, and the rewrite with nothing pending,
    // after the read that found no marker; a dirty mark for each of the two partitions.
    assert_eq!(markers.calls(), 6);
    let curated_v1 = s3::list(&w.s3, &w.bucket, "curated/").await;
    assert_eq!(curated_v1.len(), 2, "{curated_v1:?}");
    for prefix in ["state/processed/", "state/lake/"] {
        assert!(
            s3::list(&w.s3, &w.bucket, prefix).await.is_empty(),
            "no mark in S3 under {prefix}"
        );
    }
    let dirty = markers
        .dirty_marks(&marker(&w, "state/lake/dirty/"))
        .await
        .unwrap();
    assert_eq!(dirty.len(), 2, "{dirty:?}");

    let again = pipeline.handle(&event).await.expect("handled");
    assert_eq!(outcome(&again), "duplicate");
    assert_eq!(
        markers.calls(),
        8,
        "a duplicate costs one read (after the listing)"
    );

    // The same key overwritten: a new ETag, processed again; the partition only
    // version 1 had goes, with version 1's marker.
    let event = w.log_object("2026-11-22-12-00-00-HOSTM", &v2).await;
    let second = pipeline.handle(&event).await.expect("handled");
    assert_eq!(outcome(&second), "processed");
    let curated_v2 = s3::list(&w.s3, &w.bucket, "curated/").await;
    assert_eq!(curated_v2.len(), 1, "{curated_v2:?}");
    let records: Vec<Value> = s3::ndjson(&s3::get(&w.s3, &w.bucket, &curated_v2[0].0).await);
    assert_eq!(records.len(), 10);
    assert!(records.iter().all(|r| r["remote_ip"] == QUIET));
    let all = w.items().await;
    let kept: Vec<String> = all
        .iter()
        .filter_map(|i| {
            let pk = i
                .get("pk")?
                .as_s()
                .ok()?
                .strip_prefix(&format!("m#{}/", w.bucket))?;
            Some(format!("{pk}{}", i.get("e")?.as_s().ok()?))
        })
        .collect();
    assert_eq!(kept.len(), 1, "only the new version's marker: {kept:?}");
    let versions_prefix = marker(&w, &kept[0][..kept[0].rfind('@').unwrap() + 1]);
    assert_eq!(
        markers.marker_versions(&versions_prefix).await.unwrap(),
        kept
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_two_days_late_counts_in_its_own_minute_and_completes_a_past_window() {
    let w = World::new("late").await;
    let pipeline = w.pipeline();
    let t0 = minute_of(now() - 2 * 86_400 - 600);
    let mut events = Vec::new();
    for i in 0..5 {
        let name = format!("2026-11-20-10-0{i}-00-HOST{i}");
        events.push(w.log_object(&name, &attack_part(&w.bucket, t0, i)).await);
    }
    // Four parts on time: 36 403s, no alert.
    for event in &events[..4] {
        pipeline.handle(event).await.expect("handled");
    }
    assert!(w.spikes().await.is_empty());
    assert_eq!(w.ip_counts(ATTACKER, t0 + 120, t0 + 120).await, (9, 9));
    // The last part, holding minute 4, arrives more than two days after its events.
    pipeline.handle(&events[4]).await.expect("handled");
    assert_eq!(w.ip_counts(ATTACKER, t0 + 240, t0 + 240).await, (9, 9));
    assert_eq!(
        w.ip_counts(ATTACKER, t0 + 300, t0 + 300 + 86_400).await,
        (0, 0)
    );
    let spikes = w.spikes().await;
    assert_eq!(spikes.len(), 1, "{spikes:#?}");
    assert_eq!(spikes[0]["window_start"], bucketlog_time(t0));
    let delay = spikes[0]["detection_delay_seconds"].as_i64().unwrap();
    assert!(delay >= 2 * 86_400, "delay {delay}");
}

/// A state that fails the first `add_counts` halfway: it adds the object's first minute
/// and then reports throttling, as a Lambda that timed out mid-way would leave it.
struct HalfFailing {
    inner: DynamoDetectionState,
    failures_left: AtomicUsize,
}

#[async_trait]
impl DetectionState for HalfFailing {
    async fn add_counts(&self, apply_id: &str, updates: &[CountUpdate]) -> Result<u64, StateError> {
        if self.failures_left.fetch_sub(1, Ordering::SeqCst) > 0 {
            // An attempt that died after the writes of its first minute: each (page
            // partition, minute) forms its parts from its own updates alone, so the
            // first minute's updates make exactly the parts the whole would.
            let first_minute = updates.iter().map(|u| u.minute).min().unwrap_or_default();
            let first: Vec<CountUpdate> = updates
                .iter()
                .filter(|u| u.minute == first_minute)
                .cloned()
                .collect();
            assert!(!first.is_empty() && first.len() < updates.len());
            self.inner.add_counts(apply_id, &first).await?;
            return Err(StateError {
                operation: "UpdateItem",
                table: self.inner.table().to_string(),
                kind: StateErrorKind::Throttled,
                message: "injected throttling".into(),
            });
        }
        self.inner.add_counts(apply_id, updates).await
    }
    async fn read_counts(&self, q: &[CountQuery]) -> Result<Vec<Vec<MinuteCounts>>, StateError> {
        self.inner.read_counts(q).await
    }
    async fn claim_episode(&self, c: &EpisodeClaim) -> Result<ClaimOutcome, StateError> {
        self.inner.claim_episode(c).await
    }
    async fn mark_sent(&self, episode: &str) -> Result<(), StateError> {
        self.inner.mark_sent(episode).await
    }
    async fn first_sightings(&self, k: &[String], c: &str) -> Result<Vec<bool>, StateError> {
        self.inner.first_sightings(k, c).await
    }
    async fn learning_start(&self, b: &str, e: i64) -> Result<i64, StateError> {
        self.inner.learning_start(b, e).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_halfway_through_the_counts_leaves_the_step_pending_and_the_retry_adds_them_once()
{
    let w = World::new("halfway").await;
    let state = HalfFailing {
        inner: w.state(),
        failures_left: AtomicUsize::new(1),
    };
    let pipeline = w.pipeline_with(Box::new(state));
    let t0 = minute_of(now() - 3600);
    // 150 addresses with one 403 each over two minutes (90 in the first, two parts of
    // its page; 60 in the second) and the attacker in the first.
    let address = |i: usize| format!("10.0.{}.{}", i / 100, i % 100);
    let mut lines: Vec<String> = (0..150)
        .map(|i| line(&w.bucket, t0 + (i as i64 % 120), &address(i), 403, i))
        .collect();
    lines.extend(burst(&w.bucket, t0, ATTACKER, 403, 45, 500));
    let event = w.log_object("2026-11-22-13-00-00-HOST0", &lines).await;
    let error = pipeline
        .handle(&event)
        .await
        .expect_err("the first attempt fails");
    assert!(error.to_string().contains(&w.table), "{error}");
    assert!(
        w.spikes().await.is_empty(),
        "nothing notified before the counts are in"
    );
    let retry = pipeline.handle(&event).await.expect("the retry completes");
    assert_eq!(outcome(&retry), "processed", "{retry:#}");
    assert_eq!(w.counts(bucket_series(&w.bucket), t0, t0).await, (135, 135));
    assert_eq!(
        w.counts(bucket_series(&w.bucket), t0 + 60, t0 + 60).await,
        (60, 60)
    );
    for i in 0..150 {
        assert_eq!(
            w.ip_counts(&address(i), t0, t0 + 60).await,
            (1, 1),
            "{}",
            address(i)
        );
    }
    assert_eq!(w.ip_counts(ATTACKER, t0, t0).await, (45, 45));
    let spikes = w.spikes().await;
    // The attacker, and the bucket's two adjacent minutes (135 and 60 403s, all
    // requests), one episode.
    assert_eq!(spikes.len(), 2, "{spikes:#?}");
    // A further duplicate sends nothing.
    pipeline.handle(&event).await.expect("duplicate");
    assert!(w.delivered().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_an_error_that_names_it() {
    let w = World::new("missing").await;
    let state = DynamoDetectionState::new(w.dynamodb.clone(), "no-such-detection-table");
    let pipeline = w.pipeline_with(Box::new(state));
    let lines = burst(&w.bucket, minute_of(now() - 600), ATTACKER, 403, 3, 0);
    let event = w.log_object("2026-11-22-14-00-00-HOST0", &lines).await;
    let error = pipeline.handle(&event).await.expect_err("fails");
    let text = error.to_string();
    assert!(text.contains("no-such-detection-table"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_skips_parts_it_added_before() {
    let w = World::new("parts").await;
    let state = w.state();
    // 250 addresses over three minutes: one page part per minute (100, 100 and 50).
    let updates: Vec<CountUpdate> = (0..250)
        .map(|i| CountUpdate {
            series: format!("c#{}#remote_ip#10.1.{}.{i}", w.bucket, i / 100),
            minute: 60 * (i / 100),
            forbidden: 1,
            total: 2,
        })
        .collect();
    // The first minute alone, as an attempt that died after its first write; then the
    // whole, twice.
    assert_eq!(
        state.add_counts("obj@1", &updates[..100]).await.unwrap(),
        100
    );
    assert_eq!(state.add_counts("obj@1", &updates).await.unwrap(), 150);
    assert_eq!(state.add_counts("obj@1", &updates).await.unwrap(), 0);
    let queries: Vec<CountQuery> = updates
        .iter()
        .map(|u| CountQuery {
            series: u.series.clone(),
            from: u.minute,
            to: u.minute,
        })
        .collect();
    let read = state.read_counts(&queries).await.unwrap();
    let wrong: Vec<(&str, &Vec<MinuteCounts>)> = updates
        .iter()
        .zip(&read)
        .filter(|(_, r)| !(r.len() == 1 && r[0].forbidden == 1 && r[0].total == 2))
        .map(|(u, r)| (u.series.as_str(), r))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_state_answers_known_sightings_without_reading_them_again() {
    let w = World::new("known").await;
    let keys: Vec<String> = (0..150)
        .map(|i| format!("s#{}#remote_ip#10.7.0.{i}", w.bucket))
        .collect();
    let firsts = |state: &DynamoDetectionState, claimer: &'static str| {
        let (state, keys) = (state.clone(), keys.clone());
        async move { state.first_sightings(&keys, claimer).await.unwrap() }
    };
    let (all_new, none_new) = (vec![true; keys.len()], vec![false; keys.len()]);
    let warm = w.state();
    assert_eq!(firsts(&warm, "a@1").await, all_new);
    let calls = warm.calls();
    // Another object, the same subjects: answered from what the first call learnt.
    assert_eq!(firsts(&warm, "b@1").await, none_new, "nobody is new twice");
    assert_eq!(warm.calls(), calls, "no DynamoDB call for known sightings");
    // The first object's retry still finds itself first.
    assert_eq!(firsts(&warm, "a@1").await, all_new);
    // A cold state reads them (two batches of at most 100) and agrees.
    let cold = w.state();
    assert_eq!(firsts(&cold, "b@1").await, none_new);
    assert_eq!(cold.calls(), 2);
}

/// Every count page of the table, as (partition, sort key) → its counters, tokens and `z`.
async fn stored_pages(w: &World) -> BTreeMap<(String, i64), ModelPage> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = w
            .dynamodb
            .scan()
            .table_name(&w.table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            let pk = item["pk"].as_s().unwrap().clone();
            if !pk.starts_with("p#") {
                continue;
            }
            let sk: i64 = item["sk"].as_n().unwrap().parse().unwrap();
            let mut stored = ModelPage::default();
            for (name, value) in item {
                match name.as_str() {
                    "pk" | "sk" | "expires" => {}
                    "z" => stored.z = value.as_n().unwrap().parse().unwrap(),
                    "a" => stored.tokens = value.as_ss().unwrap().iter().cloned().collect(),
                    _ => {
                        stored
                            .counters
                            .insert(name.clone(), value.as_n().unwrap().parse().unwrap());
                    }
                }
            }
            out.insert((pk, sk), stored);
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return out,
        }
    }
}

/// Twelve objects' count updates over the same two minutes, each with 40 addresses (half
/// of them shared by every object) and the bucket's counts.
fn twelve_objects(bucket: &str, t0: i64) -> Vec<Vec<CountUpdate>> {
    (0..12)
        .map(|o| {
            let mut updates: Vec<CountUpdate> = (0..40)
                .map(|i| CountUpdate {
                    series: subject_series(
                        bucket,
                        SubjectKind::RemoteIp,
                        &if i < 20 {
                            format!("10.9.0.{i}")
                        } else {
                            format!("10.9.{o}.{i}")
                        },
                    ),
                    minute: t0 + 60 * (i % 2),
                    forbidden: (i % 3 == 0) as u64,
                    total: 2,
                })
                .collect();
            updates.push(CountUpdate {
                series: bucket_series(bucket),
                minute: t0,
                forbidden: 14,
                total: 80,
            });
            updates.sort();
            updates
        })
        .collect()
}

/// Adds every object twice (the second time as a retry that must add nothing), through
/// the adapter on moto and through the model the simulation bills with; checks that the
/// stored pages are the model's and that the counts read back are exact. Returns the
/// pages and the model's write units for the first pass.
async fn add_twelve_objects_twice(
    w: &World,
    state: &DynamoDetectionState,
    mut model: PageModel,
    t0: i64,
) -> (BTreeMap<(String, i64), ModelPage>, u64) {
    let objects = twelve_objects(&w.bucket, t0);
    let mut first_pass_units = 0;
    for (o, updates) in objects.iter().enumerate() {
        let id = format!("obj{o}@e");
        assert_eq!(
            state.add_counts(&id, updates).await.unwrap(),
            updates.len() as u64
        );
        first_pass_units += model.add(&id, updates).0;
    }
    for (o, updates) in objects.iter().enumerate() {
        assert_eq!(
            state
                .add_counts(&format!("obj{o}@e"), updates)
                .await
                .unwrap(),
            0
        );
        model.add(&format!("obj{o}@e"), updates);
    }
    let stored = stored_pages(w).await;
    for ((pk, sk), page) in &stored {
        assert!(page.z <= model.room, "{pk} {sk}: z {}", page.z);
        assert!(
            page.bytes(pk, *sk) <= page.z + 200,
            "{pk} {sk}: the estimate bounds the item"
        );
    }
    // The model the delivery simulation bills with writes exactly these pages.
    let modelled: BTreeMap<(String, i64), ModelPage> = model
        .pages
        .iter()
        .filter(|(_, p)| !p.tokens.is_empty())
        .map(|(k, p)| (k.clone(), p.clone()))
        .collect();
    assert_eq!(stored, modelled);
    // Counts read back are the sums over every page.
    let shared = "10.9.0.3";
    assert_eq!(w.ip_counts(shared, t0, t0 + 60).await, (12, 24));
    assert_eq!(w.ip_counts("10.9.5.33", t0, t0 + 60).await, (1, 2));
    assert_eq!(w.counts(bucket_series(&w.bucket), t0, t0).await, (168, 960));
    assert_eq!(w.ip_counts(shared, t0 + 120, t0 + 600).await, (0, 0));
    (stored, first_pass_units)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pages_spill_to_the_next_and_counts_stay_exact_and_once() {
    // Pages of 4,000 estimated bytes fill after a few objects; DynamoDB's default room
    // (350,000) would need thousands of subjects per minute. Every part starts at page 0,
    // so the objects share pages and every minute needs several.
    const ROOM: u64 = 4_000;
    let w = World::new("pages").await;
    let state = w.state().with_page_room(ROOM).with_first_pages(1);
    let model = PageModel::with_room(ROOM).with_first_pages(1);
    let t0 = minute_of(now() - 3600);
    let (stored, _) = add_twelve_objects_twice(&w, &state, model, t0).await;
    let subject_pages = stored.keys().filter(|(pk, _)| pk.starts_with("p#")).count();
    assert!(subject_pages >= 4, "{subject_pages} subject pages");
    assert!(
        stored.values().filter(|p| p.tokens.len() > 1).count() >= 2,
        "pages shared by several objects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_object_writes_a_minute_on_a_page_of_its_own_and_pays_for_its_own_bytes() {
    let w = World::new("spread").await;
    let t0 = minute_of(now() - 3600);
    let (stored, spread_units) =
        add_twelve_objects_twice(&w, &w.state(), PageModel::new(), t0).await;
    // 24 parts (12 objects, 2 minutes) over 500 first pages: where two share a page,
    // it is by their tokens' hashes, the same on every run.
    let tokens: usize = stored.values().map(|p| p.tokens.len()).sum();
    assert_eq!(tokens, 24);
    assert!(stored.len() >= 20, "{} pages for 24 parts", stored.len());
    // Each part is under 1 KB, and so is each page it writes: one write unit per part.
    // The same objects on one page per minute, as before the spread, cost more: each
    // write paid for every earlier object's counters (39 units here; at the simulated
    // bucket's 60 subjects per object and minute, three times as many).
    assert_eq!(spread_units, 24);
    let mut shared = PageModel::new().with_first_pages(1);
    let shared_units: u64 = twelve_objects(&w.bucket, t0)
        .iter()
        .enumerate()
        .map(|(o, updates)| shared.add(&format!("obj{o}@e"), updates).0)
        .sum();
    assert!(
        shared_units > spread_units + 10,
        "one page per minute {shared_units} WRU, spread {spread_units} WRU"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_local_replays_over_different_objects_find_the_attack() {
    let dir = support::scratch::Scratch::new("local-state");
    let (store, out) = (dir.join("store"), dir.join("out"));
    let t0 = minute_of(now() - 3600);
    let mut events = Vec::new();
    for i in 0..5 {
        let key = format!("raw/2026-11-22-15-0{i}-00-HOST{i}");
        let path = store.join("logs").join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, attack_part("logs", t0, i).join("\n")).unwrap();
        events.push(s3::s3_event("logs", &key));
    }
    let replay = |range: std::ops::Range<usize>| {
        let (store, out, events) = (store.clone(), out.clone(), events.clone());
        async move {
            let state = LocalDetectionState::under(&out).expect("state");
            let pipeline = Pipeline::new(LocalStore::layered(&out, &store), config())
                .with_detection_state(Box::new(state));
            for event in &events[range] {
                pipeline.handle(event).await.expect("replayed");
            }
        }
    };
    replay(0..2).await;
    let spikes = |out: &std::path::Path| -> Vec<Value> {
        let dir = out.join("logs").join("alerts");
        let mut all = Vec::new();
        for entry in walk(&dir) {
            all.extend(s3::ndjson(&std::fs::read(entry).unwrap()));
        }
        all.into_iter()
            .filter(|a| a["type"] == "forbidden_spike")
            .collect()
    };
    assert!(spikes(&out).is_empty());
    replay(2..5).await;
    let found = spikes(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["subject"]["value"], ATTACKER);
    assert_eq!(found[0]["count"], 45);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Not a check: measures DynamoDB calls and added latency per object for BENCHMARKS.md.
/// One hour of one bucket at 5 requests/s over 16 hosts flushing every 5 minutes, each
/// object processed with and without the shared state, side by side in one run.
/// Run with `cargo test --test shared_detection -- --ignored --nocapture measure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for BENCHMARKS.md (30 minutes against moto), not a check"]
async fn measure_calls_and_latency_per_object() {
    let w = World::new("measure").await;
    let state = w.state();
    let markers = w.markers();
    // As the template deploys it: the state and the markers in the table.
    let with = Pipeline::new(S3Store::new(w.s3.clone()), config())
        .with_notifier(w.inbox.notifier())
        .with_detection_state(Box::new(state.clone()))
        .with_marker_store(Box::new(markers.clone()));
    let without = Pipeline::new(S3Store::new(w.s3.clone()), config());
    let t0 = minute_of(now() - 7200);
    let hosts = 16usize;
    let mut objects: Vec<Vec<String>> = Vec::new();
    for flush in 0..12i64 {
        for host in 0..hosts {
            let mut lines = Vec::new();
            for second in 0..300i64 {
                for r in 0..5usize {
                    let n = (flush * 300 + second) as usize * 5 + r;
                    if n % hosts != host {
                        continue;
                    }
                    let ip = format!("10.2.{}.{}", n % 7, n % 50);
                    let status = if n.is_multiple_of(29) { 403 } else { 200 };
                    lines.push(line(&w.bucket, t0 + flush * 300 + second, &ip, status, n));
                }
            }
            objects.push(lines);
        }
    }
    let (mut calls, mut added) = (Vec::new(), Vec::new());
    for (i, lines) in objects.iter().enumerate() {
        let a = w
            .log_object(&format!("2026-11-22-16-00-00-A{i:04}"), lines)
            .await;
        let b = w
            .log_object(&format!("2026-11-22-16-00-00-B{i:04}"), lines)
            .await;
        let started = std::time::Instant::now();
        without.handle(&b).await.expect("without");
        let plain = started.elapsed();
        let before = state.calls() + markers.calls();
        let started = std::time::Instant::now();
        with.handle(&a).await.expect("with");
        let shared = started.elapsed();
        calls.push(state.calls() + markers.calls() - before);
        added.push(shared.as_secs_f64() * 1000.0 - plain.as_secs_f64() * 1000.0);
    }
    calls.sort_unstable();
    added.sort_by(|a, b| a.total_cmp(b));
    let lines: Vec<usize> = objects.iter().map(Vec::len).collect();
    println!(
        "objects {} (median {} lines); DynamoDB calls per object: median {}, max {}; added latency vs no state (moto): median {:.1} ms, p90 {:.1} ms",
        objects.len(),
        lines[lines.len() / 2],
        calls[calls.len() / 2],
        calls[calls.len() - 1],
        added[added.len() / 2],
        added[added.len() * 9 / 10]
    );
}

/// `bucketlog replay --s3` with `DETECTION_TABLE` set shares the table with the function:
/// two CLI runs over different objects of one attack (2 objects, then 3) find it once,
/// with the counts added exactly once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_over_s3_with_a_table_shares_the_counts_across_runs() {
    let w = World::new("cli-table").await;
    let t0 = minute_of(now() - 2 * 3600);
    let dir = support::scratch::Scratch::new(&format!("cli-table-{}", w.bucket));
    let mut files = Vec::new();
    for i in 0..5 {
        let name = format!("2026-11-22-12-0{i}-00-HOST{i}");
        let event = w.log_object(&name, &attack_part(&w.bucket, t0, i)).await;
        let path = dir.join(format!("event-{i}.json"));
        std::fs::write(&path, event.to_string()).unwrap();
        files.push(path);
    }
    let bucketlog = |args: &[&std::ffi::OsStr]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_bucketlog"))
            .args(args)
            .env("AWS_ENDPOINT_URL", &moto::shared().endpoint)
            .env("S3_FORCE_PATH_STYLE", "true")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("METRICS_MODE", "off")
            .env("DETECTION_TABLE", &w.table)
            .env("ALERT_TOPIC_ARN", &w.inbox.topic_arn)
            .env("OUTPUT_BUCKET", &w.bucket)
            .output()
            .expect("run bucketlog");
        let text = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{text}");
        assert!(!text.contains("DETECTION_TABLE is not set"), "{text}");
        text
    };
    let run = |events: &[std::path::PathBuf]| {
        let mut args = vec![std::ffi::OsStr::new("replay"), std::ffi::OsStr::new("--s3")];
        args.extend(events.iter().map(|e| e.as_os_str()));
        bucketlog(&args);
    };
    run(&files[..2]);
    assert!(w.spikes().await.is_empty(), "18 of 45 403s fire nothing");
    run(&files[2..]);
    let last = t0 + 4 * 60;
    assert_eq!(w.ip_counts(ATTACKER, t0, last).await, (45, 45));
    let spikes = w.spikes().await;
    assert_eq!(spikes.len(), 1, "{spikes:#?}");
    assert_eq!(spikes[0]["subject"]["value"], ATTACKER);
    // A third run over everything again is all duplicates and adds nothing.
    run(&files);
    assert_eq!(w.ip_counts(ATTACKER, t0, last).await, (45, 45));
    assert!(w.spikes().await.is_empty());
    // The replays marked their partition dirty in the table, not in S3, and
    // `bucketlog compact --s3` finds the marks there, compacts and clears them (one
    // partition, or two when the attack's minutes cross an hour).
    let folder = marker(&w, "state/lake/dirty/");
    let partitions = w.markers().dirty_marks(&folder).await.unwrap().len();
    assert!((1..=2).contains(&partitions), "{partitions}");
    assert!(
        s3::list(&w.s3, &w.bucket, "state/lake/dirty/")
            .await
            .is_empty()
    );
    let compacted =
        bucketlog(&["compact", "--s3", "--settle-minutes", "0"].map(std::ffi::OsStr::new));
    assert_eq!(
        compacted.matches("compacted bucket=").count(),
        partitions,
        "{compacted}"
    );
    assert!(w.markers().dirty_marks(&folder).await.unwrap().is_empty());
    assert_eq!(s3::list(&w.s3, &w.bucket, "lake/").await.len(), partitions);
}
