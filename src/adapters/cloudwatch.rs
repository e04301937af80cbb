//! CloudWatch metrics through `aws-sdk-cloudwatch` (`PutMetricData`). Thin: datums are
//! translated and sent in as few calls as CloudWatch's limits allow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::error::DisplayErrorContext;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum as CwDatum, StandardUnit};

use crate::metrics::{MAX_DATUMS_PER_CALL, MetricDatum, MetricValue, Unit};
use crate::ports::{MetricsSink, PublishError};

/// CloudWatch accepts request bodies up to 1 MB; stay well under it by estimate.
const MAX_CALL_BYTES: usize = 512 * 1024;

/// A [`MetricsSink`] calling `PutMetricData` in one namespace.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: Client,
    namespace: String,
    /// `PutMetricData` calls sent (retries by the SDK not included), shared by clones.
    calls: Arc<AtomicU64>,
}

impl CloudWatchMetrics {
    /// Publishes into `namespace` with `client`.
    pub fn new(client: Client, namespace: String) -> Self {
        Self {
            client,
            namespace,
            calls: Arc::default(),
        }
    }

    /// How many `PutMetricData` calls this sink (and its clones) sent so far: CloudWatch
    /// bills them per 1,000, so the cost model counts them.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A client from the shared AWS configuration (honours `AWS_ENDPOINT_URL`).
    pub fn from_shared(shared: &aws_config::SdkConfig, namespace: String) -> Self {
        Self::new(Client::new(shared), namespace)
    }
}

fn unit(u: Unit) -> StandardUnit {
    match u {
        Unit::Count => StandardUnit::Count,
        Unit::Bytes => StandardUnit::Bytes,
        Unit::Milliseconds => StandardUnit::Milliseconds,
        Unit::Seconds => StandardUnit::Seconds,
    }
}

fn translate(d: &MetricDatum) -> CwDatum {
    let mut b = CwDatum::builder()
        .metric_name(d.name)
        .timestamp(DateTime::from_secs(d.timestamp))
        .unit(unit(d.unit))
        .storage_resolution(60);
    for (name, value) in &d.dimensions {
        b = b.dimensions(Dimension::builder().name(*name).value(value).build());
    }
    match &d.value {
        MetricValue::Value(v) => b.value(*v),
        MetricValue::Distribution { values, counts } => b
            .set_values(Some(values.clone()))
            .set_counts(Some(counts.clone())),
    }
    .build()
}

/// A rough upper bound of a datum's encoded size.
fn estimated_bytes(d: &MetricDatum) -> usize {
    let values = match &d.value {
        MetricValue::Value(_) => 1,
        MetricValue::Distribution { values, .. } => values.len() * 2,
    };
    128 + d
        .dimensions
        .iter()
        .map(|(n, v)| n.len() + v.len() + 32)
        .sum::<usize>()
        + values * 12
}

#[async_trait]
impl MetricsSink for CloudWatchMetrics {
    async fn publish(&self, datums: &[MetricDatum]) -> Result<(), PublishError> {
        let mut start = 0;
        while start < datums.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < datums.len() && end - start < MAX_DATUMS_PER_CALL {
                bytes += estimated_bytes(&datums[end]);
                if bytes > MAX_CALL_BYTES && end > start {
                    break;
                }
                end += 1;
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(datums[start..end].iter().map(translate).collect()))
                .send()
                .await
                .map_err(|e| PublishError {
                    operation: "PutMetricData",
                    target: self.namespace.clone(),
                    message: DisplayErrorContext(&e).to_string(),
                })?;
            start = end;
        }
        Ok(())
    }
}
