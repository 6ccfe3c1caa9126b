//! Workloads: AIBrix JSONL traces, their generator and the replay client.
