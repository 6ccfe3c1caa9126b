//! Scenarios: what a scenario is ([`spec`]), how it runs ([`run`], [`load`], [`front_door`]), what it asserts about
//! its recorded timeline ([`expect`]), the reference autoscaling algorithms those assertions are judged against
//! ([`reference`]) and the suite's report ([`report`]).
//!
//! A scenario file lists its expectations; each item may carry one mark about the pinned controller,
//! `expected_failure: <reason>` or `intermittent: <reason>`. [`expect::Mark`] alone decides what a mark does to an
//! outcome; the runner and the report only read the resulting [`expect::Judgement`].

pub mod autoscaler;
pub mod catalogue;
pub mod compare;
pub mod controller_build;
pub mod expect;
pub mod faults;
pub mod front_door;
pub mod load;
pub mod reference;
pub mod report;
pub mod run;
pub mod spec;
