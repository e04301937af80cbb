//! Any bytes, as (lossy) text, through the line parser: it must never panic.
#![no_main]

// Each binary uses one of the shared bodies.
#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| targets::parse_line(data));
