//! Send-time precision of the open-loop replay client (written in a later commit).

fn main() {}
