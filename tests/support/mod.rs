//! Shared helpers for integration tests: `mod support;` then `support::moto`, `support::s3`.
#![allow(dead_code)]

pub mod moto;
pub mod s3;
