//! Metrics as CloudWatch Embedded Metric Format lines on stdout: in Lambda, stdout goes
//! to CloudWatch Logs, which extracts the metrics. No API calls and no IAM permission.

use std::io::Write;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::metrics::{MetricDatum, emf_lines};
use crate::ports::{MetricsSink, PublishError};

/// A [`MetricsSink`] writing EMF documents, one per line, to a writer (stdout in Lambda).
pub struct EmfMetrics {
    namespace: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl EmfMetrics {
    /// Writes to stdout.
    pub fn stdout(namespace: String) -> Self {
        Self::to_writer(namespace, Box::new(std::io::stdout()))
    }

    /// Writes to any writer (a file, or a buffer in tests).
    pub fn to_writer(namespace: String, out: Box<dyn Write + Send>) -> Self {
        Self {
            namespace,
            out: Mutex::new(out),
        }
    }
}

#[async_trait]
impl MetricsSink for EmfMetrics {
    async fn publish(&self, datums: &[MetricDatum]) -> Result<(), PublishError> {
        let failed = |e: String| PublishError {
            operation: "EMF write",
            target: self.namespace.clone(),
            message: e,
        };
        let mut text = String::new();
        for line in emf_lines(&self.namespace, datums) {
            text.push_str(&line);
            text.push('\n');
        }
        let mut out = self.out.lock().map_err(|e| failed(e.to_string()))?;
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| failed(e.to_string()))
    }
}
