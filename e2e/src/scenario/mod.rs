//! Scenarios: what a scenario is ([`spec`]), how it runs ([`run`], [`load`]), what it asserts about its recorded timeline ([`expect`]) and the reference autoscaling
//! algorithms those assertions are judged against ([`reference`]).

pub mod expect;
pub mod front_door;
pub mod load;
pub mod reference;
pub mod report;
pub mod run;
pub mod spec;
