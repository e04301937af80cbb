//! S3 Batch Operations "Invoke AWS Lambda function" jobs: how a backfill over months of
//! existing log objects reaches the function. Pure: the job's event in, its tasks out;
//! each task's outcome in, the response Batch Operations reads out.
//!
//! Both invocation schemas are read:
//! - `1.0`: each task names its bucket by ARN (`s3BucketArn`);
//! - `2.0`: each task names its bucket by name (`s3Bucket`), and the job carries
//!   `userArguments`.
//!
//! Keys in tasks are URL-encoded; they are decoded as S3 event keys are (`+` is a space).
//!
//! The answer carries one result per task:
//! - `Succeeded`, with a short summary: processed (records, rejected), already processed
//!   (its marker exists, so a re-run is idempotent), or skipped (outside `RAW_PREFIX`);
//! - `TemporaryFailure`, which Batch Operations retries: throttling, server errors,
//!   timeouts, a lease held by another invocation, a failed publish;
//! - `PermanentFailure`: corrupt input, access denied, a key that does not decode, and an
//!   object that is gone (NoSuchKey), so the completion report lists what could not be
//!   read. `treatMissingKeysAs` is `PermanentFailure` too, for any task the response
//!   might lack.

use serde_json::{Value, json};

use crate::access_log::LogTime;
use crate::event::{EventError, ObjectRef, decode_event_key};
use crate::json_record::parse_iso8601;
use crate::logkey::parse_log_key;

/// One Batch Operations invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchJob {
    /// `1.0` or `2.0`, echoed in the response.
    pub schema: String,
    /// The invocation ID, echoed in the response.
    pub invocation_id: String,
    /// The job ID.
    pub job_id: String,
    /// `userArguments` (schema 2.0), as given.
    pub user_arguments: Value,
    /// The tasks, in order.
    pub tasks: Vec<BatchTask>,
}

/// One task: one object to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchTask {
    /// The task ID, echoed in its result.
    pub task_id: String,
    /// The object, with its key decoded; `Err` holds why it could not be read.
    pub object: Result<ObjectRef, String>,
}

/// How a task ended, in Batch Operations' terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    /// Done (or nothing to do).
    Succeeded,
    /// Worth retrying.
    TemporaryFailure,
    /// Not worth retrying.
    PermanentFailure,
}

impl ResultCode {
    /// The name Batch Operations expects.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultCode::Succeeded => "Succeeded",
            ResultCode::TemporaryFailure => "TemporaryFailure",
            ResultCode::PermanentFailure => "PermanentFailure",
        }
    }
}

/// One task's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    /// The task it answers.
    pub task_id: String,
    /// How it ended.
    pub code: ResultCode,
    /// A short summary, kept in the completion report.
    pub summary: String,
}

/// True when a payload is a Batch Operations invocation.
pub fn is_batch_job(payload: &Value) -> bool {
    payload.get("invocationSchemaVersion").is_some() && payload["tasks"].is_array()
}

/// Reads a Batch Operations invocation of schema 1.0 or 2.0.
pub fn parse_batch_job(payload: &Value) -> Result<BatchJob, EventError> {
    let malformed = |problem: String| EventError::Malformed {
        envelope: "S3 Batch Operations",
        problem,
    };
    let schema = payload["invocationSchemaVersion"]
        .as_str()
        .ok_or_else(|| malformed("invocationSchemaVersion is not a string".into()))?;
    if schema != "1.0" && schema != "2.0" {
        return Err(malformed(format!(
            "invocationSchemaVersion {schema:?} is not 1.0 or 2.0"
        )));
    }
    let invocation_id = payload["invocationId"]
        .as_str()
        .ok_or_else(|| malformed("no invocationId".into()))?;
    let tasks = payload["tasks"]
        .as_array()
        .ok_or_else(|| malformed("no tasks".into()))?
        .iter()
        .enumerate()
        .map(|(i, task)| parse_task(task, i))
        .collect::<Result<Vec<_>, String>>()
        .map_err(malformed)?;
    Ok(BatchJob {
        schema: schema.to_string(),
        invocation_id: invocation_id.to_string(),
        job_id: payload["job"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        user_arguments: payload["job"]
            .get("userArguments")
            .cloned()
            .unwrap_or(Value::Null),
        tasks,
    })
}

/// A task without an ID cannot be answered and fails the invocation; a task whose
/// object cannot be read is answered with a permanent failure.
fn parse_task(task: &Value, index: usize) -> Result<BatchTask, String> {
    let task_id = task["taskId"]
        .as_str()
        .ok_or_else(|| format!("task {index} has no taskId"))?
        .to_string();
    let bucket = match (task["s3Bucket"].as_str(), task["s3BucketArn"].as_str()) {
        (Some(name), _) => Some(name.to_string()),
        (None, Some(arn)) => arn.rsplit(":::").next().map(str::to_string),
        (None, None) => None,
    };
    let object = match (bucket.filter(|b| !b.is_empty()), task["s3Key"].as_str()) {
        (_, None) => Err("no s3Key".to_string()),
        (None, Some(_)) => Err("no s3Bucket or s3BucketArn".to_string()),
        (Some(bucket), Some(key)) => match decode_event_key(key) {
            Some(key) => Ok(ObjectRef { bucket, key }),
            None => Err(format!("s3Key {key:?} does not decode to UTF-8")),
        },
    };
    Ok(BatchTask { task_id, object })
}

impl BatchJob {
    /// The response Batch Operations reads: one result per task, in the job's order.
    pub fn response(&self, results: &[TaskResult]) -> Value {
        let results: Vec<Value> = results
            .iter()
            .map(|r| {
                json!({
                    "taskId": r.task_id,
                    "resultCode": r.code.as_str(),
                    "resultString": r.summary,
                })
            })
            .collect();
        json!({
            "invocationSchemaVersion": self.schema,
            "treatMissingKeysAs": ResultCode::PermanentFailure.as_str(),
            "invocationId": self.invocation_id,
            "results": results,
        })
    }
}

/// Which existing log objects a backfill covers: keys under a prefix whose delivery day
/// (the date in the log object's name, as S3 writes it) lies between two days, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRange {
    /// Keys under this prefix (`raw/`, or a date-partitioned folder).
    pub prefix: String,
    /// The first day, `YYYY-MM-DD`.
    pub since: Option<String>,
    /// The last day, `YYYY-MM-DD`.
    pub until: Option<String>,
}

