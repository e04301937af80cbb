//! Metrics and alerts against real components: moto on 127.0.0.1 (S3, SNS, SQS, and
//! CloudWatch through `scripts/moto_server_cbor.py`, which translates the SDK's RPC v2
//! CBOR), driven through the real aws-sdk clients. Sums are read back with
//! GetMetricStatistics; SNS deliveries are read back from an SQS queue subscribed to the
//! topic.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use bucketlog::access_log::LogTime;
use bucketlog::adapters::cloudwatch::CloudWatchMetrics;
use bucketlog::adapters::emf::EmfMetrics;
use bucketlog::adapters::s3::S3Store;
use bucketlog::alerts::Alert;
use bucketlog::config::Config;
use bucketlog::event::ObjectRef;
use bucketlog::geo::{ClientLookups, DatabaseLocation};
use bucketlog::metrics::MetricDatum;
use bucketlog::pipeline::Pipeline;
use bucketlog::ports::{
    AlertNotifier, MetricsSink, ObjectBody, ObjectStore, PublishError, PutCondition, PutOutcome,
    StoreError, UploadedPart,
};
use serde_json::Value;
use support::inbox::{self, AlertInbox};
use support::{moto, s3};
use tokio::sync::Barrier;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn now() -> i64 {
    bucketlog::pipeline::system_now()
}

/// One access-log line for `bucket` at Unix time `t`.
fn line(bucket: &str, t: i64, ip: &str, requester: &str, status: u16, bytes: u64) -> String {
    let u = LogTime::from_unix_seconds(t).utc();
    format!(
        "79a5 {bucket} [{:02}/{}/{}:{:02}:{:02}:{:02} +0000] {ip} {requester} REQ{t}{status}{ip} \
         REST.GET.OBJECT k/{t} \"GET /{bucket}/k HTTP/1.1\" {status} - {bytes} {bytes} 12 3 \"-\" \
         \"aws-cli/2.15\" - HOSTID SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader \
         {bucket}.s3.amazonaws.com TLSv1.2 - -",
        u.day,
        MONTHS[(u.month - 1) as usize],
        u.year,
        u.hour,
        u.minute,
        u.second
    )
}

/// Everything one test needs: a bucket, clients, a namespace and a topic feeding a queue.
struct World {
    s3: aws_sdk_s3::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    inbox: AlertInbox,
    bucket: String,
    namespace: String,
}

impl World {
    async fn new(prefix: &str) -> World {
        let server = moto::shared();
        let sdk = inbox::sdk_config(&server.endpoint).await;
        let s3 = s3::client(&server.endpoint).await;
        let bucket = moto::unique_bucket(prefix);
        s3::create_bucket(&s3, &bucket).await;
        World {
            s3,
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            inbox: AlertInbox::create(&sdk, &bucket).await,
            namespace: format!("Test/{bucket}"),
            bucket,
        }
    }

