//! Shared helpers for integration tests: `mod support;` then `support::moto`.
#![allow(dead_code)]

pub mod moto;
