//! The open-loop driver: every request goes out at its timestamp, whatever the server does.
//!
//! Due times hang off one monotonic instant, `trace_start + floor(timestamp × time_scale)` ms. A dispatcher task
//! spawns each request task a short lookahead before its due time (so memory holds only what is in flight or
//! about to be); the task then waits for its tokio timer or, with [`Dispatcher::Hybrid`], a nudge from a waker
//! thread, whichever comes first. Tokio's timer wheel ticks every 1 ms, so a timer alone sends ~1 ms late; the
//! thread `nanosleep`s to each due time and is ~0.1–0.2 ms late, and when the CPUs are oversubscribed and the
//! thread is not scheduled in time, the timer still fires.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::client::Client;
use super::collector::{collect, Stop};
use super::config::{Dispatcher, ReplayConfig, ReplayError, ReplayProgress};
use super::record::RequestRecord;
use crate::workload::trace::{ScheduledRequest, Trace};

/// Replays `trace` open loop: each request is sent at its timestamp, whatever the server does.
///
/// Returns the records of every request that was sent, sorted by `request_id`. `progress` is called from this
/// future (not from the request tasks) whenever a request finishes and at least every 100 ms.
pub async fn replay(
    trace: &Trace,
    config: &ReplayConfig,
    cancel: CancellationToken,
    mut progress: impl FnMut(&ReplayProgress),
) -> Result<Vec<RequestRecord>, ReplayError> {
    let schedule: Vec<ScheduledRequest> = trace.scheduled();
    if schedule.is_empty() {
        return Err(ReplayError::EmptyWorkload);
    }
    let total = schedule.len();
    let client = Arc::new(Client::new(config)?);
    let started = Instant::now();
    let trace_start = started + config.start_delay;
    let time_scale = config.time_scale;
    let plan: Vec<(Instant, ScheduledRequest)> = schedule
        .into_iter()
        .map(|r| {
            let offset_ms = (r.timestamp_ms as f64 * time_scale).floor();
            (trace_start + Duration::from_secs_f64(offset_ms / 1000.0), r)
        })
        .collect();
    info!(
        requests = total,
        span_s = trace.span_ms() as f64 * time_scale / 1000.0,
        url = %client.url,
        dispatcher = ?config.dispatcher,
        "open-loop replay"
    );
    let stop = Stop::new(&cancel);
    let (tx, rx) = mpsc::unbounded_channel::<RequestRecord>();
    let dispatch = Dispatch {
        client: client.clone(),
        stop: stop.clone(),
        tx,
    };
    let waker = match config.dispatcher {
        Dispatcher::Tokio => None,
        Dispatcher::Hybrid => {
            let (nudges, due_times) = std::sync::mpsc::channel();
            let soft = stop.soft.clone();
            std::thread::Builder::new()
                .name("replay-waker".into())
                .spawn(move || waker_thread(&due_times, &soft))
                .map_err(|e| ReplayError::Config(format!("cannot start the waker thread: {e}")))?;
            Some(nudges)
        }
    };
    tokio::spawn(dispatch.run(plan, config.lookahead, waker));

    let mut records = collect(&client, rx, &stop, started, Some(total), &mut progress).await;
    records.sort_by_key(|r| r.request_id);
    Ok(records)
}

/// What an open-loop dispatcher needs; request tasks hold clones of `tx`, so the collector sees the channel
/// close once the dispatcher and every task are done.
struct Dispatch {
    client: Arc<Client>,
    stop: Stop,
    tx: mpsc::UnboundedSender<RequestRecord>,
}

impl Dispatch {
    /// Spawns each request task `lookahead` before its due time; the task waits for its tokio timer or, when
    /// `waker` is given, a nudge from the waker thread, whichever comes first.
    async fn run(
        self,
        plan: Vec<(Instant, ScheduledRequest)>,
        lookahead: Duration,
        waker: Option<std::sync::mpsc::Sender<Nudge>>,
    ) {
        for (at, request) in plan {
            let spawn_at = at.checked_sub(lookahead).unwrap_or(at);
            tokio::select! {
                biased;
                _ = self.stop.soft.cancelled() => return,
                _ = sleep_until(spawn_at) => {}
            }
            let prepared = self.client.prepare(request.index, &request.request);
            let nudged = match &waker {
                Some(waker) => {
                    let (tx, rx) = oneshot::channel();
                    // A closed waker (it only stops on cancellation) leaves the timer to do the work.
                    let _ = waker.send((at.into_std(), tx));
                    Some(rx)
                }
                None => None,
            };
            let (client, stop, tx) = (self.client.clone(), self.stop.clone(), self.tx.clone());
            tokio::spawn(async move {
                let nudge = async {
                    let woken = match nudged {
                        Some(rx) => rx.await.is_ok(),
                        None => false,
                    };
                    if !woken {
                        // No waker, or it went away without nudging: only the timer counts.
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    biased;
                    _ = stop.soft.cancelled() => return,
                    _ = sleep_until(at) => {}
                    _ = nudge => {}
                }
                let record = client.dispatch(prepared, Some(at), &stop.hard).await;
                // The collector only goes away when the replay future is dropped; then nobody wants the record.
                let _ = tx.send(record);
            });
        }
    }
}

/// A due time and the request task to wake then.
type Nudge = (std::time::Instant, oneshot::Sender<()>);

/// The waker thread: sleeps until each due time (in slices, to notice a cancellation) and nudges the task.
/// Due times arrive in order; it ends when the dispatcher drops its sender or on cancellation.
fn waker_thread(due_times: &std::sync::mpsc::Receiver<Nudge>, soft: &CancellationToken) {
    const SLICE: Duration = Duration::from_millis(20);
    while let Ok((due, task)) = due_times.recv() {
        loop {
            if soft.is_cancelled() {
                return;
            }
            let now = std::time::Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(SLICE));
        }
        // The task may have started on its timer already.
        let _ = task.send(());
    }
}
