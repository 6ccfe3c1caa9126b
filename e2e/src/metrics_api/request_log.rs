//! The adapter's memory of what it was asked: a bounded log of answered requests, so tests and debugging can see
//! what the aggregator, the HPA and AIBrix actually called (paths, `Accept`, user agents, status, item counts).
//!
//! A std `Mutex` is enough: it is never held across an `.await` and each critical section is one push or one copy.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A request the adapter answered (for tests and debugging: what the aggregator, the HPA and AIBrix asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `Accept` header.
    pub accept: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// `X-Remote-User` header (set by the aggregator).
    pub remote_user: Option<String>,
    /// Response status.
    pub status: u16,
    /// Items in a list response.
    pub items: Option<usize>,
}

/// The bounded log of [`ObservedRequest`]s.
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    entries: Arc<Mutex<VecDeque<ObservedRequest>>>,
    capacity: usize,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(1024)))),
            capacity,
        }
    }

    pub(crate) fn push(&self, request: ObservedRequest) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity.max(1) {
            entries.pop_front();
        }
        entries.push_back(request);
    }

    pub(crate) fn snapshot(&self) -> Vec<ObservedRequest> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().cloned().collect()
    }
}
