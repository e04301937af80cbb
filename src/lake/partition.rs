//! The names the lake uses, derived from a partition alone, and the two small documents
//! it keeps under `STATE_PREFIX`: the dirty marker and the manifest. Pure.

use serde::{Deserialize, Serialize};

/// One source bucket's hour: the unit that is compacted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// The `bucket=` value (already made safe by the curator).
    pub bucket: String,
    /// `YYYY-MM-DD`.
    pub dt: String,
    /// `HH`.
    pub hour: String,
}

impl Partition {
    /// `bucket=B/dt=D/hour=H/`, as in the curated and lake layouts.
    pub fn path(&self) -> String {
        format!("bucket={}/dt={}/hour={}/", self.bucket, self.dt, self.hour)
    }

    /// Reads `bucket=B/dt=D/hour=H` (with or without a trailing `/` and anything after
    /// it); `None` unless `dt` and `hour` have their shapes.
    pub fn from_path(path: &str) -> Option<Self> {
        let mut parts = path.splitn(4, '/');
        let bucket = parts.next()?.strip_prefix("bucket=")?;
        let dt = parts.next()?.strip_prefix("dt=")?;
        let hour = parts.next()?.strip_prefix("hour=")?;
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let dt_ok = dt.len() == 10
            && dt.as_bytes()[4] == b'-'
            && dt.as_bytes()[7] == b'-'
            && digits(&dt[..4])
            && digits(&dt[5..7])
            && digits(&dt[8..]);
        let hour_ok = hour.len() == 2 && digits(hour);
        (!bucket.is_empty() && dt_ok && hour_ok).then(|| Partition {
            bucket: bucket.to_string(),
            dt: dt.to_string(),
            hour: hour.to_string(),
        })
    }

    /// The partition a curated output key lies in.
    pub fn of_curated_key(curated_prefix: &str, key: &str) -> Option<Self> {
        Self::from_path(key.strip_prefix(curated_prefix)?)
    }

    /// The dirty marker: `{state}lake/dirty/bucket=B/dt=D/hour=H`.
    pub fn dirty_key(&self, state_prefix: &str) -> String {
        format!(
            "{state_prefix}{DIRTY_DIR}{}",
            self.path().trim_end_matches('/')
        )
    }

    /// The manifest of the partition's current lake files.
    pub fn manifest_key(&self, state_prefix: &str) -> String {
        format!(
            "{state_prefix}lake/manifests/{}.json",
            self.path().trim_end_matches('/')
        )
    }

    /// Where new files are written before they replace the partition's files: outside
    /// `LAKE_PREFIX`, so no query ever reads them.
    pub fn staging_prefix(&self, state_prefix: &str) -> String {
        format!("{state_prefix}lake/staging/{}", self.path())
    }

    /// The partition's folder in the lake.
    pub fn lake_prefix(&self, lake_prefix: &str) -> String {
        format!("{lake_prefix}{}", self.path())
    }
}

/// The folder of dirty markers under `STATE_PREFIX`.
pub const DIRTY_DIR: &str = "lake/dirty/";

/// The name of a partition's `n`th lake file (0-based); the same inputs always give the
/// same names, so a rebuild overwrites.
pub fn file_name(n: usize) -> String {
    format!("part-{n:05}.parquet")
}

/// The body of a dirty marker. Every write differs (`nonce`), so its ETag changes and a
/// compaction that started before it cannot delete it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirtyMark {
    /// `bucket=B/dt=D/hour=H/`.
    pub partition: String,
    /// When curated output was last written to the partition (Unix seconds).
    pub last_write: i64,
    /// The log object whose processing wrote it.
    pub by: String,
    /// Nanoseconds of the write's clock and a counter, so two writes never match.
    pub nonce: String,
}

/// What a partition's lake files hold, written after they replace the old ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `bucket=B/dt=D/hour=H/`.
    pub partition: String,
    /// When it was compacted (Unix seconds).
    pub compacted_at: i64,
    /// Rows in all files: exactly the curated records of `sources`.
    pub rows: u64,
    /// The files, in order.
    pub files: Vec<ManifestFile>,
    /// The curated objects that were read.
    pub sources: Vec<ManifestSource>,
}

/// One lake file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its key.
    pub key: String,
    /// Rows, from its footer.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One curated object read into the lake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSource {
    /// Its key.
    pub key: String,
    /// Its ETag when it was read.
    pub etag: Option<String>,
    /// Records it held.
    pub rows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_come_only_from_well_formed_paths() {
        let p = Partition::of_curated_key(
            "curated/",
            "curated/bucket=logs-1/dt=2026-11-20/hour=14/2026-11-20-14-05-00-AB.0123.ndjson.gz",
        )
        .unwrap();
        assert_eq!(p.path(), "bucket=logs-1/dt=2026-11-20/hour=14/");
        assert_eq!(
            p.dirty_key("state/"),
            "state/lake/dirty/bucket=logs-1/dt=2026-11-20/hour=14"
        );
        assert_eq!(
            Partition::from_path("bucket=logs-1/dt=2026-11-20/hour=14"),
            Some(p)
        );
        for bad in [
            "bucket=/dt=2026-11-20/hour=14/x",
            "bucket=b/dt=unknown/hour=14/x",
            "bucket=b/dt=2026-11-20/hour=1/x",
            "dt=2026-11-20/hour=14/x",
        ] {
            assert_eq!(Partition::from_path(bad), None, "{bad}");
        }
        assert_eq!(file_name(3), "part-00003.parquet");
    }
}
