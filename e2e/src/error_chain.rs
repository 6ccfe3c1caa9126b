//! One line for an error and every cause under it. Most errors here wrap another (`Kubernetes API: API discovery`
//! wraps what the API server answered); a message without its causes says where something failed but not why, and a
//! CI log is often all a reader gets.

/// The error and its causes, `: `-separated; a cause whose text the message already ends with is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("Kubernetes API: {context}")]
    struct Outer {
        context: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn every_cause_is_named_once() {
        let error = Outer {
            context: "API discovery".into(),
            source: std::io::Error::other("503 Service Unavailable"),
        };
        assert_eq!(
            error_chain(&error),
            "Kubernetes API: API discovery: 503 Service Unavailable"
        );
        let plain = std::io::Error::other("alone");
        assert_eq!(error_chain(&plain), "alone");
    }
}
