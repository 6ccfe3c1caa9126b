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

/// The pinned AIBrix module's source in the Go module cache (`$GOMODCACHE`, else `go env GOMODCACHE`, else
/// `~/go/pkg/mod`), if it is there: where the deviation catalogue's citations point.
#[cfg(test)]
pub(crate) fn aibrix_module_dir() -> Option<std::path::PathBuf> {
    let version = versions().get("AIBRIX_VERSION")?.clone();
    let cache = std::env::var_os("GOMODCACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let out = std::process::Command::new("go")
                .args(["env", "GOMODCACHE"])
                .output()
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            let text = text.trim();
            (!text.is_empty()).then(|| std::path::PathBuf::from(text))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join("go/pkg/mod"))
        })?;
    let dir = cache.join(format!("github.com/vllm-project/aibrix@{version}"));
    dir.is_dir().then_some(dir)
}
