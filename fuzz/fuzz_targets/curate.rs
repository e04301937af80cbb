//! Any bytes (plain or gzip) through the decoder and the curator: no panics, and every
//! line ends up curated, rejected or blank.
#![no_main]

// Each binary uses one of the shared bodies.
#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = targets::curate(data) {
        panic!("{broken}");
    }
});
