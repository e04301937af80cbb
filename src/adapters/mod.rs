//! I/O at the edge: implementations of the ports in [`crate::ports`].

pub mod cloudwatch;
pub mod counting;
pub mod dynamodb;
pub mod dynamodb_markers;
pub mod emf;
pub mod local;
pub mod local_state;
pub mod memory;
pub mod s3;
pub mod sns;

use aws_config::SdkConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;

use crate::config::{Config, MetricsMode, SdkTimeouts};
use crate::geo::{ClientLookups, GeoDbError};
use crate::pipeline::Pipeline;
use crate::ports::{MetricsSink, NoMetrics};
use tracing::{info, warn};

/// The pipeline the Lambda function (and `bucketlog replay --s3`) runs: S3 through the SDK,
/// metrics as `METRICS_MODE` says, and SNS when `ALERT_TOPIC_ARN` is set, all from one
/// shared AWS configuration (credentials, region, `AWS_ENDPOINT_URL`) with the
/// function's timeouts ([`with_timeouts`]).
///
/// The client databases (`GEOIP_DB`, `ASN_DB`) are opened here, at cold start; an
/// `s3://` one is copied into the temporary folder first. One that cannot be used is an
/// error naming its variable.
pub async fn aws_pipeline(config: Config) -> Result<Pipeline<s3::S3Store>, GeoDbError> {
    let shared = with_timeouts(&aws_config::load_from_env().await, &config.sdk_timeouts);
    let namespace = config.metrics_namespace.clone();
    let metrics: Box<dyn MetricsSink> = match config.metrics_mode {
        MetricsMode::Api => Box::new(cloudwatch::CloudWatchMetrics::from_shared(
            &shared, namespace,
        )),
        MetricsMode::Emf => Box::new(emf::EmfMetrics::stdout(namespace)),
        MetricsMode::Off => Box::new(NoMetrics),
    };
    let topic = config.alert_topic_arn.clone();
    let detection = config.detection_table.clone().map(|table| {
        dynamodb::DynamoDetectionState::from_shared(&shared, table)
            .with_ttl_days(config.detection_ttl_days, config.detection_seen_ttl_days)
    });
    let markers = match (&config.detection_table, config.markers_in_table) {
        (Some(table), true) => Some(
            dynamodb_markers::DynamoMarkers::from_shared(&shared, table)
                .with_ttl_days(config.marker_ttl_days),
        ),
        _ => None,
    };
    let store = s3::S3Store::from_shared(&shared);
    let lookups = ClientLookups::open(
        &store,
        config.geoip_db.as_ref(),
        config.asn_db.as_ref(),
        &std::env::temp_dir(),
    )
    .await?;
    if !lookups.is_empty() {
        info!(databases = %lookups.describe(), "client databases loaded");
    }
    let mut pipeline = Pipeline::new(store, config)
        .with_metrics(metrics)
        .with_client_lookups(lookups);
    if let Some(markers) = markers {
        pipeline = pipeline.with_marker_store(Box::new(markers));
    }
    match detection {
        Some(state) => pipeline = pipeline.with_detection_state(Box::new(state)),
        None => warn!(
            "DETECTION_TABLE is not set: 403 spikes and new requesters are detected within each log object only, which misses attacks spread over many objects (docs/deploy.md creates the table)"
        ),
    }
    Ok(match topic {
        Some(arn) => pipeline.with_notifier(Box::new(sns::SnsNotifier::from_shared(&shared, arn))),
        None => pipeline,
    })
}

/// `shared` with the function's timeouts, so that every client built from it (S3,
/// CloudWatch, SNS, and any added later) gives up on a silent endpoint with an error
/// instead of hanging until the function's timeout.
pub fn with_timeouts(shared: &SdkConfig, timeouts: &SdkTimeouts) -> SdkConfig {
    shared
        .to_builder()
        .timeout_config(timeout_config(timeouts))
        .stalled_stream_protection(stalled_stream_protection(timeouts))
        .build()
}

/// The SDK's timeouts from [`SdkTimeouts`]. The SDK applies the attempt and operation
/// timeouts until a response's head has arrived, so they never cut a GetObject body
/// that is still streaming; the read timeout (here: connecting, sending and waiting for
/// the head of one request) does not either.
pub fn timeout_config(timeouts: &SdkTimeouts) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(timeouts.connect)
        .read_timeout(timeouts.read)
        .operation_attempt_timeout(timeouts.attempt)
        .operation_timeout(timeouts.operation)
        .build()
}

/// The guard for bodies: a streamed upload or download that moves no byte for the read
/// timeout fails, however long the whole body takes.
pub fn stalled_stream_protection(timeouts: &SdkTimeouts) -> StalledStreamProtectionConfig {
    StalledStreamProtectionConfig::enabled()
        .grace_period(timeouts.read)
        .build()
}
