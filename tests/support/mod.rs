//! Shared helpers for integration tests: `mod support;` then `support::moto`, `support::s3`,
//! `support::pipeline`, `support::delivery`, `support::inbox`, `support::geo`, `support::scratch`.
#![allow(dead_code)]

pub mod cwl;
pub mod delivery;
pub mod dynamodb;
pub mod fault_proxy;
pub mod geo;
pub mod inbox;
pub mod lake;
pub mod moto;
pub mod pipeline;
pub mod s3;
pub mod scratch;
