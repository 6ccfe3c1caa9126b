//! Scenarios: what a scenario asserts about its recorded timeline ([`expect`]) and the reference autoscaling
//! algorithms those assertions are judged against ([`reference`]).

pub mod expect;
pub mod reference;
