//! Structured logs: one JSON object per line, which CloudWatch Logs indexes as fields.

use tracing_subscriber::EnvFilter;

/// Sends `tracing` events to stderr as JSON at `level` (`RUST_LOG` overrides it). Safe to
/// call more than once: later calls do nothing.
pub fn init_json_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Sends `tracing` events to stderr as compact human-readable text, for the command line.
pub fn init_text_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