/// The most days a backfill lists one by one; a longer range lists the whole prefix.
const MAX_LISTED_DAYS: i64 = 3660;

impl BackfillRange {
    /// The prefixes to list: with both days, one per day in both of S3's key formats
    /// (`{prefix}YYYY-mm-DD` and `{prefix}YYYY/MM/DD/`), so each listing holds one day's
    /// keys; otherwise the prefix itself. `Err` names a day that is not `YYYY-MM-DD`.
    pub fn listings(&self) -> Result<Vec<String>, String> {
        let (since, until) = match (&self.since, &self.until) {
            (Some(a), Some(b)) => (day_number(a)?, day_number(b)?),
            (a, b) => {
                for day in [a, b].into_iter().flatten() {
                    day_number(day)?;
                }
                return Ok(vec![self.prefix.clone()]);
            }
        };
        if until < since || until - since > MAX_LISTED_DAYS {
            return Ok(vec![self.prefix.clone()]);
        }
        let mut prefixes = Vec::new();
        for day in since..=until {
            let t = LogTime::from_unix_seconds(day * 86_400).utc();
            let (y, m, d) = (t.year, t.month, t.day);
            prefixes.push(format!("{}{y:04}-{m:02}-{d:02}", self.prefix));
            prefixes.push(format!("{}{y:04}/{m:02}/{d:02}/", self.prefix));
        }
        Ok(prefixes)
    }

