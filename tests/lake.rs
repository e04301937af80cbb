//! The Parquet lake end to end: log objects through the real handler (moto's S3 through
//! the real SDK, or a local folder), then the compactor, then the lake read back by
//! pyarrow and DuckDB and compared, row by row and column by column, with the curated
//! NDJSON (`scripts/lake_readback.py`).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use bucketlog::adapters::local::LocalStore;
use bucketlog::adapters::s3::S3Store;
use bucketlog::config::Config;
use bucketlog::event::ObjectRef;
use bucketlog::lake::sort::SortLimits;
use bucketlog::lake::writer::LakeLimits;
use bucketlog::lake::{CompactionReport, Compactor, Partition};
use bucketlog::pipeline::{Pipeline, system_now};
use bucketlog::ports::{
    ObjectBody, ObjectStore, PutCondition, PutOutcome, StoreError, UploadedPart,
};
use serde_json::Value;
use support::delivery::{Layout, SimConfig, simulate};
use support::fault_proxy::{Fault, FaultProxy, Rule};
use support::scratch::Scratch;
use support::{lake, moto, pipeline, s3};

fn config(bucket: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<&str, &str> = [("METRICS_MODE", "off"), ("OUTPUT_BUCKET", bucket)]
        .into_iter()
        .collect();
    vars.extend(extra.iter().copied());
    Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).expect("valid config")
}

/// One access log line for `bucket` at `20/Nov/2026:HH:MM:SS`, numbered `n`.
fn line(bucket: &str, (h, m, s): (u32, u32, u32), n: u64, user_agent: &str) -> String {
    format!(
        r#"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be {bucket} [20/Nov/2026:{h:02}:{m:02}:{s:02} +0000] 192.0.2.{ip} - REQ{n:08} REST.GET.OBJECT data/f{n}.csv "GET /data/f{n}.csv HTTP/1.1" {status} - {n} 2048 12 4 "-" "{user_agent}" - hostid SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader {bucket}.s3.us-east-1.amazonaws.com TLSv1.3 - -"#,
        ip = n % 200,
        status = if n.is_multiple_of(7) { 403 } else { 200 },
    )
}

/// `count` lines in hour `hour`, their seconds spread and shuffled by `seed`.
fn lines_in_hour(bucket: &str, hour: u32, count: u64, seed: u64) -> Vec<String> {
    (0..count)
        .map(|i| {
            let second = (i * 37 + seed * 101) % 3600;
            let n = seed * 100_000 + i;
            line(
                bucket,
                (hour, (second / 60) as u32, (second % 60) as u32),
                n,
                "aws-cli/2.15.0 Python/3.11",
            )
        })
        .collect()
}

/// A fresh moto bucket, the configuration that writes to it (plus `extra`), and the
/// handler over the real S3 client.
async fn moto_lake(
    prefix: &str,
    extra: &[(&str, &str)],
) -> (pipeline::Fixture, Config, Pipeline<S3Store>) {
    let f = pipeline::fixture(prefix, Config::default()).await;
    let config = config(&f.bucket, extra);
    let pipeline = Pipeline::new(S3Store::new(f.client.clone()), config.clone());
    (f, config, pipeline)
}

/// Uploads `lines` as `raw/<name>` and runs the handler on its S3 event.
async fn deliver(
    f: &pipeline::Fixture,
    pipeline: &Pipeline<S3Store>,
    name: &str,
    lines: &[String],
) {
    let event = s3::put_log(&f.client, &f.bucket, name, lines).await;
    pipeline.handle(&event).await.expect("handled");
}

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("lake-{name}"))
}

async fn compact_now<S: ObjectStore>(store: &S, bucket: &str, config: &Config) -> CompactionReport {
    Compactor::new(store, bucket, config)
        .run(system_now(), 0, None)
        .await
        .expect("list dirty partitions")
}

fn rows_by_partition(report: &CompactionReport) -> BTreeMap<String, u64> {
    report
        .compacted
        .iter()
        .map(|p| (p.partition.clone(), p.rows))
        .collect()
}

