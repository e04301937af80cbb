//! Partition churn: records that hop among many (bucket, hour) partitions, in the shapes
//! issue 14 measured, still give at most one output object per partition per log object,
//! and the output buffers never hold more than their budget. The router is pure, so the
//! bounds are checked on its own counters, not on process memory; the last test runs the
//! pipeline against moto through the real SDK.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

use bucketlog::config::{Config, OutputCompression};
use bucketlog::curate::Curator;
use bucketlog::generate::{GenerateOptions, Shape, write_shaped_log};
use bucketlog::input::ObjectDecoder;
use bucketlog::outputs::{
    BUFFER_BUDGET, Limits, OutputChunk, OutputPlan, OutputRouter, RouterStats, Spill, SpillFactory,
    partition_safe,
};
use serde_json::Value;
use support::pipeline::{fixture, processed};
use support::s3::*;

fn shaped(shape: Shape, lines: u64) -> Vec<u8> {
    let mut out = Vec::new();
    write_shaped_log(&mut out, GenerateOptions::default(), shape, lines).unwrap();
    out
}

fn memory_spill() -> SpillFactory {
    Box::new(|| Ok(Box::new(Cursor::new(Vec::new())) as Box<dyn Spill>))
}

/// One output object as uploaded: its bytes (parts then the last), part count, records.
#[derive(Default)]
struct Object {
    bytes: Vec<u8>,
    parts: usize,
    records: Option<u64>,
}

struct Routed {
    objects: BTreeMap<String, Object>,
    stats: RouterStats,
    lines: u64,
    records: u64,
    rejected: u64,
}

fn take(objects: &mut BTreeMap<String, Object>, chunk: OutputChunk, part_size: usize) {
    match chunk {
        OutputChunk::Part { key, bytes } => {
            assert!(
                bytes.len() >= part_size,
                "a part below the minimum for {key}"
            );
            let object = objects.entry(key.clone()).or_default();
            assert!(
                object.records.is_none(),
                "a part after the last one for {key}"
            );
            object.bytes.extend(bytes);
            object.parts += 1;
        }
        OutputChunk::Last {
            key,
            bytes,
            records,
        } => {
            let object = objects.entry(key.clone()).or_default();
            assert!(object.records.is_none(), "{key} was finished twice");
            object.bytes.extend(bytes);
            object.records = Some(records);
        }
    }
}

/// Routes `input` the way the pipeline does (64 KiB pushes, parts taken after each).
fn route(input: &[u8], compression: OutputCompression, limits: Limits) -> Routed {
    let plan = OutputPlan {
        curated_prefix: "curated/".into(),
        rejected_key: "rejected/log.abc.ndjson".into(),
        name: "log.abc".into(),
        compression,
    };
    let router = OutputRouter::with_limits(plan, limits, Some(memory_spill()));
    let mut decoder = ObjectDecoder::new(Curator::new(router, Some("s3://b/raw/log".into())));
    let mut objects = BTreeMap::new();
    for slice in input.chunks(64 * 1024) {
        decoder.push(slice).unwrap();
        let router = decoder.handler_mut().unwrap().sink_mut();
        assert!(router.take_error().is_none());
        assert!(router.stats().buffered <= limits.budget);
        for chunk in router.take_ready() {
            take(&mut objects, chunk, limits.part_size);
        }
    }
    let (curator, _) = decoder.finish().unwrap();
    let counts = curator.stats();
    let mut finishing = curator.into_sink().finish().unwrap();
    for chunk in finishing.by_ref() {
        take(&mut objects, chunk.unwrap(), limits.part_size);
    }
    Routed {
        objects,
        stats: finishing.stats(),
        lines: counts.lines - counts.blank,
        records: counts.records,
        rejected: counts.rejected,
    }
}

/// Checks the object-count and memory bounds, and that nothing was lost or doubled.
fn check(routed: &Routed, limits: Limits) {
    let mut partitions = BTreeSet::new();
    let (mut records, mut rejected) = (0, 0);
    for (key, object) in &routed.objects {
        let lines = ndjson(&object.bytes);
        assert_eq!(Some(lines.len() as u64), object.records, "{key}");
        if key.starts_with("rejected/") {
            rejected += lines.len() as u64;
            continue;
        }
        records += lines.len() as u64;
        for record in &lines {
            let partition = partition_of(record);
            assert!(
                key.starts_with(&partition),
                "{key} holds a record of {partition}"
            );
            partitions.insert(partition);
        }
    }
    assert_eq!((records, rejected), (routed.records, routed.rejected));
    assert_eq!(
        records + rejected,
        routed.lines,
        "every line read is an output line"
    );
    let curated = routed
        .objects
        .keys()
        .filter(|k| k.starts_with("curated/"))
        .count();
    assert_eq!(curated, partitions.len(), "one object per partition");
    assert_eq!(routed.stats.outputs, routed.objects.len());
    assert!(
        routed.stats.peak_buffered <= limits.budget,
        "{} buffered against a budget of {}",
        routed.stats.peak_buffered,
        limits.budget
    );
}

