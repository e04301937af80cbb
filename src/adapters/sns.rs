//! Alert notifications through `aws-sdk-sns`: one `Publish` per alert, with the alert
//! document as the message and its ID and type as message attributes (so subscribers
//! can filter by type and drop repeats by ID). On a FIFO topic (`.fifo`) the alert ID is
//! also the deduplication ID, so SNS itself drops a repeat within five minutes.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::error::DisplayErrorContext;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::alerts::Alert;
use crate::ports::{AlertNotifier, PublishError};

/// An [`AlertNotifier`] publishing to one SNS topic.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    /// Publishes to `topic_arn` with `client`.
    pub fn new(client: Client, topic_arn: String) -> Self {
        Self { client, topic_arn }
    }

    /// A client from the shared AWS configuration (honours `AWS_ENDPOINT_URL`).
    pub fn from_shared(shared: &aws_config::SdkConfig, topic_arn: String) -> Self {
        Self::new(Client::new(shared), topic_arn)
    }
}

/// An SNS subject: printable ASCII, at most 100 characters.
fn subject(alert: &Alert) -> String {
    let text = format!(
        "bucketlog: {} on {}",
        alert.alert_type.as_str(),
        alert.bucket
    );
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(100)
        .collect()
}

fn attribute(value: &str) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

#[async_trait]
impl AlertNotifier for SnsNotifier {
    async fn notify(&self, alerts: &[Alert]) -> Result<(), PublishError> {
        for alert in alerts {
            let message = serde_json::to_string(alert).unwrap_or_default();
            let mut request = self
                .client
                .publish()
                .topic_arn(&self.topic_arn)
                .subject(subject(alert))
                .message(message);
            if self.topic_arn.ends_with(".fifo") {
                request = request
                    .message_group_id(&alert.bucket)
                    .message_deduplication_id(&alert.alert_id);
            }
            for (name, value) in [
                ("alert_id", alert.alert_id.as_str()),
                ("type", alert.alert_type.as_str()),
            ] {
                if let Some(v) = attribute(value) {
                    request = request.message_attributes(name, v);
                }
            }
            request.send().await.map_err(|e| PublishError {
                operation: "Publish",
                target: self.topic_arn.clone(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        }
        Ok(())
    }
}
