//! Load balancing: the [`BalancePolicy`] choices, the per-pod request counters, and the drop guard that keeps
//! a pod's outstanding count exact for as long as a response (a stream, typically) is being relayed.
//!
//! Picking is independent of Kubernetes objects: [`Balancer::pick`] sees only how many candidates there are and
//! each one's outstanding count, so the policies are unit-tested here without a cluster.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How a request picks one of a Service's ready pods.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum BalancePolicy {
    /// The pod with the fewest requests in flight through the gateway; ties go round-robin. The default: it is
    /// what an LLM-aware router approximates, and it spreads concurrent streams evenly.
    #[default]
    LeastOutstanding,
    /// A uniformly random pod (what kube-proxy's iptables mode does per connection).
    Random,
    /// Each pod in turn.
    RoundRobin,
}

impl std::fmt::Display for BalancePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::LeastOutstanding => "least-outstanding",
            Self::Random => "random",
            Self::RoundRobin => "round-robin",
        })
    }
}

impl std::str::FromStr for BalancePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "least-outstanding" | "least-request" | "least-requests" => Ok(Self::LeastOutstanding),
            "random" => Ok(Self::Random),
            "round-robin" => Ok(Self::RoundRobin),
            other => Err(format!(
                "unknown balance policy {other:?} (expected least-outstanding, random or round-robin)"
            )),
        }
    }
}

/// Request counters of one pod, shared by every Service port that routes to it.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    outstanding: AtomicU64,
    total: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    /// Requests in flight (sent, response not yet fully relayed or dropped).
    pub(crate) fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Requests sent to the pod since the gateway first saw it.
    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Requests that failed in transport (connect error, reset, broken stream).
    pub(crate) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Counts a transport failure.
    pub(crate) fn record_failure(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// One request in flight to a pod: counted on creation, uncounted on drop (response finished, client gone, or
/// upstream failed), so the outstanding count cannot leak on any path.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Counters>);

impl InFlight {
    /// Counts a request to the pod owning `counters`.
    pub(crate) fn start(counters: Arc<Counters>) -> Self {
        counters.outstanding.fetch_add(1, Ordering::Relaxed);
        counters.total.fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }

    /// The pod's counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A policy with its rotation state; one per listener.
#[derive(Debug)]
pub(crate) struct Balancer {
    policy: BalancePolicy,
    cursor: AtomicUsize,
}

impl Balancer {
    /// A balancer for `policy`.
    pub(crate) fn new(policy: BalancePolicy) -> Self {
        Self {
            policy,
            cursor: AtomicUsize::new(0),
        }
    }

    /// The index of the chosen candidate among `n`, given each one's outstanding count; `None` if `n` is 0.
    pub(crate) fn pick(&self, n: usize, outstanding: impl Fn(usize) -> u64) -> Option<usize> {
        if n == 0 {
            return None;
        }
        match self.policy {
            BalancePolicy::Random => Some(rand::random_range(0..n)),
            BalancePolicy::RoundRobin => Some(self.cursor.fetch_add(1, Ordering::Relaxed) % n),
            BalancePolicy::LeastOutstanding => {
                // The pods at the minimum take turns: the k-th of them, k rotating with every pick.
                let loads: Vec<u64> = (0..n).map(&outstanding).collect();
                let min = loads.iter().copied().min()?;
                let ties = loads.iter().filter(|&&l| l == min).count();
                let k = self.cursor.fetch_add(1, Ordering::Relaxed) % ties;
                loads
                    .iter()
                    .enumerate()
                    .filter(|(_, &l)| l == min)
                    .nth(k)
                    .map(|(i, _)| i)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(picks: impl Iterator<Item = usize>, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for i in picks {
            c[i] += 1;
        }
        c
    }

    #[test]
    fn empty_has_no_pick() {
        for policy in [
            BalancePolicy::LeastOutstanding,
            BalancePolicy::Random,
            BalancePolicy::RoundRobin,
        ] {
            assert_eq!(Balancer::new(policy).pick(0, |_| 0), None);
        }
    }

    #[test]
    fn round_robin_cycles() {
        let b = Balancer::new(BalancePolicy::RoundRobin);
        let picks: Vec<usize> = (0..7).filter_map(|_| b.pick(3, |_| 0)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn random_covers_all_and_stays_in_range() {
        let b = Balancer::new(BalancePolicy::Random);
        let c = counts((0..3000).filter_map(|_| b.pick(3, |_| 0)), 3);
        assert!(c.iter().all(|&k| k > 800), "{c:?}");
    }

    #[test]
    fn least_outstanding_prefers_the_idlest() {
        let b = Balancer::new(BalancePolicy::LeastOutstanding);
        let load = [5u64, 1, 3];
        for _ in 0..10 {
            assert_eq!(b.pick(3, |i| load[i]), Some(1));
        }
    }

    #[test]
    fn least_outstanding_breaks_ties_in_turn() {
        let b = Balancer::new(BalancePolicy::LeastOutstanding);
        let load = [2u64, 0, 0, 0];
        let c = counts((0..30).filter_map(|_| b.pick(4, |i| load[i])), 4);
        assert_eq!(c, vec![0, 10, 10, 10]);
    }

    #[test]
    fn least_outstanding_spreads_concurrent_requests_with_guards() {
        let b = Balancer::new(BalancePolicy::LeastOutstanding);
        let pods: Vec<Arc<Counters>> = (0..3).map(|_| Arc::new(Counters::default())).collect();
        let mut held = Vec::new();
        for _ in 0..9 {
            let i = b.pick(3, |i| pods[i].outstanding()).expect("a pick");
            held.push(InFlight::start(pods[i].clone()));
        }
        assert!(pods.iter().all(|p| p.outstanding() == 3 && p.total() == 3));
        // Finishing pod 0's requests makes it the only choice until it catches up.
        held.retain(|g| !std::ptr::eq(g.counters(), &*pods[0]));
        assert_eq!(pods[0].outstanding(), 0);
        for _ in 0..3 {
            let i = b.pick(3, |i| pods[i].outstanding()).expect("a pick");
            assert_eq!(i, 0);
            held.push(InFlight::start(pods[i].clone()));
        }
        drop(held);
        assert!(pods.iter().all(|p| p.outstanding() == 0));
        assert_eq!(pods[0].total(), 6);
    }

    #[test]
    fn policy_parses_and_prints() {
        for policy in [
            BalancePolicy::LeastOutstanding,
            BalancePolicy::Random,
            BalancePolicy::RoundRobin,
        ] {
            assert_eq!(policy.to_string().parse::<BalancePolicy>(), Ok(policy));
        }
        assert!("fastest".parse::<BalancePolicy>().is_err());
        assert_eq!(BalancePolicy::default(), BalancePolicy::LeastOutstanding);
    }
}