    fn config(&self, vars: &[(&str, &str)]) -> Config {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned()).expect("valid config")
    }

    /// A pipeline publishing to CloudWatch and to the topic.
    fn pipeline(&self, config: Config) -> Pipeline<S3Store> {
        Pipeline::new(S3Store::new(self.s3.clone()), config)
            .with_metrics(Box::new(CloudWatchMetrics::new(
                self.cloudwatch.clone(),
                self.namespace.clone(),
            )))
            .with_notifier(self.inbox.notifier())
    }

    /// Uploads a log object and returns the event announcing it.
    async fn log_object(&self, name: &str, lines: &[String]) -> Value {
        s3::put_log(&self.s3, &self.bucket, name, lines).await
    }

    /// The sum of `metric` over the last day for these dimensions.
    async fn sum(&self, metric: &str, dimensions: &[(&str, &str)]) -> f64 {
        self.statistic(metric, dimensions, Statistic::Sum).await
    }

    async fn statistic(&self, metric: &str, dimensions: &[(&str, &str)], stat: Statistic) -> f64 {
        let mut request = self
            .cloudwatch
            .get_metric_statistics()
            .namespace(&self.namespace)
            .metric_name(metric)
            .start_time(DateTime::from_secs(now() - 86_400))
            .end_time(DateTime::from_secs(now() + 3600))
            .period(60)
            .statistics(stat.clone());
        for (name, value) in dimensions {
            request = request.dimensions(Dimension::builder().name(*name).value(*value).build());
        }
        let out = request.send().await.expect("GetMetricStatistics");
        out.datapoints()
            .iter()
            .map(|d| match stat {
                Statistic::SampleCount => d.sample_count.unwrap_or(0.0),
                _ => d.sum.unwrap_or(0.0),
            })
            .sum()
    }

    /// Every alert delivered to the topic so far (drains the queue).
    async fn delivered(&self) -> Vec<Value> {
        self.inbox.drain().await
    }

    /// The bucket's requester baseline, as stored.
    async fn baseline(&self) -> Value {
        let key = format!("state/baseline/{}.json", self.bucket);
        serde_json::from_slice(&s3::get(&self.s3, &self.bucket, &key).await).expect("baseline JSON")
    }

    /// Every alert document written under `alerts/`.
    async fn stored_alerts(&self) -> Vec<Value> {
        s3::stored_alerts(&self.s3, &self.bucket).await
    }
}

fn outcome(response: &Value) -> &str {
    response["objects"][0]["outcome"].as_str().unwrap_or("?")
}

