//! Observation: the per-tick record of a scenario ([`timeline`]), the observer that produces it ([`observer`]), and
//! the controller's own log of its decisions ([`decisions`]).

pub mod decisions;
pub mod observer;
pub mod timeline;