fn partition_of(record: &Value) -> String {
    let bucket = record["bucket"].as_str().unwrap_or("_unknown");
    let time = record["time"].as_str().unwrap();
    format!(
        "curated/bucket={}/dt={}/hour={}/",
        partition_safe(bucket),
        &time[..10],
        &time[11..13]
    )
}

/// The shapes of issue 14, at test size (BENCHMARKS.md runs them at full size).
fn shapes() -> Vec<(Shape, u64)> {
    vec![
        (Shape::TimeOrder, 20_000),
        (Shape::Interleaved(5), 8_000),
        (
            Shape::RandomHours {
                buckets: 3,
                hours: 1_500,
            },
            8_000,
        ),
        (Shape::Buckets(4_000), 8_000),
        (Shape::Fuzzed, 20_000),
    ]
}

/// Small enough that these inputs cut parts and spill, so the bounds are exercised.
const SMALL: Limits = Limits {
    part_size: 64 * 1024,
    budget: 256 * 1024,
    open_members: 2,
};

#[test]
fn churn_gives_one_object_per_partition_within_the_budget() {
    for (shape, lines) in shapes() {
        let input = shaped(shape, lines);
        for compression in [
            OutputCompression::Gzip,
            OutputCompression::Zstd,
            OutputCompression::None,
        ] {
            for limits in [Limits::default(), SMALL] {
                let routed = route(&input, compression, limits);
                check(&routed, limits);
                assert!(routed.stats.peak_buffered <= BUFFER_BUDGET);
            }
        }
    }
}

#[test]
fn small_limits_really_cut_parts_and_spill() {
    let random = Shape::RandomHours {
        buckets: 3,
        hours: 1_500,
    };
    let routed = route(&shaped(random, 8_000), OutputCompression::Gzip, SMALL);
    check(&routed, SMALL);
    assert!(routed.stats.spilled > 0, "{:?}", routed.stats);
    // Partitions took turns for the two compressors: far more gzip members than outputs.
    assert!(
        routed.stats.members > 2 * routed.stats.outputs as u64,
        "{:?}",
        routed.stats
    );
    // The spill reuses space read back, so it never outgrows what it was given.
    assert!(routed.stats.spill_size <= routed.stats.spilled);

    let routed = route(
        &shaped(Shape::TimeOrder, 20_000),
        OutputCompression::None,
        SMALL,
    );
    check(&routed, SMALL);
    assert!(routed.stats.parts > 0, "{:?}", routed.stats);
    assert!(routed.objects.values().any(|o| o.parts > 1));
}

#[tokio::test]
async fn churn_through_the_pipeline_writes_one_object_per_partition() {
    let f = fixture("churn", Config::default()).await;
    let random = Shape::RandomHours {
        buckets: 3,
        hours: 100,
    };
    let mut expected = 0;
    for (i, (shape, lines)) in [(random, 1_000), (Shape::Interleaved(5), 2_000)]
        .into_iter()
        .enumerate()
    {
        let input = shaped(shape, lines);
        let key = format!("raw/2026-11-20-14-05-12-CHURN{i}");
        put(&f.client, &f.bucket, &key, input).await;
        let response = f.pipeline.handle(&s3_event(&f.bucket, &key)).await.unwrap();
        let report = &processed(&response)[0];
        assert_eq!(report["records"], lines);
        expected += lines;
    }
    let mut partitions = BTreeMap::<String, BTreeSet<String>>::new();
    let mut records = 0;
    let keys = list(&f.client, &f.bucket, "curated/").await;
    for (key, _) in &keys {
        for record in ndjson(&get(&f.client, &f.bucket, key).await) {
            let partition = partition_of(&record);
            assert!(
                key.starts_with(&partition),
                "{key} holds a record of {partition}"
            );
            let source = record["source_object"].as_str().unwrap().to_string();
            partitions.entry(source).or_default().insert(partition);
            records += 1;
        }
    }
    assert_eq!(records, expected);
    let per_object: usize = partitions.values().map(BTreeSet::len).sum();
    assert_eq!(
        keys.len(),
        per_object,
        "one object per partition per log object"
    );
    assert_eq!(open_uploads(&f.client, &f.bucket).await, 0);
}
