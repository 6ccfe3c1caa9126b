//! The bookkeeping both drivers share: gather the records that request tasks send back, report progress, and
//! turn a cancellation into a grace period and then a hard stop.
//!
//! Cancellation has two levels. `soft` (a child of the caller's token) means "send nothing new": the
//! dispatcher or the workers see it and stop. `hard` means "give up on requests in flight": it fires
//! [`ReplayConfig::cancel_grace`](super::ReplayConfig::cancel_grace) after `soft`, and every exchange still
//! waiting is recorded as `Cancelled`. The collector runs in the replay's own future, so the progress callback
//! needs no `Send` or `Sync`; it ends when the channel closes, i.e. when every sender (the dispatcher, each
//! request task or worker) is gone.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::client::Client;
use super::config::ReplayProgress;
use super::record::RequestRecord;

/// The two cancellation levels of one replay, cloned into every task.
#[derive(Clone)]
pub(super) struct Stop {
    /// No new request is sent.
    pub(super) soft: CancellationToken,
    /// Requests in flight are abandoned.
    pub(super) hard: CancellationToken,
}

impl Stop {
    pub(super) fn new(cancel: &CancellationToken) -> Self {
        Self {
            soft: cancel.child_token(),
            hard: CancellationToken::new(),
        }
    }
}

/// Collects records until every sender is gone; `total` is the workload size (open loop) or `None`.
///
/// `progress` is called whenever a request finishes, at least every 100 ms, and once at the end. The records
/// come back in arrival order.
pub(super) async fn collect(
    client: &Client,
    mut records_rx: mpsc::UnboundedReceiver<RequestRecord>,
    stop: &Stop,
    started: Instant,
    total: Option<usize>,
    progress: &mut impl FnMut(&ReplayProgress),
) -> Vec<RequestRecord> {
    let grace = client.config().cancel_grace;
    let mut records = Vec::with_capacity(total.unwrap_or_default());
    let mut counters = ReplayProgress {
        total,
        ..ReplayProgress::default()
    };
    let mut stopping: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.soft.cancelled(), if stopping.is_none() => {
                let sent = client.sent();
                let unsent = total.map(|total| total.saturating_sub(sent));
                warn!(sent, unsent, "cancelled: no new requests; waiting for requests in flight");
                stopping = Some(Instant::now() + grace);
            }
            _ = async { if let Some(deadline) = stopping { sleep_until(deadline).await } }, if stopping.is_some() && !stop.hard.is_cancelled() => {
                let in_flight = client.sent().saturating_sub(records.len());
                warn!(in_flight, "grace period over: cancelling requests in flight");
                stop.hard.cancel();
            }
            received = records_rx.recv() => match received {
                Some(record) => {
                    counters.completed += 1;
                    if !record.is_success() {
                        counters.failed += 1;
                        debug!(id = record.request_id, error = ?record.error_message, "request failed");
                    }
                    records.push(record);
                    report(client, started, &mut counters, progress);
                }
                // Every sender has finished.
                None => break,
            },
            _ = tick.tick() => report(client, started, &mut counters, progress),
        }
    }
    report(client, started, &mut counters, progress);
    records
}

fn report(
    client: &Client,
    started: Instant,
    counters: &mut ReplayProgress,
    progress: &mut impl FnMut(&ReplayProgress),
) {
    counters.sent = client.sent();
    counters.elapsed = started.elapsed();
    progress(counters);
}