/// A delivered hour: many hosts' small objects, late, out of order and some twice,
/// through the handler, with compactions in between. The lake ends holding exactly the
/// curated records, once each, and every late object's partition was rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_delivery_compacts_to_exactly_the_curated_records() {
    let mut sim_config = SimConfig::new(Layout::Hosts(10), 1_763_647_200);
    sim_config.rate = 4;
    sim_config.bucket = "sim-lake".into();
    let sim = simulate(&sim_config);
    let (f, config, pipeline) = moto_lake("lake-sim", &[]).await;
    for object in &sim.objects {
        s3::put(&f.client, &f.bucket, &object.key, object.body.clone()).await;
    }
    let mut compactions: BTreeMap<String, usize> = BTreeMap::new();
    let mut grew = 0;
    let mut last_rows: BTreeMap<String, u64> = BTreeMap::new();
    for (i, arrival) in sim.arrivals.iter().enumerate() {
        let key = &sim.objects[arrival.object].key;
        pipeline
            .handle(&s3::s3_event(&f.bucket, key))
            .await
            .expect("handled");
        if i % 15 == 14 {
            let report = compact_now(pipeline.store(), &f.bucket, &config).await;
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            for (partition, rows) in rows_by_partition(&report) {
                *compactions.entry(partition.clone()).or_default() += 1;
                if last_rows
                    .get(&partition)
                    .is_some_and(|&before| rows > before)
                {
                    grew += 1;
                }
                last_rows.insert(partition, rows);
            }
        }
    }
    let last = compact_now(pipeline.store(), &f.bucket, &config).await;
    assert!(last.failed.is_empty(), "{:?}", last.failed);
    for (partition, rows) in rows_by_partition(&last) {
        *compactions.entry(partition.clone()).or_default() += 1;
        last_rows.insert(partition, rows);
    }

    let records: usize = sim.objects.iter().map(|o| o.records).sum();
    let summary = lake::readback_s3(&f.client, &f.bucket, &scratch("sim")).await;
    assert_eq!(summary["rows"], records as u64, "{summary}");
    assert_eq!(last_rows.values().sum::<u64>(), records as u64);
    assert!(
        grew > 0 && compactions.values().any(|&n| n > 1),
        "late objects must force rebuilds: {compactions:?}"
    );
    assert!(
        s3::list(&f.client, &f.bucket, "state/lake/dirty/")
            .await
            .is_empty()
    );
    assert!(
        s3::list(&f.client, &f.bucket, "state/lake/staging/")
            .await
            .is_empty()
    );
    assert_eq!(s3::open_uploads(&f.client, &f.bucket).await, 0);
    let lake_files = s3::list(&f.client, &f.bucket, "lake/").await.len();
    assert_eq!(lake_files, last_rows.len(), "one file per partition");
    assert!(
        sim.objects.len() >= 20 * lake_files,
        "{} objects",
        sim.objects.len()
    );
}

/// Compacting again with nothing new does nothing; rebuilding the same inputs writes the
/// same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacting_twice_changes_nothing() {
    let (f, config, pipeline) = moto_lake("lake-twice", &[]).await;
    for (i, hour) in [14, 14, 15, 14].into_iter().enumerate() {
        let lines = lines_in_hour("twice-src", hour, 50, i as u64);
        let name = format!("2026-11-20-{hour}-0{i}-00-TWICE{i}");
        deliver(&f, &pipeline, &name, &lines).await;
    }
    let first = compact_now(pipeline.store(), &f.bucket, &config).await;
    assert_eq!(first.compacted.len(), 2);
    let lake_before = s3::list(&f.client, &f.bucket, "lake/").await;
    let second = compact_now(pipeline.store(), &f.bucket, &config).await;
    assert!(second.compacted.is_empty(), "{second:?}");
    // Forced: mark both partitions dirty again without new data.
    let outputs: Vec<String> = s3::list(&f.client, &f.bucket, "curated/")
        .await
        .into_iter()
        .map(|(k, _)| format!("s3://{}/{k}", f.bucket))
        .collect();
    let locations: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let marked =
        bucketlog::lake::mark_dirty(pipeline.store(), &config, "test", &locations, system_now())
            .await
            .unwrap();
    assert_eq!(marked, 2);
    let third = compact_now(pipeline.store(), &f.bucket, &config).await;
    assert_eq!(third.compacted.len(), 2);
    assert_eq!(s3::list(&f.client, &f.bucket, "lake/").await, lake_before);
    let summary = lake::readback_s3(&f.client, &f.bucket, &scratch("twice")).await;
    assert_eq!(summary["rows"], 200);
}

