//! The reader of one shard: its objects streamed in order, each decompressed and parsed on a
//! blocking thread, its batches sent into the shard's channel.

use std::sync::Arc;

use tokio_util::io::SyncIoBridge;

use super::bounds::{Bounds, ObjectSizes};
use crate::archive::layout::DataObject;
use crate::names::StreamName;
use crate::record::{Interner, Record};
use crate::source::file::unparsed_line;
use crate::source::lines::{buffered, read_lines_into};
use crate::stage::Rejected;
use crate::store::{self, ObjectStore};

/// Reads the objects of one shard in order into the source's shared channel.
pub(super) struct ShardReader {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) stream: StreamName,
    pub(super) bounds: Bounds,
    pub(super) batch_records: usize,
    pub(super) prefilter: Option<crate::expr::Prefilter>,
    /// The payload paths noted on every record (see [`crate::json::probe`]).
    pub(super) probe: Option<crate::json::probe::PayloadProbe>,
    pub(super) tx: tokio::sync::mpsc::Sender<Result<crate::source::lines::Parsed, String>>,
    /// Cancelled when the source ends: the reader stops at once.
    pub(super) stop: tokio_util::sync::CancellationToken,
    /// With `skip_fences`: the protocol member, and the fences left out so far (all shards).
    pub(super) skip_fences: Option<(Arc<str>, Arc<std::sync::atomic::AtomicU64>)>,
    /// Stored sizes of the listed objects.
    pub(super) sizes: ObjectSizes,
    /// Whether gzip is inflated on a thread of its own, ahead of the parser (when the shards
    /// read at once do not fill the cores; see [`crate::source::read_ahead`]).
    pub(super) read_ahead: bool,
    /// The source's counters (objects read and their bytes).
    pub(super) metrics: Arc<crate::stage::StageMetrics>,
}

impl ShardReader {
    pub(super) async fn read(self, objects: Vec<DataObject>) {
        // The read-ahead's buffers, reused from object to object.
        let pool = crate::source::read_ahead::ChunkPool::default();
        for obj in objects {
            if self.stop.is_cancelled() {
                return;
            }
            // Objects are streamed and decompressed on a blocking thread, never held whole.
            let opened = tokio::select! {
                r = self.store.get_stream(&obj.key) => r,
                _ = self.stop.cancelled() => return,
            };
            let stream = match opened {
                Ok(s) => {
                    let objects = &self.metrics.objects;
                    objects
                        .read
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    objects.bytes.fetch_add(
                        self.sizes.get(&obj.key).copied().unwrap_or(0),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    store::stop_reading_on(s, self.stop.clone())
                }
                Err(e) => {
                    let _ = self
                        .tx
                        .send(Err(format!("{}: {e}", self.store.url())))
                        .await;
                    return;
                }
            };
            let reader = SyncIoBridge::new(stream);
            let what = format!("{}/{}", self.store.url(), obj.key);
            let gzip = obj.gzip;
            let bounds = self.bounds.clone();
            let mut interner = Interner::default();
            let key = obj.key.clone();
            let stream_name = self.stream.clone();
            let shard = obj.shard_id.clone();
            let prefilter = self.prefilter.clone();
            let probe = self.probe.clone();
            let tx = self.tx.clone();
            let batch_records = self.batch_records;
            let ahead = self.read_ahead.then(|| pool.clone());
            let skip_fences = self.skip_fences.clone();
            // Batches go straight into the shard's channel (its `prefetch` is the read-ahead).
            let more = tokio::task::spawn_blocking(move || {
                read_lines_into(
                    what,
                    move || buffered(Box::new(reader), gzip, ahead.as_ref()),
                    batch_records,
                    false,
                    move |line_no, text, out| match prefilter
                        .as_ref()
                        .is_some_and(|p| !p.may_match_envelope(text))
                    {
                        // The line cannot hold a payload the filter downstream keeps.
                        true => out.skipped += 1,
                        false => match Record::parse_envelope_probed(
                            text,
                            &mut interner,
                            probe.as_ref(),
                        ) {
                            // Every record of an object belongs to the stream and shard its
                            // folders name; anything else is not this stream's record.
                            Ok(r) if *r.stream != *stream_name || *r.shard_id != *shard => {
                                out.rejected.push(Rejected {
                                    reason: format!(
                                        "{key}: line {line_no}: the record names another stream or shard than the folders it lies in (stream={stream_name}/…/shard={shard}/)"
                                    ),
                                    record: r,
                                })
                            }
                            Ok(r) if skip_fences.as_ref().is_some_and(|(under, _)| {
                                matches!(
                                    crate::replay::parse_marker(&r.data, under),
                                    Ok(crate::replay::Marker::Fence(_))
                                )
                            }) =>
                            {
                                out.skipped += 1;
                                if let Some((_, n)) = &skip_fences {
                                    n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                            Ok(r) if bounds.holds(&r) => out.records.push(r),
                            Ok(_) => out.skipped += 1,
                            Err(e) => out.rejected.push(Rejected {
                                record: unparsed_line(&key, line_no, text),
                                reason: format!("{key}: line {line_no}: {e}"),
                            }),
                        },
                    },
                    &tx,
                )
            })
            .await;
            match more {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = self
                        .tx
                        .send(Err(format!(
                            "{}/{}: reader failed: {e}",
                            self.store.url(),
                            obj.key
                        )))
                        .await;
                    return;
                }
            }
        }
    }
}
