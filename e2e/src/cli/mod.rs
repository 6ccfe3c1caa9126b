//! Command groups of the `autoscale-harness` binary, one module each, so `main.rs` stays a dispatcher.

pub mod adapter;
pub mod cluster;
pub mod compare;
pub mod demo;
pub mod run;
pub mod workload;