/// An upload that fails halfway leaves the previous files as they were and the partition
/// dirty; the next run replaces them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_leaves_the_previous_files_and_the_partition_dirty() {
    let (f, config, pipeline) = moto_lake("lake-fail", &[]).await;
    let lines = lines_in_hour("fail-src", 9, 3000, 1);
    deliver(&f, &pipeline, "2026-11-20-09-10-00-FIRST", &lines).await;
    assert_eq!(
        compact_now(pipeline.store(), &f.bucket, &config)
            .await
            .compacted
            .len(),
        1
    );
    let before = s3::list(&f.client, &f.bucket, "lake/").await;

    let late = lines_in_hour("fail-src", 9, 3000, 2);
    deliver(&f, &pipeline, "2026-11-20-11-30-00-LATE", &late).await;
    let proxy = FaultProxy::start(
        &moto::shared().endpoint,
        vec![Rule::always("PUT", "partNumber=2", Fault::Status(500))],
    )
    .await;
    let faulty = S3Store::new(s3::client(&proxy.endpoint).await);
    // Parts of 64 KiB (moto takes any part size) so the file has a second part to fail.
    let small = LakeLimits {
        part_bytes: 64 * 1024,
        row_group_bytes: 256 * 1024,
        ..LakeLimits::default()
    };
    let sort = SortLimits {
        buffer_bytes: 64 * 1024 * 1024,
    };
    let failed = Compactor::new(&faulty, &f.bucket, &config)
        .with_limits(small, sort)
        .run(system_now(), 0, None)
        .await
        .unwrap();
    assert!(proxy.faults() > 0);
    assert_eq!(failed.failed.len(), 1, "{failed:?}");
    assert!(failed.compacted.is_empty());
    drop(proxy);
    assert_eq!(s3::list(&f.client, &f.bucket, "lake/").await, before);
    assert_eq!(
        s3::list(&f.client, &f.bucket, "state/lake/dirty/")
            .await
            .len(),
        1
    );
    assert!(
        s3::list(&f.client, &f.bucket, "state/lake/staging/")
            .await
            .is_empty()
    );
    assert_eq!(s3::open_uploads(&f.client, &f.bucket).await, 0);

    let retried = compact_now(pipeline.store(), &f.bucket, &config).await;
    assert_eq!(retried.compacted.len(), 1, "{retried:?}");
    assert_ne!(s3::list(&f.client, &f.bucket, "lake/").await, before);
    let summary = lake::readback_s3(&f.client, &f.bucket, &scratch("fail")).await;
    assert_eq!(summary["rows"], 6000);
}

/// A newer version of a log object whose records moved to another hour empties the
/// first hour's partition: its lake files go with its curated objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_left_without_records_loses_its_lake_files() {
    let (f, config, pipeline) = moto_lake("lake-empty", &[]).await;
    let name = "2026-11-20-15-05-00-VERSIONED";
    let v1 = lines_in_hour("empty-src", 14, 20, 1);
    deliver(&f, &pipeline, name, &v1).await;
    compact_now(pipeline.store(), &f.bucket, &config).await;
    assert_eq!(
        s3::list(
            &f.client,
            &f.bucket,
            "lake/bucket=empty-src/dt=2026-11-20/hour=14/"
        )
        .await
        .len(),
        1
    );

    let v2 = lines_in_hour("empty-src", 15, 30, 2);
    deliver(&f, &pipeline, name, &v2).await;
    let report = compact_now(pipeline.store(), &f.bucket, &config).await;
    let rows = rows_by_partition(&report);
    assert_eq!(
        rows.get("bucket=empty-src/dt=2026-11-20/hour=14/"),
        Some(&0),
        "{rows:?}"
    );
    assert_eq!(
        rows.get("bucket=empty-src/dt=2026-11-20/hour=15/"),
        Some(&30),
        "{rows:?}"
    );
    assert!(
        s3::list(
            &f.client,
            &f.bucket,
            "lake/bucket=empty-src/dt=2026-11-20/hour=14/"
        )
        .await
        .is_empty()
    );
    let summary = lake::readback_s3(&f.client, &f.bucket, &scratch("empty")).await;
    assert_eq!(summary["rows"], 30);
}