    /// True when `key` is a log object this backfill covers: under the prefix, and with
    /// a delivery day in the range (a key with no date in its name only when no day is
    /// given).
    pub fn covers(&self, key: &str) -> bool {
        if !key.starts_with(&self.prefix) {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some((day, _hour)) = parse_log_key(key).delivered else {
            return false;
        };
        self.since
            .as_deref()
            .is_none_or(|since| day.as_str() >= since)
            && self
                .until
                .as_deref()
                .is_none_or(|until| day.as_str() <= until)
    }
}

/// Days since the Unix epoch of `YYYY-MM-DD`.
fn day_number(day: &str) -> Result<i64, String> {
    parse_iso8601(&format!("{day}T00:00:00Z"))
        .filter(|_| day.len() == 10)
        .map(|t| t.unix_seconds().div_euclid(86_400))
        .ok_or_else(|| format!("{day:?} is not a day (YYYY-MM-DD)"))
}

/// One line of a Batch Operations CSV manifest: `bucket,key` with the key URL-encoded
/// (every byte but unreserved characters and `/`), as the manifest format requires.
pub fn manifest_line(bucket: &str, key: &str) -> String {
    let mut line = String::with_capacity(bucket.len() + key.len() + 2);
    line.push_str(bucket);
    line.push(',');
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            line.push(char::from(byte));
        } else {
            line.push_str(&format!("%{byte:02X}"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> Value {
        json!({
            "invocationSchemaVersion": "1.0",
            "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
            "job": {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce"},
            "tasks": [{
                "taskId": "dGFza2lkZ29lc2hlcmUK",
                "s3Key": "raw/team+logs/2026-01-02-03-04-05-ABC%2B1",
                "s3VersionId": "1",
                "s3BucketArn": "arn:aws:s3:::logs-bucket"
            }]
        })
    }

    fn v2() -> Value {
        json!({
            "invocationSchemaVersion": "2.0",
            "invocationId": "Ym9nbmVzCg",
            "job": {"id": "ab12", "userArguments": {"k1": "v1"}},
            "tasks": [
                {"taskId": "t1", "s3Bucket": "logs-bucket", "s3Key": "raw/a%20b", "s3VersionId": null},
                {"taskId": "t2", "s3Bucket": "logs-bucket"},
                {"taskId": "t3", "s3Bucket": "logs-bucket", "s3Key": "raw/%FF"}
            ]
        })
    }

    #[test]
    fn schema_1_names_the_bucket_by_arn_and_keys_are_decoded() {
        let job = parse_batch_job(&v1()).unwrap();
        assert_eq!(job.schema, "1.0");
        assert_eq!(job.job_id, "f3cc4f60-61f6-4a2b-8a21-d07600c373ce");
        assert_eq!(
            job.tasks[0].object,
            Ok(ObjectRef {
                bucket: "logs-bucket".into(),
                key: "raw/team logs/2026-01-02-03-04-05-ABC+1".into()
            })
        );
    }

    #[test]
    fn schema_2_names_the_bucket_and_carries_user_arguments() {
        let job = parse_batch_job(&v2()).unwrap();
        assert_eq!(job.user_arguments, json!({"k1": "v1"}));
        assert_eq!(
            job.tasks[0].object.as_ref().map(|o| o.key.as_str()),
            Ok("raw/a b")
        );
        assert_eq!(job.tasks[1].object, Err("no s3Key".into()));
        assert!(job.tasks[2].object.as_ref().unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn the_response_echoes_the_invocation_and_answers_every_task() {
        let job = parse_batch_job(&v2()).unwrap();
        let results = [
            (ResultCode::Succeeded, "processed"),
            (ResultCode::PermanentFailure, "no s3Key"),
            (ResultCode::TemporaryFailure, "throttled"),
        ]
        .iter()
        .zip(&job.tasks)
        .map(|((code, summary), task)| TaskResult {
            task_id: task.task_id.clone(),
            code: *code,
            summary: summary.to_string(),
        })
        .collect::<Vec<_>>();
        let response = job.response(&results);
        assert_eq!(response["invocationSchemaVersion"], "2.0");
        assert_eq!(response["invocationId"], "Ym9nbmVzCg");
        assert_eq!(response["treatMissingKeysAs"], "PermanentFailure");
        let codes: Vec<&str> = response["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["resultCode"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["Succeeded", "PermanentFailure", "TemporaryFailure"]);
        assert_eq!(response["results"][2]["taskId"], "t3");
    }

    #[test]
    fn malformed_jobs_say_what_is_wrong() {
        let text = |v: Value| parse_batch_job(&v).unwrap_err().to_string();
        let mut bad = v1();
        bad["invocationSchemaVersion"] = "3.0".into();
        assert!(text(bad).contains("not 1.0 or 2.0"));
        let mut no_id = v1();
        no_id["tasks"][0].as_object_mut().unwrap().remove("taskId");
        assert!(text(no_id).contains("no taskId"));
        assert!(is_batch_job(&v1()));
        assert!(!is_batch_job(&json!({"Records": []})));
    }

    #[test]
    fn a_range_lists_one_day_at_a_time_in_both_key_formats() {
        let range = BackfillRange {
            prefix: "raw/".into(),
            since: Some("2026-02-28".into()),
            until: Some("2026-03-01".into()),
        };
        assert_eq!(
            range.listings().unwrap(),
            [
                "raw/2026-02-28",
                "raw/2026/02/28/",
                "raw/2026-03-01",
                "raw/2026/03/01/"
            ]
        );
        assert!(range.covers("raw/2026-02-28-23-59-59-ABC"));
        assert!(range.covers("raw/123456789012/eu-west-1/b/2026/03/01/2026-03-01-00-00-00-X"));
        assert!(!range.covers("raw/2026-03-02-00-00-00-ABC"));
        assert!(
            !range.covers("raw/notes.txt"),
            "no date: not in a dated range"
        );
        assert!(!range.covers("curated/2026-02-28-00-00-00-ABC"));
        let open = BackfillRange {
            prefix: "raw/".into(),
            since: None,
            until: None,
        };
        assert_eq!(open.listings().unwrap(), ["raw/"]);
        assert!(open.covers("raw/notes.txt"));
        let bad = BackfillRange {
            since: Some("2026-2-1".into()),
            ..open
        };
        assert!(bad.listings().unwrap_err().contains("YYYY-MM-DD"));
    }

    #[test]
    fn manifest_keys_are_url_encoded() {
        assert_eq!(
            manifest_line("logs", "raw/team logs+x/caf\u{e9},1"),
            "logs,raw/team%20logs%2Bx/caf%C3%A9%2C1"
        );
    }
}
