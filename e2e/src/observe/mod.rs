//! Observation: the per-tick record of a scenario ([`timeline`]) and the observer that produces it ([`observer`]).

pub mod observer;
pub mod timeline;