/// With LAKE_TAG_COMPACTED, compacted curated objects are tagged for expiry, and once
/// one has expired a late object is added beside the old files instead of rebuilding
/// the partition without the expired records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_curated_objects_are_never_compacted_away() {
    let (f, config, pipeline) = moto_lake("lake-expiry", &[("LAKE_TAG_COMPACTED", "true")]).await;
    for i in 0..2u64 {
        let lines = lines_in_hour("expiry-src", 8, 40, i);
        let name = format!("2026-11-20-08-1{i}-00-EXPIRY{i}");
        deliver(&f, &pipeline, &name, &lines).await;
    }
    compact_now(pipeline.store(), &f.bucket, &config).await;
    let curated = s3::list(&f.client, &f.bucket, "curated/").await;
    for (key, _) in &curated {
        let tags = f
            .client
            .get_object_tagging()
            .bucket(&f.bucket)
            .key(key)
            .send()
            .await
            .expect("tags");
        let tag = tags.tag_set().first().expect("a tag");
        assert_eq!((tag.key(), tag.value()), ("bucketlog-compacted", "true"));
    }
    // The lifecycle rule expires the first curated object.
    f.client
        .delete_object()
        .bucket(&f.bucket)
        .key(&curated[0].0)
        .send()
        .await
        .unwrap();
    let late = lines_in_hour("expiry-src", 8, 25, 7);
    deliver(&f, &pipeline, "2026-11-21-02-00-00-LATE", &late).await;
    let report = compact_now(pipeline.store(), &f.bucket, &config).await;
    let p = &report.compacted[0];
    assert!(p.appended, "{p:?}");
    assert_eq!((p.files, p.rows, p.sources), (2, 105, 1), "{p:?}");
    let lake_dir = scratch("expiry");
    lake::download(&f.client, &f.bucket, "lake/", &lake_dir.join("lake")).await;
    let files = s3::list(&f.client, &f.bucket, "lake/").await;
    assert_eq!(files.len(), 2, "{files:?}");
}

async fn local_pipeline(root: &std::path::Path, extra: &[(&str, &str)]) -> Pipeline<LocalStore> {
    Pipeline::new(LocalStore::new(root), config("local-logs", extra))
}

fn local_event(root: &std::path::Path, name: &str, body: &[u8]) -> Value {
    let key = format!("raw/{name}");
    let path = root.join("local-logs").join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
    s3::s3_event("local-logs", &key)
}

