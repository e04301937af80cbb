//! The columnar lake: each hour's curated records of one source bucket, compacted into
//! Parquet under `LAKE_PREFIX` (`lake/bucket=B/dt=D/hour=H/part-00000.parquet`), for
//! Athena, DuckDB and anything else that reads Parquet.
//!
//! - [`schema`]: the columns, their types, and the Glue types they map to;
//! - [`sort`]: curated lines sorted by time in bounded memory (runs spill to `/tmp`);
//! - [`writer`]: sorted lines to Parquet files (zstd, dictionaries, statistics, row
//!   groups bounded in bytes and rows), handed out as upload parts;
//! - [`partition`]: names, the dirty marker and the manifest;
//! - [`compact`]: the compactor over the [`crate::ports::ObjectStore`] port.
//!
//! **Trigger.** Whenever processing completes curated output (or removes an earlier
//! version's), it overwrites one small marker per partition,
//! `{STATE_PREFIX}lake/dirty/bucket=B/dt=D/hour=H`, holding the time of the write and a
//! nonce, wherever the pipeline's [`crate::ports::MarkerStore`] keeps marks (an S3
//! object, or an item of the detection table with a new version tag). A scheduled
//! invocation reads the marks (in the store and, when they live there, in the table) and
//! compacts each partition whose last write is older than `LAKE_SETTLE_MINUTES`. A late
//! object marks its partition dirty again, and the next run rebuilds it.
//!
//! **Nothing lost, nothing doubled.** A partition is rebuilt whole from its curated
//! objects, which stay the source of truth:
//! 1. the curated objects are listed and read, and every record is counted;
//! 2. the new files are written under `{STATE_PREFIX}lake/staging/` (outside the lake,
//!    so no query reads them), by multipart upload;
//! 3. the rows in the new files' footers must equal the records read, or nothing is
//!    replaced;
//! 4. each staged file is copied over `part-NNNNN.parquet` (CopyObject replaces an object
//!    whole), files beyond the new count are deleted, then the staged copies;
//! 5. the manifest (`{STATE_PREFIX}lake/manifests/…json`) records the files and sources;
//! 6. each marker is deleted only if its ETag (or version tag) is unchanged (a
//!    conditional delete): a write during the compaction changed it, so the partition
//!    stays dirty.
//!
//! A failure before step 4 leaves the previous files as they were and the partition
//! dirty. The same inputs give the same bytes, so compacting twice changes nothing.
//!
//! **What a query sees during a compaction.** A partition of one file (up to about
//! 256 MiB of Parquet, several GiB of logs in the hour) is replaced atomically: the old
//! rows or the new ones, never a mix. A partition of several files is replaced file by
//! file within a few seconds (server-side copies); a query running in those seconds, or
//! after a failure in them, may see some rows twice or miss some, until the compaction
//! ends or, after a failure, the next run (the partition is still dirty).

pub mod compact;
pub mod partition;
pub mod schema;
pub mod sort;
pub mod writer;

pub use compact::{CompactionReport, Compactor, LakeError, PartitionReport, mark_dirty};
pub use partition::Partition;
