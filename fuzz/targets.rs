//! The fuzz targets' bodies, shared by the cargo-fuzz binaries (`fuzz_targets/*.rs`, which
//! need nightly) and the stable-toolchain mutation loop in `tests/fuzz_stable.rs`, which
//! runs in every `cargo test`. Both run exactly this code.

use bucketlog::curate::{CollectingSink, Curator};
use bucketlog::input::decode_reader;

/// `parse_line`: any bytes, as (lossy) text, through the line parser. It must never panic.
pub fn parse_line(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    if let Ok(record) = bucketlog::access_log::parse_line(&line) {
        record.extra_fields().for_each(drop);
    }
}

/// `curate`: any bytes (plain or gzip) through the decoder and the curator. It must never
/// panic, and every line must be accounted for: `records + rejected + blank == lines`,
/// with exactly one JSON object per curated and per rejected line. Returns the broken
/// invariant, if any. Input the decoder refuses (corrupt gzip) is not an error here.
pub fn curate(data: &[u8]) -> Result<(), String> {
    let curator = Curator::new(
        CollectingSink::default(),
        Some("s3://fuzz/raw/input".to_string()),
    );
    let Ok((curator, _)) = decode_reader(data, curator) else {
        return Ok(());
    };
    let s = curator.stats();
    if s.records + s.rejected + s.blank != s.lines {
        return Err(format!("lines not accounted for: {s:?}"));
    }
    let sink = curator.into_sink();
    for (what, ndjson, expected) in [
        ("curated", &sink.curated, s.records),
        ("rejected", &sink.rejected, s.rejected),
    ] {
        let mut count = 0;
        for line in ndjson.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            count += 1;
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(line) {
                return Err(format!(
                    "{what} line {count} is not JSON ({e}): {}",
                    String::from_utf8_lossy(line)
                ));
            }
        }
        if count != expected || !(ndjson.is_empty() || ndjson.ends_with(b"\n")) {
            return Err(format!("{count} {what} JSON lines for {s:?}"));
        }
    }
    Ok(())
}
