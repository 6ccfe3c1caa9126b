//! Observation: the per-tick record of a scenario ([`timeline`]), the observer that produces it ([`observer`]), the
//! controller's own log of its decisions ([`decisions`]) with the date and time of each klog line ([`klog`]), and
//! that log read from the cluster where the controllers run as pods ([`pod_logs`]).

pub mod decisions;
pub mod klog;
pub mod observer;
pub mod pod_logs;
pub mod timeline;
