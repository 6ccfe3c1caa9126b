//! The pinned versions of every external component, read from `e2e/versions.env` and compiled in, so that the
//! harness (what it reports, the kubelet version its nodes claim) and the Go build can never disagree.

use std::collections::HashMap;

/// The pinned-versions file, compiled in.
pub(crate) const VERSIONS_ENV: &str = include_str!("../versions.env");

/// `KEY=VALUE` pairs of `versions.env`.
pub fn versions() -> HashMap<String, String> {
    parse_env(VERSIONS_ENV)
}

/// `KEY=VALUE` lines (blank lines and `#` comments skipped), as `versions.env` and `build.sh`'s summary write them.
pub(crate) fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}
