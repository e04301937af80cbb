//! The detection state in one JSON file, for `bucketlog replay`: successive replays under
//! the same `--out` folder see each other's counts, episodes and first sightings, exactly
//! as invocations of the deployed function share its DynamoDB table.
//!
//! The file is read when the state is opened and rewritten (temporary file, then rename)
//! after every change, so a replay that stops halfway keeps what it added. Changes are
//! atomic within one process; this is for local replays, not for several processes
//! sharing a folder. Nothing expires: delete the file to start from scratch. Its size
//! grows with the distinct subjects and minutes replayed, which suits a local tool, not
//! the function (which uses DynamoDB and its TTL).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::ports::{
    ClaimOutcome, CountQuery, CountUpdate, DetectionState, EpisodeClaim, MinuteCounts, StateError,
    StateErrorKind,
};

/// Where a replay keeps the state under its `--out` folder.
pub const STATE_FILE: &str = "_detection/state.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Episode {
    alert_id: String,
    first: i64,
    last: i64,
    claimer: String,
    count: u64,
    sent: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Data {
    /// Series → minute → (403s, requests).
    counts: BTreeMap<String, BTreeMap<i64, (u64, u64)>>,
    /// Apply IDs whose counts were added.
    applied: BTreeSet<String>,
    episodes: BTreeMap<String, Episode>,
    /// First-sighting key → who saw it first.
    seen: BTreeMap<String, String>,
    /// Bucket → event time learning started.
    learning: BTreeMap<String, i64>,
}

/// A [`DetectionState`] in a local JSON file.
#[derive(Debug)]
pub struct LocalDetectionState {
    path: PathBuf,
    data: Mutex<Data>,
}

impl LocalDetectionState {
    /// Opens (or starts) the state kept in `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StateError> {
        let path = path.into();
        let data = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError {
                operation: "read",
                table: path.display().to_string(),
                kind: StateErrorKind::Other,
                message: format!("not a detection state file ({e}); delete it to start again"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Data::default(),
            Err(e) => return Err(io_error("read", &path, &e)),
        };
        Ok(Self {
            path,
            data: Mutex::new(data),
        })
    }

    /// The state under a replay's `--out` folder ([`STATE_FILE`]).
    pub fn under(out: &Path) -> Result<Self, StateError> {
        Self::open(out.join(STATE_FILE))
    }

    fn save(&self, data: &Data) -> Result<(), StateError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error("write", &self.path, &e))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec(data).unwrap_or_default();
        std::fs::write(&tmp, body).map_err(|e| io_error("write", &tmp, &e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io_error("rename", &self.path, &e))
    }
}

fn io_error(operation: &'static str, path: &Path, e: &std::io::Error) -> StateError {
    StateError {
        operation,
        table: path.display().to_string(),
        kind: StateErrorKind::Other,
        message: e.to_string(),
    }
}

#[async_trait]
impl DetectionState for LocalDetectionState {
    async fn add_counts(&self, apply_id: &str, updates: &[CountUpdate]) -> Result<u64, StateError> {
        let mut data = self.data.lock().await;
        if !data.applied.insert(apply_id.to_string()) {
            return Ok(0);
        }
        for u in updates {
            let c = data
                .counts
                .entry(u.series.clone())
                .or_default()
                .entry(u.minute)
                .or_default();
            c.0 += u.forbidden;
            c.1 += u.total;
        }
        self.save(&data)?;
        Ok(updates.len() as u64)
    }

    async fn read_counts(
        &self,
        queries: &[CountQuery],
    ) -> Result<Vec<Vec<MinuteCounts>>, StateError> {
        let data = self.data.lock().await;
        Ok(queries
            .iter()
            .map(|q| {
                data.counts
                    .get(&q.series)
                    .map(|m| {
                        m.range(q.from..=q.to.max(q.from))
                            .map(|(&minute, &(forbidden, total))| MinuteCounts {
                                minute,
                                forbidden,
                                total,
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn claim_episode(&self, claim: &EpisodeClaim) -> Result<ClaimOutcome, StateError> {
        let mut data = self.data.lock().await;
        let outcome = match data.episodes.get_mut(&claim.episode) {
            Some(e)
                if !(e.last < claim.first_start - claim.gap
                    || e.first > claim.last_start + claim.gap) =>
            {
                if e.claimer == claim.claimer && !e.sent {
                    return Ok(ClaimOutcome::Unsent {
                        alert_id: e.alert_id.clone(),
                    });
                }
                e.first = e.first.min(claim.first_start);
                e.last = e.last.max(claim.last_start);
                e.count = e.count.max(claim.count);
                ClaimOutcome::Joined {
                    alert_id: e.alert_id.clone(),
                }
            }
            _ => {
                data.episodes.insert(
                    claim.episode.clone(),
                    Episode {
                        alert_id: claim.alert_id.clone(),
                        first: claim.first_start,
                        last: claim.last_start,
                        claimer: claim.claimer.clone(),
                        count: claim.count,
                        sent: false,
                    },
                );
                ClaimOutcome::Claimed
            }
        };
        self.save(&data)?;
        Ok(outcome)
    }

    async fn mark_sent(&self, episode: &str) -> Result<(), StateError> {
        let mut data = self.data.lock().await;
        if let Some(e) = data.episodes.get_mut(episode) {
            e.sent = true;
        }
        self.save(&data)
    }

    async fn first_sightings(
        &self,
        keys: &[String],
        claimer: &str,
    ) -> Result<Vec<bool>, StateError> {
        let mut data = self.data.lock().await;
        let out = keys
            .iter()
            .map(|k| {
                data.seen
                    .entry(k.clone())
                    .or_insert_with(|| claimer.to_string())
                    == claimer
            })
            .collect();
        self.save(&data)?;
        Ok(out)
    }

    async fn learning_start(&self, bucket: &str, earliest: i64) -> Result<i64, StateError> {
        let mut data = self.data.lock().await;
        let started = *data.learning.entry(bucket.to_string()).or_insert(earliest);
        self.save(&data)?;
        Ok(started)
    }
}
