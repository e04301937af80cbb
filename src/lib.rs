//! # bucketlog
//!
//! Turns S3 server access logs (and the same format from OVHcloud, Storj, Ceph RGW,
//! Backblaze and other S3-compatible stores) into enriched newline-delimited JSON.
//!
//! The crate has a pure core with no I/O, and thin edges around it:
//!
//! - [`access_log`]: one line → a borrowed [`access_log::LogRecord`], or a typed error
//!   naming the field and byte column.
//! - [`lines`]: push-based line framing with a length cap, line numbers and CRLF handling.
//! - [`input`]: plain or gzip (told from the magic bytes), pushed chunk by chunk.
//! - [`enrich`]: decoded key, split request line, requester and client classification,
//!   and the NDJSON rendering whose field names are the public contract (`SCHEMA.md`).
//! - [`keys`]: the object's real key from the log's key field, which S3 encodes twice for
//!   most operations and once for multi-object deletes and lifecycle actions.
//! - [`endpoint`]: the AWS Region of the endpoint named in the host header.
//! - [`geo`]: the client's country, city and network from MaxMind-format databases.
//! - [`user_agent`]: the client software's name, version, OS and device (uap-core).
//! - [`cwl`], [`batch_ops`]: CloudWatch Logs subscription batches and S3 Batch Operations
//!   jobs, the envelopes beside S3 events.
//! - [`json_record`]: AWS's structured (JSON) delivery read onto the same record.
//! - [`curate`]: every line becomes exactly one curated or rejected record.
//! - [`generate`]: deterministic synthetic logs for tests and benchmarks.
//! - [`config`], [`event`], [`logkey`], [`outputs`]: the Lambda function's pure parts:
//!   settings, event envelopes, log object keys, and partitioned output chunks.
//! - [`metrics`]: per-minute metric aggregation shaped for CloudWatch, and its EMF rendering.
//! - [`alerts`]: 403 spikes, new requesters and addresses against a baseline, anonymous
//!   access, scanners and legacy TLS, all counted in bounded memory.
//! - [`ports`] and [`pipeline`]: the handler's logic over small traits for the object
//!   store, metrics and alert notifications.
//! - [`adapters`]: the only I/O: S3 (and S3-compatible stores), a local folder,
//!   CloudWatch `PutMetricData`, EMF lines on stdout, and SNS.
//!
//! ```
//! use bucketlog::curate::{CollectingSink, Curator};
//! use bucketlog::input::decode_reader;
//!
//! let log = br#"79a5 my-bucket [06/Feb/2019:00:00:38 +0000] 192.0.2.3 - 3E57427F3EXAMPLE REST.GET.OBJECT a%20b.png "GET /my-bucket/a%20b.png HTTP/1.1" 200 - 10 10 7 5 "-" "curl/8.0" -
//! not a log line
//! "#;
//! let curator = Curator::new(CollectingSink::default(), Some("s3://logs/raw/x".into()));
//! let (curator, _summary) = decode_reader(&log[..], curator).unwrap();
//! let stats = curator.stats();
//! assert_eq!((stats.records, stats.rejected), (1, 1));
//! let sink = curator.into_sink();
//! let record: serde_json::Value = serde_json::from_slice(&sink.curated).unwrap();
//! assert_eq!(record["key_decoded"], "a b.png");
//! assert_eq!(record["user_agent_family"], "curl");
//! ```

pub mod access_log;
pub mod adapters;
pub mod alerts;
#[cfg(feature = "mimalloc")]
mod allocator;
pub mod batch_ops;
pub mod codec;
pub mod config;
pub mod curate;
pub mod cwl;
pub mod endpoint;
pub mod enrich;
pub mod event;
pub mod generate;
pub mod geo;
pub mod input;
mod json;
pub mod json_record;
pub mod keys;
pub mod lake;
pub mod lines;
pub mod logging;
pub mod logkey;
pub mod metrics;
pub mod outputs;
pub mod pipeline;
pub mod ports;
pub mod recent;
mod scan;
pub mod slots;
pub mod user_agent;

/// Every binary built on this crate allocates with mimalloc, configured for a small
/// function's memory (see the module); the fuzz targets build without it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;
