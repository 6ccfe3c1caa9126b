//! The closed-loop driver: a fixed number of workers, each sending the next request of the workload as soon as
//! its previous one finished, for a fixed duration.
//!
//! Timestamps are ignored and the workload cycles, so a short trace can drive a long run; request ids are the
//! send order. The load follows the server (a slow server gets fewer requests), which is what a
//! concurrency-based benchmark wants and what the open-loop driver avoids.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::client::Client;
use super::collector::{collect, Stop};
use super::config::{ClosedLoopConfig, ReplayConfig, ReplayError, ReplayProgress};
use super::record::RequestRecord;
use crate::workload::trace::{ScheduledRequest, Trace};

/// Replays closed loop: `concurrency` workers send the workload's requests (cycling, timestamps ignored) back to
/// back until `closed.duration` is over; requests in flight then finish (each bounded by the timeout).
///
/// Returns every record sorted by start time. Cancellation behaves as in [`replay`](super::replay).
pub async fn replay_closed_loop(
    trace: &Trace,
    config: &ReplayConfig,
    closed: &ClosedLoopConfig,
    cancel: CancellationToken,
    mut progress: impl FnMut(&ReplayProgress),
) -> Result<Vec<RequestRecord>, ReplayError> {
    let schedule: Arc<Vec<ScheduledRequest>> = Arc::new(trace.scheduled());
    if schedule.is_empty() {
        return Err(ReplayError::EmptyWorkload);
    }
    if closed.concurrency == 0 {
        return Err(ReplayError::Config("concurrency must be at least 1".into()));
    }
    let client = Arc::new(Client::new(config)?);
    let started = Instant::now();
    let end = started + closed.duration;
    info!(concurrency = closed.concurrency, duration_s = closed.duration.as_secs_f64(), url = %client.url, "closed-loop replay");
    let stop = Stop::new(&cancel);
    let next_id = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel::<RequestRecord>();
    let mut workers = JoinSet::new();
    for _ in 0..closed.concurrency {
        let (client, schedule, next_id, tx, stop) = (
            client.clone(),
            schedule.clone(),
            next_id.clone(),
            tx.clone(),
            stop.clone(),
        );
        workers.spawn(async move {
            loop {
                if stop.soft.is_cancelled() || Instant::now() >= end {
                    break;
                }
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let request = &schedule[id % schedule.len()];
                let prepared = client.prepare(id as u64, &request.request);
                let record = client.dispatch(prepared, None, &stop.hard).await;
                if tx.send(record).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut records = collect(&client, rx, &stop, started, None, &mut progress).await;
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            warn!(error = %e, "a closed-loop worker failed");
        }
    }
    records.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    Ok(records)
}
