//! I/O at the edge: implementations of [`crate::ports::ObjectStore`].

pub mod local;
pub mod s3;
