//! Streaming one log object through the decoder and curator into output chunks, counting
//! what metrics and alerts need on the way.

use std::io;

use tracing::debug;

use super::uploads::Uploads;
use super::{Pipeline, ProcessError};
use crate::alerts::detect::Detector;
use crate::curate::{CurationSink, CurationStats, Curator, Rejected};
use crate::enrich::Enriched;
use crate::event::ObjectRef;
use crate::input::ObjectDecoder;
use crate::metrics::MetricsAggregator;
use crate::outputs::{Limits, OutputChunk, OutputPlan, OutputRouter, Spill};
use crate::ports::ObjectStore;

/// Input is pushed to the decoder in slices of at most this many bytes, so that one slice
/// (even of highly compressed gzip) produces at most a part or two of output.
const PUSH_SLICE: usize = 64 * 1024;

/// The curation sink the pipeline uses: routes records to outputs and counts them for
/// metrics and alerts on the way.
struct ObservingSink {
    router: OutputRouter,
    metrics: MetricsAggregator,
    detector: Detector,
}

impl CurationSink for ObservingSink {
    fn curated(&mut self, record: &Enriched<'_>, json: &[u8]) {
        self.metrics.observe(&record.record);
        self.detector.observe(record);
        self.router.curated(record, json);
    }

    fn rejected(&mut self, rejected: &Rejected<'_>, json: &[u8]) {
        self.metrics.observe_rejected();
        self.router.rejected(rejected, json);
    }
}

/// What streaming one object produced.
pub(super) struct Streamed {
    pub(super) stats: CurationStats,
    pub(super) bytes: u64,
    pub(super) metrics: MetricsAggregator,
    pub(super) detector: Detector,
}

impl<S: ObjectStore> Pipeline<S> {
    /// Streams the object through the parser into uploads; returns the line counts and
    /// the number of bytes read.
    pub(super) async fn stream(
        &self,
        object: &ObjectRef,
        mut body: crate::ports::ObjectBody,
        plan: OutputPlan,
        uploads: &mut Uploads<'_, S>,
    ) -> Result<Streamed, ProcessError> {
        let sink = ObservingSink {
            router: OutputRouter::with_limits(plan, Limits::default(), Some(Box::new(temp_spill))),
            metrics: MetricsAggregator::default(),
            detector: Detector::new(self.config.alerts.clone(), object.to_string()),
        };
        let curator = Curator::new(sink, Some(object.to_string()))
            .with_lookups(std::sync::Arc::clone(&self.lookups));
        let mut decoder = ObjectDecoder::new(curator);
        let decode_error = |source| ProcessError::Decode {
            object: object.clone(),
            source,
        };
        let encode_error = |source| ProcessError::Encode {
            object: object.clone(),
            source,
        };
        while let Some(chunk) = body.chunks.next_chunk().await? {
            for slice in chunk.chunks(PUSH_SLICE) {
                decoder.push(slice).map_err(decode_error)?;
                let ready: Vec<OutputChunk> = match decoder.handler_mut() {
                    Some(curator) => {
                        let router = &mut curator.sink_mut().router;
                        if let Some(e) = router.take_error() {
                            return Err(encode_error(e));
                        }
                        router.take_ready().collect()
                    }
                    None => Vec::new(),
                };
                for chunk in ready {
                    uploads.accept(chunk, false).await?;
                }
            }
        }
        let (curator, summary) = decoder.finish().map_err(decode_error)?;
        let stats = curator.stats();
        let sink = curator.into_sink();
        let mut finishing = sink.router.finish().map_err(encode_error)?;
        for chunk in finishing.by_ref() {
            uploads.accept(chunk.map_err(encode_error)?, true).await?;
        }
        let outputs = finishing.stats();
        debug!(
            object = %object,
            outputs = outputs.outputs,
            members = outputs.members,
            early_parts = outputs.parts,
            peak_buffered = outputs.peak_buffered,
            spilled_bytes = outputs.spilled,
            "outputs written"
        );
        Ok(Streamed {
            stats,
            bytes: summary.input_bytes,
            metrics: sink.metrics,
            detector: sink.detector,
        })
    }
}

/// Opens the spill for output buffers over the budget: an anonymous temporary file
/// (see [`crate::adapters::local::anonymous_temp_file`]).
fn temp_spill() -> io::Result<Box<dyn Spill>> {
    crate::adapters::local::anonymous_temp_file("spill").map(|f| Box::new(f) as Box<dyn Spill>)
}
