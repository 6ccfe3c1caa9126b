//! Timestamps as the Kubernetes metrics APIs spell them (`metav1.Time`). A metric's `window` is a Go duration:
//! [`crate::k8s::duration::format_go_duration`].

/// Now, as a `metav1.Time` string (RFC 3339, seconds, UTC).
pub(crate) fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_seconds() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T', "{now}");
    }
}