/// A known log: two minutes, 15 records (10 then 5), plus one line that is not a record.
fn known_log(bucket: &str, t0: i64) -> Vec<String> {
    let m1 = t0 - t0 % 60;
    let m2 = m1 + 60;
    let mut lines = Vec::new();
    for i in 0..7 {
        lines.push(line(
            bucket,
            m1 + i,
            "192.0.2.1",
            "arn:aws:iam::123456789012:user/alice",
            200,
            100,
        ));
    }
    lines.push(line(
        bucket,
        m1 + 10,
        "192.0.2.2",
        "arn:aws:iam::123456789012:user/bob",
        403,
        0,
    ));
    lines.push(line(
        bucket,
        m1 + 11,
        "192.0.2.2",
        "arn:aws:iam::123456789012:user/bob",
        403,
        0,
    ));
    lines.push(line(
        bucket,
        m1 + 12,
        "192.0.2.2",
        "arn:aws:iam::123456789012:user/bob",
        404,
        0,
    ));
    lines.push(line(bucket, m2 + 1, "192.0.2.3", "-", 200, 1000));
    lines.push(line(bucket, m2 + 2, "192.0.2.3", "-", 200, 1000));
    lines.push(line(
        bucket,
        m2 + 3,
        "192.0.2.1",
        "arn:aws:iam::123456789012:user/alice",
        503,
        0,
    ));
    lines.push(line(
        bucket,
        m2 + 4,
        "192.0.2.1",
        "arn:aws:iam::123456789012:user/alice",
        200,
        50,
    ));
    lines.push(line(
        bucket,
        m2 + 5,
        "192.0.2.1",
        "arn:aws:iam::123456789012:user/alice",
        200,
        50,
    ));
    lines.push("this is not an access log line".into());
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_sums_match_a_known_log_and_a_duplicate_publishes_nothing_twice() {
    let w = World::new("metrics").await;
    let pipeline = w.pipeline(w.config(&[]));
    let event = w
        .log_object(
            "2026-11-22-10-00-00-AAAA",
            &known_log(&w.bucket, now() - 7200),
        )
        .await;
    let first = pipeline.handle(&event).await.expect("handled");
    assert_eq!(outcome(&first), "processed", "{first}");

    let b = [("Bucket", w.bucket.as_str())];
    let expect = [
        ("Requests", 15.0),
        ("Errors4xx", 3.0),
        ("Errors5xx", 1.0),
        ("Forbidden403", 2.0),
        ("NotFound404", 1.0),
        ("AnonymousRequests", 2.0),
        ("BytesSent", 700.0 + 2000.0 + 100.0),
        ("RejectedLines", 1.0),
    ];
    for (metric, want) in expect {
        assert_eq!(w.sum(metric, &b).await, want, "{metric}");
    }
    assert_eq!(
        w.statistic("TotalTimeMs", &b, Statistic::SampleCount).await,
        15.0
    );
    let delay = w.sum("DeliveryDelaySeconds", &b).await;
    assert!((7000.0..7300.0).contains(&delay), "delivery delay {delay}");

    let again = pipeline.handle(&event).await.expect("handled");
    assert_eq!(outcome(&again), "duplicate", "{again}");
    for (metric, want) in expect {
        assert_eq!(w.sum(metric, &b).await, want, "{metric} after a duplicate");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_spike_alerts_exactly_once_everywhere_and_a_quiet_log_not_at_all() {
    let w = World::new("spike").await;
    let pipeline = w.pipeline(w.config(&[]));
    let t0 = now() - 3600;

    let quiet = w
        .log_object("2026-11-22-10-00-00-QUIET", &known_log(&w.bucket, t0))
        .await;
    pipeline.handle(&quiet).await.expect("handled");
    assert!(w.stored_alerts().await.is_empty());
    assert!(w.delivered().await.is_empty());

    let mut lines = known_log(&w.bucket, t0 + 600);
    for i in 0..45 {
        lines.push(line(
            &w.bucket,
            t0 + 600 + i * 5,
            "203.0.113.66",
            "-",
            403,
            0,
        ));
    }
    let spike = w.log_object("2026-11-22-10-10-00-SPIKE", &lines).await;
    let response = pipeline.handle(&spike).await.expect("handled");
    assert_eq!(response["objects"][0]["alerts"], 1, "{response}");

    let stored = w.stored_alerts().await;
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let alert = &stored[0];
    assert_eq!(alert["type"], "forbidden_spike");
    assert_eq!(alert["bucket"], w.bucket.as_str());
    assert_eq!(alert["subject"]["kind"], "remote_ip");
    assert_eq!(alert["subject"]["value"], "203.0.113.66");
    assert_eq!(alert["count"], 45);
    assert!(!alert["samples"].as_array().unwrap().is_empty());

    let delivered = w.delivered().await;
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    assert_eq!(delivered[0]["alert_id"], alert["alert_id"]);
    let alerts_metric = w
        .sum(
            "Alerts",
            &[
                ("Bucket", w.bucket.as_str()),
                ("AlertType", "forbidden_spike"),
            ],
        )
        .await;
    assert_eq!(alerts_metric, 1.0);

    // Re-delivery: nothing more anywhere.
    pipeline.handle(&spike).await.expect("handled");
    assert!(w.delivered().await.is_empty());
    assert_eq!(w.stored_alerts().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_requester_alerts_only_after_the_learning_period() {
    let w = World::new("learning").await;
    let pipeline = w.pipeline(w.config(&[("ALERT_LEARNING_HOURS", "1")]));
    let t0 = now() - 4 * 3600;
    let alice = "arn:aws:iam::123456789012:user/alice";
    let bob = "arn:aws:iam::123456789012:user/bob";
    let mallory = "arn:aws:iam::999999999999:user/mallory";

    let first = w
        .log_object(
            "2026-11-22-08-00-00-A",
            &[line(&w.bucket, t0, "192.0.2.1", alice, 200, 1)],
        )
        .await;
    pipeline.handle(&first).await.expect("handled");
    // Half an hour later, still learning: bob is learned, not reported.
    let learning = w
        .log_object(
            "2026-11-22-08-30-00-B",
            &[line(&w.bucket, t0 + 1800, "192.0.2.1", bob, 200, 1)],
        )
        .await;
    pipeline.handle(&learning).await.expect("handled");
    assert!(w.delivered().await.is_empty());
    assert!(w.stored_alerts().await.is_empty());

    // Two hours in: mallory, from a new address, is new; alice and bob are known.
    let later = w
        .log_object(
            "2026-11-22-10-00-00-C",
            &[
                line(&w.bucket, t0 + 7200, "192.0.2.1", alice, 200, 1),
                line(&w.bucket, t0 + 7201, "192.0.2.1", bob, 200, 1),
                line(&w.bucket, t0 + 7202, "198.51.100.7", mallory, 200, 1),
            ],
        )
        .await;
    pipeline.handle(&later).await.expect("handled");
    let mut delivered: Vec<(String, String)> = w
        .delivered()
        .await
        .iter()
        .map(|a| {
            (
                a["type"].as_str().unwrap().to_string(),
                a["subject"]["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    delivered.sort();
    assert_eq!(
        delivered,
        [
            ("new_remote_ip".to_string(), "198.51.100.7".to_string()),
            ("new_requester".to_string(), mallory.to_string()),
        ]
    );
    let baseline = w.baseline().await;
    for who in [alice, bob, mallory] {
        assert!(
            baseline["requesters"].get(who).is_some(),
            "{who} in {baseline}"
        );
    }
}

/// A warm function keeps the baseline it last read or wrote, parsed, and parses it again
/// only when another invocation wrote it since: it never checks an object against a
/// version another instance has replaced, and a version nobody replaced still finds what
/// is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_function_reads_the_baseline_again_once_another_instance_wrote_it() {
    let w = World::new("warm-baseline").await;
    let config = w.config(&[("ALERT_LEARNING_HOURS", "1")]);
    let (warm, other) = (w.pipeline(config.clone()), w.pipeline(config));
    let t0 = now() - 4 * 3600;
    let world = &w;
    let object = |name: &'static str, t: i64, who: &'static [&'static str]| {
        let lines: Vec<String> = who
            .iter()
            .map(|r| line(&world.bucket, t, "192.0.2.1", r, 200, 1))
            .collect();
        async move { world.log_object(name, &lines).await }
    };

    // Learning: the warm instance learns alice and keeps the version it wrote; another
    // instance then learns bob, replacing that version.
    let first = object("2026-11-22-08-00-00-A", t0, &[ALICE]).await;
    warm.handle(&first).await.expect("first");
    let learning = object("2026-11-22-08-30-00-B", t0 + 1800, &[BOB]).await;
    other.handle(&learning).await.expect("learning");

    // Learning is over. The warm instance's kept version lacks bob, but it is not the
    // stored one: the stored one is read, and bob is known.
    let later = object("2026-11-22-10-00-00-C", t0 + 7200, &[ALICE, BOB]).await;
    warm.handle(&later).await.expect("later");
    assert!(w.delivered().await.is_empty(), "bob was learned elsewhere");
    assert_eq!(
        warm.baseline_cache_hits(),
        0,
        "the kept version was outdated"
    );

    // Nobody wrote since: the version it read is served without parsing, and still finds
    // mallory new.
    let newcomer = object("2026-11-22-10-05-00-D", t0 + 7500, &[ALICE, MALLORY]).await;
    warm.handle(&newcomer).await.expect("newcomer");
    assert_eq!(warm.baseline_cache_hits(), 1);
    let delivered: Vec<String> = w
        .delivered()
        .await
        .iter()
        .map(|a| format!("{} {}", a["type"], a["subject"]["value"]))
        .collect();
    assert_eq!(delivered, [format!("\"new_requester\" \"{MALLORY}\"")]);
    let baseline = w.baseline().await;
    for who in [ALICE, BOB, MALLORY] {
        assert!(
            baseline["requesters"].get(who).is_some(),
            "{who} in {baseline}"
        );
    }
}

/// Requesters of [`a_warm_function_reads_the_baseline_again_once_another_instance_wrote_it`].
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";
const MALLORY: &str = "arn:aws:iam::999999999999:user/mallory";

/// Issue 13 through the real handler over moto: the databases are `s3://` objects the
/// pipeline copies at start-up, curated records carry the client's country, city and
/// network, a new address's alert names them, and an address of an `ALERT_ALLOW_ASNS`
/// network never alerts as new. The new addresses come in separate, late log objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_addresses_alert_with_their_network_unless_the_network_is_allowed() {
    let w = World::new("geo").await;
    for name in ["test-city.mmdb", "test-asn.mmdb"] {
        let bytes = std::fs::read(support::geo::database(name)).expect("test database");
        s3::put(&w.s3, &w.bucket, &format!("geo/{name}"), bytes).await;
    }
    let city = format!("s3://{}/geo/test-city.mmdb", w.bucket);
    let asn = format!("s3://{}/geo/test-asn.mmdb", w.bucket);
    let config = w.config(&[
        ("ALERT_LEARNING_HOURS", "1"),
        ("GEOIP_DB", &city),
        ("ASN_DB", &asn),
        ("ALERT_ALLOW_ASNS", "AS64500"),
    ]);
    let scratch = support::scratch::Scratch::new(&format!("geo-{}", w.bucket));
    let store = S3Store::new(w.s3.clone());
    let missing = DatabaseLocation::parse(&format!("s3://{}/geo/missing.mmdb", w.bucket));
    let refused = ClientLookups::open(&store, Some(&missing), None, &scratch)
        .await
        .expect_err("a missing database must stop the start-up");
    assert!(
        refused.to_string().starts_with("GEOIP_DB=s3://"),
        "{refused}"
    );
    let lookups = ClientLookups::open(
        &store,
        config.geoip_db.as_ref(),
        config.asn_db.as_ref(),
        &scratch,
    )
    .await
    .expect("databases copied from S3");
    let pipeline = w.pipeline(config).with_client_lookups(lookups);

    let t0 = now() - 4 * 3600;
    let alice = "arn:aws:iam::123456789012:user/alice";
    let learned = w
        .log_object(
            "2026-11-22-08-00-00-A",
            &[line(&w.bucket, t0, "192.0.2.1", alice, 200, 1)],
        )
        .await;
    pipeline.handle(&learned).await.expect("handled");
    // Two hours on, three new addresses in three objects, delivered newest first.
    let objects = [
        ("2026-11-22-10-05-00-D", "2001:db8::9"),
        ("2026-11-22-10-01-00-C", "198.51.100.7"),
        ("2026-11-22-10-00-00-B", "192.0.2.77"),
    ];
    for (i, (name, ip)) in objects.iter().enumerate() {
        let event = w
            .log_object(
                name,
                &[line(&w.bucket, t0 + 7200 + i as i64, ip, alice, 200, 1)],
            )
            .await;
        pipeline.handle(&event).await.expect("handled");
    }

    let mut alerts: Vec<Value> = w
        .delivered()
        .await
        .into_iter()
        .filter(|a| a["type"] == "new_remote_ip")
        .collect();
    alerts.sort_by_key(|a| {
        a["subject"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    let described: Vec<(&str, &str, &str, u64, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["subject"]["value"].as_str().unwrap_or_default(),
                a["client_country"].as_str().unwrap_or_default(),
                a["client_city"].as_str().unwrap_or_default(),
                a["client_asn"].as_u64().unwrap_or_default(),
                a["client_as_org"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    // 192.0.2.77 is new too, but AS64500 is allowed.
    assert_eq!(
        described,
        [
            (
                "198.51.100.7",
                "US",
                "Seattle",
                4_200_000_001,
                "Example Cloud"
            ),
            ("2001:db8::9", "NL", "Amsterdam", 64501, "Example Six"),
        ]
    );
    let summary = alerts[0]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("198.51.100.7 (US, Seattle, AS4200000001 Example Cloud)"),
        "{summary}"
    );

    let mut by_ip = HashMap::new();
    for (key, _) in s3::list(&w.s3, &w.bucket, "curated/").await {
        for record in s3::ndjson(&s3::get(&w.s3, &w.bucket, &key).await) {
            let ip = record["remote_ip"].as_str().unwrap_or_default().to_string();
            by_ip.insert(ip, record);
        }
    }
    assert_eq!(by_ip.len(), 4, "{by_ip:?}");
    let allowed = &by_ip["192.0.2.77"];
    assert_eq!(
        (
            &allowed["client_country"],
            &allowed["client_city"],
            &allowed["client_asn"],
            &allowed["client_as_org"],
            &allowed["user_agent_name"],
        ),
        (
            &Value::from("DE"),
            &Value::from("Berlin"),
            &Value::from(64500),
            &Value::from("Example Telecom"),
            &Value::from("aws-cli"),
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baseline_is_written_when_it_learns_and_an_unreadable_one_is_replaced() {
    let w = World::new("baseline-writes").await;
    let config = w.config(&[
        ("ALERT_ALLOW_CIDRS", "203.0.113.0/24"),
        ("ALERT_ALLOW_REQUESTERS", "arn:aws:iam::1:role/ci-*"),
    ]);
    let key = format!("state/baseline/{}.json", w.bucket);
    let etag = |listing: Vec<(String, String)>| {
        listing
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, etag)| etag)
    };
    let t0 = now() - 3600;
    let alice = "arn:aws:iam::1:user/alice";
    let first = w
        .log_object(
            "2026-11-22-10-00-00-A",
            &[line(&w.bucket, t0, "192.0.2.1", alice, 200, 1)],
        )
        .await;
    w.pipeline(config.clone())
        .handle(&first)
        .await
        .expect("first");
    let written = etag(s3::list(&w.s3, &w.bucket, "state/baseline/").await);
    assert!(written.is_some(), "a new baseline is written");

    // The same subjects five minutes later: nothing to learn, so no write.
    let again = w
        .log_object(
            "2026-11-22-10-05-00-B",
            &[line(&w.bucket, t0 + 300, "192.0.2.1", alice, 200, 1)],
        )
        .await;
    let response = w
        .pipeline(config.clone())
        .handle(&again)
        .await
        .expect("again");
    assert_eq!(outcome(&response), "processed");
    assert_eq!(
        etag(s3::list(&w.s3, &w.bucket, "state/baseline/").await),
        written,
        "the baseline was rewritten for nothing"
    );

    // An unreadable baseline is replaced even by an object that brings only allowlisted
    // subjects, so its learning start is stored.
    s3::put(&w.s3, &w.bucket, &key, b"not json".to_vec()).await;
    let allowed = w
        .log_object(
            "2026-11-22-10-10-00-C",
            &[line(
                &w.bucket,
                t0 + 600,
                "203.0.113.5",
                "arn:aws:iam::1:role/ci-deploy",
                200,
                1,
            )],
        )
        .await;
    w.pipeline(config).handle(&allowed).await.expect("allowed");
    let baseline = w.baseline().await;
    assert!(
        baseline["learning_started"].as_i64().is_some(),
        "{baseline}"
    );
    assert_eq!(baseline["requesters"].as_object().map(|m| m.len()), Some(0));
}

/// An object store that makes the first two baseline reads wait for each other, so two
/// invocations surely read the same version and then race to write it.
#[derive(Clone)]
struct RacingStore {
    inner: S3Store,
    barrier: Arc<Barrier>,
    baseline_reads: Arc<AtomicUsize>,
    refused_baseline_writes: Arc<AtomicUsize>,
}

#[async_trait]
impl ObjectStore for RacingStore {
    async fn open(&self, object: &ObjectRef) -> Result<Option<ObjectBody>, StoreError> {
        self.inner.open(object).await
    }
    async fn get_small(
        &self,
        object: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        let got = self.inner.get_small(object).await;
        if object.key.contains("/baseline/")
            && self.baseline_reads.fetch_add(1, Ordering::SeqCst) < 2
        {
            self.barrier.wait().await;
        }
        got
    }
    async fn put(
        &self,
        object: &ObjectRef,
        body: Vec<u8>,
        content_type: &str,
        condition: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        let outcome = self
            .inner
            .put(object, body, content_type, condition)
            .await?;
        if object.key.contains("/baseline/") && outcome == PutOutcome::PreconditionFailed {
            self.refused_baseline_writes.fetch_add(1, Ordering::SeqCst);
        }
        Ok(outcome)
    }
    async fn list(&self, prefix: &ObjectRef) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, object: &ObjectRef) -> Result<(), StoreError> {
        self.inner.delete(object).await
    }
    async fn delete_if_match(&self, object: &ObjectRef, etag: &str) -> Result<bool, StoreError> {
        self.inner.delete_if_match(object, etag).await
    }
    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError> {
        self.inner.copy(from, to).await
    }
    async fn tag(&self, object: &ObjectRef, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner.tag(object, key, value).await
    }
    async fn start_upload(
        &self,
        object: &ObjectRef,
        content_type: &str,
    ) -> Result<String, StoreError> {
        self.inner.start_upload(object, content_type).await
    }
    async fn upload_part(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        self.inner
            .upload_part(object, upload_id, number, body)
            .await
    }
    async fn complete_upload(
        &self,
        object: &ObjectRef,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        self.inner.complete_upload(object, upload_id, parts).await
    }
    async fn abort_upload(&self, object: &ObjectRef, upload_id: &str) -> Result<(), StoreError> {
        self.inner.abort_upload(object, upload_id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_update_the_baseline_without_losing_either() {
    let w = World::new("race").await;
    let config = w.config(&[("ALERT_LEARNING_HOURS", "0")]);
    let t0 = now() - 3600;
    let first = w
        .log_object(
            "2026-11-22-10-00-00-A",
            &[line(
                &w.bucket,
                t0,
                "192.0.2.1",
                "arn:aws:iam::1:user/first",
                200,
                1,
            )],
        )
        .await;
    w.pipeline(config.clone())
        .handle(&first)
        .await
        .expect("handled");

    let store = RacingStore {
        inner: S3Store::new(w.s3.clone()),
        barrier: Arc::new(Barrier::new(2)),
        baseline_reads: Arc::new(AtomicUsize::new(0)),
        refused_baseline_writes: Arc::new(AtomicUsize::new(0)),
    };
    let left = Pipeline::new(store.clone(), config.clone());
    let right = Pipeline::new(store.clone(), config);
    let a = w
        .log_object(
            "2026-11-22-10-05-00-B",
            &[line(
                &w.bucket,
                t0 + 300,
                "192.0.2.2",
                "arn:aws:iam::1:user/left",
                200,
                1,
            )],
        )
        .await;
    let b = w
        .log_object(
            "2026-11-22-10-05-00-C",
            &[line(
                &w.bucket,
                t0 + 300,
                "192.0.2.3",
                "arn:aws:iam::1:user/right",
                200,
                1,
            )],
        )
        .await;
    let (ra, rb) = tokio::join!(left.handle(&a), right.handle(&b));
    assert_eq!(outcome(&ra.expect("left")), "processed");
    assert_eq!(outcome(&rb.expect("right")), "processed");
    assert!(
        store.refused_baseline_writes.load(Ordering::SeqCst) >= 1,
        "the two invocations did not race; the test proves nothing"
    );

    let baseline = w.baseline().await;
    for who in ["first", "left", "right"] {
        let arn = format!("arn:aws:iam::1:user/{who}");
        assert!(
            baseline["requesters"].get(&arn).is_some(),
            "{arn} lost: {baseline}"
        );
    }
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        assert!(
            baseline["remote_ips"].get(ip).is_some(),
            "{ip} lost: {baseline}"
        );
    }
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::ErrorKind::Other)?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emf_mode_writes_the_same_metrics_as_log_lines() {
    let w = World::new("emf").await;
    let buffer = SharedBuffer::default();
    let config = w.config(&[("METRICS_MODE", "emf"), ("METRICS_NAMESPACE", "EmfTest")]);
    let pipeline = Pipeline::new(S3Store::new(w.s3.clone()), config).with_metrics(Box::new(
        EmfMetrics::to_writer("EmfTest".into(), Box::new(buffer.clone())),
    ));
    let event = w
        .log_object(
            "2026-11-22-10-00-00-EMF",
            &known_log(&w.bucket, now() - 600),
        )
        .await;
    pipeline.handle(&event).await.expect("handled");
    pipeline.handle(&event).await.expect("duplicate handled");

    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let docs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("EMF JSON"))
        .collect();
    let total = |name: &str| -> f64 {
        docs.iter()
            .filter(|d| d["Bucket"] == w.bucket.as_str() && d.get("AlertType").is_none())
            .filter_map(|d| d.get(name))
            .map(|v| {
                v.as_f64()
                    .unwrap_or_else(|| v.as_array().map_or(0.0, |a| a.len() as f64))
            })
            .sum()
    };
    assert_eq!(total("Requests"), 15.0, "{text}");
    assert_eq!(total("Forbidden403"), 2.0);
    assert_eq!(total("RejectedLines"), 1.0);
    assert_eq!(total("TotalTimeMs"), 15.0, "one value per request");
    for d in &docs {
        let directive = &d["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "EmfTest");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(d.get(name).is_some(), "{name} declared but missing in {d}");
        }
    }
    // Nothing was published through the API.
    assert_eq!(
        w.sum("Requests", &[("Bucket", w.bucket.as_str())]).await,
        0.0
    );
}

/// A metrics sink that fails its first call, counting the calls that got through.
#[derive(Clone, Default)]
struct FlakyMetrics {
    calls: Arc<AtomicUsize>,
    published: Arc<AtomicUsize>,
}

#[async_trait]
impl MetricsSink for FlakyMetrics {
    async fn publish(&self, datums: &[MetricDatum]) -> Result<(), PublishError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(PublishError {
                operation: "PutMetricData",
                target: "test".into(),
                message: "throttled".into(),
            });
        }
        self.published.fetch_add(datums.len(), Ordering::SeqCst);
        Ok(())
    }
}

/// Counts notifications.
#[derive(Clone, Default)]
struct CountingNotifier(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl AlertNotifier for CountingNotifier {
    async fn notify(&self, alerts: &[Alert]) -> Result<(), PublishError> {
        let mut ids = self.0.lock().unwrap();
        ids.extend(alerts.iter().map(|a| a.alert_id.clone()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_is_retried_without_repeating_the_steps_before_it() {
    let w = World::new("resume").await;
    let metrics = FlakyMetrics::default();
    let notifier = CountingNotifier::default();
    let pipeline = Pipeline::new(S3Store::new(w.s3.clone()), w.config(&[]))
        .with_metrics(Box::new(metrics.clone()))
        .with_notifier(Box::new(notifier.clone()));
    let mut lines = Vec::new();
    for i in 0..45 {
        lines.push(line(
            &w.bucket,
            now() - 900 + i,
            "203.0.113.66",
            "-",
            403,
            0,
        ));
    }
    let event = w.log_object("2026-11-22-10-00-00-FLAKY", &lines).await;

    let failed = pipeline.handle(&event).await;
    let message = failed.expect_err("metrics failed").to_string();
    assert!(
        message.contains(&w.bucket) && message.contains("PutMetricData"),
        "{message}"
    );
    assert_eq!(
        notifier.0.lock().unwrap().len(),
        1,
        "notified before metrics"
    );

    let retried = pipeline.handle(&event).await.expect("retry handled");
    assert_eq!(outcome(&retried), "processed", "{retried}");
    assert_eq!(notifier.0.lock().unwrap().len(), 1, "not notified twice");
    assert!(
        metrics.published.load(Ordering::SeqCst) > 0,
        "metrics published on retry"
    );

    let third = pipeline.handle(&event).await.expect("handled");
    assert_eq!(outcome(&third), "duplicate");
    assert_eq!(metrics.calls.load(Ordering::SeqCst), 2);
}