/// Strings that need escaping in JSON, and lines that were not UTF-8 (made lossy), come
/// back from Parquet exactly as the curated records have them.
#[tokio::test]
async fn escaped_and_lossy_strings_survive_the_lake() {
    let root = scratch("escape");
    let pipeline = local_pipeline(&root, &[]).await;
    let agents = [
        r#"quote\"d \\ back\\slash"#,
        "tab\there \u{1F600} snowman \u{2603}",
        "ctl \u{1} bell \u{7}",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
    ];
    let mut body = Vec::new();
    for (i, agent) in agents.iter().enumerate() {
        body.extend_from_slice(line("escape-src", (10, 1, i as u32), i as u64, agent).as_bytes());
        body.push(b'\n');
    }
    let mut bad = line("escape-src", (10, 2, 0), 9, "bad-\u{0}-utf8").into_bytes();
    let at = bad.windows(4).position(|w| w == b"bad-").unwrap() + 4;
    bad[at] = 0xff;
    body.extend_from_slice(&bad);
    body.extend_from_slice(b"\n");
    body.extend_from_slice(
        line("escape-src", (10, 3, 0), 10, "x")
            .replace("data/f10.csv", "dir%2520a/%25E2%2598%2583+k")
            .as_bytes(),
    );
    body.push(b'\n');
    let event = local_event(&root, "2026-11-20-10-05-00-ESCAPE", &body);
    pipeline.handle(&event).await.expect("handled");
    let report = compact_now(pipeline.store(), "local-logs", pipeline.config()).await;
    assert_eq!(report.compacted[0].rows, 6);
    let bucket = root.join("local-logs");
    let summary = lake::readback(&bucket.join("lake"), &bucket.join("curated"));
    assert_eq!(summary["rows"], 6);
    let curated = std::fs::read_dir(bucket.join("curated/bucket=escape-src/dt=2026-11-20/hour=10"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = s3::ndjson(&std::fs::read(curated).unwrap());
    assert!(
        text.iter().any(|r| r["utf8_lossy"] == true),
        "a lossy record is in the test"
    );
}

/// A partition far larger than the sort buffer, the row groups and the files: sorted runs
/// spill and merge, files and row groups are cut, and every row is still there, in order.
#[tokio::test]
async fn a_large_partition_spills_runs_and_is_cut_into_files() {
    let root = scratch("large");
    let pipeline = local_pipeline(&root, &[]).await;
    for i in 0..24u64 {
        let lines = lines_in_hour("large-src", 16, 500, i);
        let mut body = lines.join("\n").into_bytes();
        body.push(b'\n');
        let event = local_event(
            &root,
            &format!("2026-11-20-16-{i:02}-00-LARGE{i:02}"),
            &body,
        );
        pipeline.handle(&event).await.expect("handled");
    }
    let limits = LakeLimits {
        row_group_bytes: 512 * 1024,
        row_group_rows: 2000,
        file_bytes: 200 * 1024,
        part_bytes: 128 * 1024,
    };
    let sort = SortLimits {
        buffer_bytes: 1024 * 1024,
    };
    let report = Compactor::new(pipeline.store(), "local-logs", pipeline.config())
        .with_limits(limits, sort)
        .run(system_now(), 0, None)
        .await
        .unwrap();
    let p = &report.compacted[0];
    assert_eq!(p.rows, 12_000);
    assert!(p.sort_runs >= 5, "{p:?}");
    assert!(p.files >= 2, "{p:?}");
    let bucket = root.join("local-logs");
    let summary = lake::readback(&bucket.join("lake"), &bucket.join("curated"));
    assert_eq!(summary["rows"], 12_000);
    assert!(summary["row_groups"].as_u64().unwrap() >= 6, "{summary}");
}

/// A partition written to within the settle time waits; an older one is compacted. And
/// the readback check itself fails when the lake misses a curated object.
#[tokio::test]
async fn settling_partitions_wait_and_a_missing_object_is_caught() {
    let root = scratch("settle");
    let pipeline = local_pipeline(&root, &[]).await;
    let lines = lines_in_hour("settle-src", 12, 10, 1);
    let event = local_event(
        &root,
        "2026-11-20-12-05-00-SETTLE",
        lines.join("\n").as_bytes(),
    );
    pipeline.handle(&event).await.expect("handled");
    let compactor = Compactor::new(pipeline.store(), "local-logs", pipeline.config());
    let now = system_now();
    let early = compactor.run(now + 60, 900, None).await.unwrap();
    assert_eq!((early.settling, early.compacted.len()), (1, 0));
    let later = compactor.run(now + 901, 900, None).await.unwrap();
    assert_eq!((later.settling, later.compacted.len()), (0, 1));

    let bucket = root.join("local-logs");
    let partition = Partition::from_path("bucket=settle-src/dt=2026-11-20/hour=12").unwrap();
    let extra = bucket
        .join("curated")
        .join(partition.path())
        .join("uncompacted.ndjson.gz");
    let record = std::fs::read_dir(bucket.join("curated").join(partition.path()))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::copy(record, &extra).unwrap();
    let complaint = lake::try_readback(&bucket.join("lake"), &bucket.join("curated"))
        .expect_err("the lake lacks a curated object");
    assert!(complaint.contains("rows"), "{complaint}");
}

/// Without expiry configured, a source missing more than a week after the last
/// compaction is taken as expired by a retention rule, not superseded: its rows stay.
#[tokio::test]
async fn a_source_gone_long_after_compaction_keeps_its_rows() {
    let root = scratch("retention");
    let pipeline = local_pipeline(&root, &[]).await;
    for i in 0..2u64 {
        let lines = lines_in_hour("retention-src", 7, 30, i);
        let body = lines.join("\n");
        let name = format!("2026-11-20-07-1{i}-00-RETAIN{i}");
        pipeline
            .handle(&local_event(&root, &name, body.as_bytes()))
            .await
            .expect("handled");
    }
    let compactor = Compactor::new(pipeline.store(), "local-logs", pipeline.config());
    let now = system_now();
    assert_eq!(
        compactor.run(now, 0, None).await.unwrap().compacted[0].rows,
        60
    );
    let partition = root.join("local-logs/curated/bucket=retention-src/dt=2026-11-20/hour=07");
    let mut curated: Vec<PathBuf> = std::fs::read_dir(&partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    curated.sort();
    std::fs::remove_file(&curated[0]).unwrap();
    let late = lines_in_hour("retention-src", 7, 5, 9).join("\n");
    pipeline
        .handle(&local_event(
            &root,
            "2026-11-29-07-00-00-LATE",
            late.as_bytes(),
        ))
        .await
        .expect("late");
    let week_later = compactor.run(now + 8 * 86_400, 0, None).await.unwrap();
    let p = &week_later.compacted[0];
    assert!(p.appended, "{p:?}");
    assert_eq!((p.rows, p.files, p.sources), (65, 2, 1), "{p:?}");
}

/// A store that, at the first lake copy, lets a late log object be processed: a write
/// during the compaction.
struct WriteDuringCompaction {
    inner: S3Store,
    during: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    resume: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

#[async_trait::async_trait]
impl ObjectStore for WriteDuringCompaction {
    async fn open(&self, o: &ObjectRef) -> Result<Option<ObjectBody>, StoreError> {
        self.inner.open(o).await
    }
    async fn get_small(
        &self,
        o: &ObjectRef,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        self.inner.get_small(o).await
    }
    async fn put(
        &self,
        o: &ObjectRef,
        b: Vec<u8>,
        t: &str,
        c: PutCondition,
    ) -> Result<PutOutcome, StoreError> {
        self.inner.put(o, b, t, c).await
    }
    async fn list(&self, p: &ObjectRef) -> Result<Vec<String>, StoreError> {
        self.inner.list(p).await
    }
    async fn delete(&self, o: &ObjectRef) -> Result<(), StoreError> {
        self.inner.delete(o).await
    }
    async fn delete_if_match(&self, o: &ObjectRef, etag: &str) -> Result<bool, StoreError> {
        self.inner.delete_if_match(o, etag).await
    }
    async fn copy(&self, from: &ObjectRef, to: &ObjectRef) -> Result<(), StoreError> {
        let signal = self.during.lock().unwrap().take();
        if let Some(signal) = signal {
            let _ = signal.send(());
            if let Some(resume) = self.resume.lock().await.take() {
                let _ = resume.await;
            }
        }
        self.inner.copy(from, to).await
    }
    async fn tag(&self, o: &ObjectRef, k: &str, v: &str) -> Result<(), StoreError> {
        self.inner.tag(o, k, v).await
    }
    async fn start_upload(&self, o: &ObjectRef, t: &str) -> Result<String, StoreError> {
        self.inner.start_upload(o, t).await
    }
    async fn upload_part(
        &self,
        o: &ObjectRef,
        id: &str,
        n: i32,
        b: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        self.inner.upload_part(o, id, n, b).await
    }
    async fn complete_upload(
        &self,
        o: &ObjectRef,
        id: &str,
        p: Vec<UploadedPart>,
    ) -> Result<(), StoreError> {
        self.inner.complete_upload(o, id, p).await
    }
    async fn abort_upload(&self, o: &ObjectRef, id: &str) -> Result<(), StoreError> {
        self.inner.abort_upload(o, id).await
    }
}

/// A log object processed while its partition is being compacted: the compaction does
/// not see it, and its conditional delete of the dirty marker fails (moto's If-Match), so
/// the partition stays dirty and the next run adds the late records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_compaction_keeps_the_partition_dirty() {
    let (f, config, pipeline) = moto_lake("lake-race", &[]).await;
    let first = lines_in_hour("race-src", 5, 40, 1);
    deliver(&f, &pipeline, "2026-11-20-05-10-00-FIRST", &first).await;
    let (during_tx, during_rx) = tokio::sync::oneshot::channel();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel();
    let store = WriteDuringCompaction {
        inner: S3Store::new(f.client.clone()),
        during: std::sync::Mutex::new(Some(during_tx)),
        resume: tokio::sync::Mutex::new(Some(resume_rx)),
    };
    let compaction = async {
        Compactor::new(&store, &f.bucket, &config)
            .run(system_now(), 0, None)
            .await
            .unwrap()
    };
    let late_write = async {
        during_rx.await.unwrap();
        let late = lines_in_hour("race-src", 5, 15, 2);
        deliver(&f, &pipeline, "2026-11-20-07-00-00-LATE", &late).await;
        resume_tx.send(()).unwrap();
    };
    let (report, ()) = tokio::join!(compaction, late_write);
    let p = &report.compacted[0];
    assert_eq!((p.rows, p.still_dirty), (40, true), "{p:?}");
    assert_eq!(
        s3::list(&f.client, &f.bucket, "state/lake/dirty/")
            .await
            .len(),
        1
    );
    let next = compact_now(pipeline.store(), &f.bucket, &config).await;
    assert_eq!(
        (next.compacted[0].rows, next.compacted[0].still_dirty),
        (55, false)
    );
    let summary = lake::readback_s3(&f.client, &f.bucket, &scratch("race")).await;
    assert_eq!(summary["rows"], 55);
}
