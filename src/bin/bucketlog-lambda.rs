//! The Lambda function: configuration and AWS clients built once at cold start, then every
//! invocation handed to `Pipeline::handle_in` with its request ID and deadline.

use std::sync::Arc;

use bucketlog::adapters::aws_pipeline;
use bucketlog::config::Config;
use bucketlog::logging::init_json_logging;
use bucketlog::pipeline::{HandlerError, InvocationContext};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

/// A failed invocation, reported to Lambda with its type and message.
#[derive(Debug)]
struct Failure(HandlerError);

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        let error_type = match &failure.0 {
            HandlerError::Event(_) => "UnrecognisedEvent",
            HandlerError::Objects { .. } => "LogObjectFailed",
            HandlerError::NoOutputBucket { .. } => "OutputBucketRequired",
            HandlerError::NoLakeBucket => "OutputBucketRequired",
            HandlerError::CompactionList(_) | HandlerError::Compaction { .. } => "CompactionFailed",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: failure.0.to_string(),
        }
    }
}

/// One thread: below 1,769 MB Lambda gives less than one vCPU, and the handler is one
/// task whose CPU work (decompress, parse, compress) gains nothing from a second worker
/// but the hand-offs between them.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = match Config::from_lookup(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("bucketlog-lambda: invalid configuration: {e}");
            return Err(e.into());
        }
    };
    init_json_logging(&config.log_level);
    let pipeline = match aws_pipeline(config).await {
        Ok(pipeline) => Arc::new(pipeline),
        Err(e) => {
            tracing::error!(error = %e, "cannot start: a client database is unusable");
            return Err(e.into());
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let pipeline = Arc::clone(&pipeline);
        // The request ID and deadline make each attempt's marker ID and its lease.
        let context = InvocationContext {
            request_id: Some(event.context.request_id.clone()),
            deadline_ms: Some(event.context.deadline),
            backfill: false,
        };
        async move {
            pipeline
                .handle_in(&event.payload, &context)
                .await
                .map_err(Failure)
        }
    }))
    .await
}
