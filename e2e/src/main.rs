//! `autoscale-harness`: the e2e CLI.

fn main() {}
