//! Any bytes, as (lossy) text, through the line parser: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Ok(record) = bucketlog::access_log::parse_line(&line) {
        record.extra_fields().for_each(drop);
    }
});
