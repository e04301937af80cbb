//! An SNS topic feeding an SQS queue in moto, so a test reads back the alerts exactly as a
//! subscriber receives them; plus the SDK configuration the non-S3 clients share.
#![allow(dead_code)]

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use bucketlog::adapters::sns::SnsNotifier;
use serde_json::Value;

/// The SDK configuration for clients of the emulator at `endpoint` (SNS, SQS, DynamoDB,
/// CloudWatch), with the dummy credentials the tests run under.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// A topic the pipeline publishes alerts to, and the queue subscribed to it.
pub struct AlertInbox {
    /// The SNS client the notifier publishes with.
    pub sns: aws_sdk_sns::Client,
    /// The SQS client the alerts are read back with.
    pub sqs: aws_sdk_sqs::Client,
    /// The topic's ARN.
    pub topic_arn: String,
    /// The subscribed queue's URL.
    pub queue_url: String,
}

impl AlertInbox {
    /// Creates a topic and a queue named `name`, and subscribes the queue to the topic.
    pub async fn create(sdk: &aws_config::SdkConfig, name: &str) -> AlertInbox {
        let sns = aws_sdk_sns::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let topic_arn = sns
            .create_topic()
            .name(name)
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn");
        let queue_url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("queue arn");
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("subscribe");
        AlertInbox {
            sns,
            sqs,
            topic_arn,
            queue_url,
        }
    }

    /// The real SNS notifier, publishing to this topic.
    pub fn notifier(&self) -> Box<SnsNotifier> {
        Box::new(SnsNotifier::new(self.sns.clone(), self.topic_arn.clone()))
    }

    /// Every alert delivered so far, in delivery order; drains the queue.
    pub async fn drain(&self) -> Vec<Value> {
        let mut alerts = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return alerts;
            }
            for m in messages {
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap_or_default()).expect("SNS envelope");
                let alert: Value = serde_json::from_str(envelope["Message"].as_str().unwrap_or(""))
                    .expect("alert JSON");
                alerts.push(alert);
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}
