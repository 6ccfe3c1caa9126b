//! Kubernetes label selectors in their string form (`labelSelector=app=mock-vllm,tier in (a,b),!canary`), parsed
//! and matched locally against the reflector's pods and against Prometheus sample labels
//! (`metricLabelSelector`).
//!
//! The grammar is apimachinery's `labels.Parse`: comma-separated requirements, each `key`, `!key`, `key=value`,
//! `key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key>n` or `key<n`. As there, `!=` and
//! `notin` also match objects without the key, and the empty selector matches everything.

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Requirement {
    /// `key` present.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
    /// `key=value`, `key==value`, `key in (…)`.
    In(String, Vec<String>),
    /// `key!=value`, `key notin (…)`.
    NotIn(String, Vec<String>),
    /// `key>n` (the value parses as an integer greater than n).
    GreaterThan(String, i64),
    /// `key<n`.
    LessThan(String, i64),
}

/// A parsed selector: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// A selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {message}")]
pub struct SelectorError {
    /// The input.
    pub selector: String,
    /// What is wrong.
    pub message: String,
}

impl Selector {
    /// Parses the string form; empty (or only whitespace) means everything.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let fail = |message: String| SelectorError {
            selector: text.to_string(),
            message,
        };
        let mut requirements = Vec::new();
        for part in split_top_level(text).map_err(fail)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(fail("empty requirement".into()));
            }
            requirements.push(parse_requirement(part).map_err(fail)?);
        }
        Ok(Self { requirements })
    }

    /// True for the empty selector.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches<K, V>(&self, labels: &BTreeMap<K, V>) -> bool
    where
        K: std::borrow::Borrow<str> + Ord,
        V: AsRef<str>,
    {
        self.requirements.iter().all(|r| {
            let get = |key: &str| labels.get(key).map(AsRef::as_ref);
            match r {
                Requirement::Exists(k) => get(k).is_some(),
                Requirement::DoesNotExist(k) => get(k).is_none(),
                Requirement::In(k, values) => get(k).is_some_and(|v| values.iter().any(|x| x == v)),
                Requirement::NotIn(k, values) => {
                    get(k).is_none_or(|v| values.iter().all(|x| x != v))
                }
                Requirement::GreaterThan(k, n) => get(k)
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                Requirement::LessThan(k, n) => get(k)
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }
}

/// Splits at commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(check_key(key.trim())?));
    }
    if let Some(open) = part.find('(') {
        let close = part
            .rfind(')')
            .filter(|&c| c > open && part[c + 1..].trim().is_empty())
            .ok_or_else(|| format!("{part:?}: expected a closing ')' at the end"))?;
        let head = part[..open].trim_end();
        let values: Vec<String> = part[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        for v in &values {
            check_value(v)?;
        }
        let (key, op) = head
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| format!("{part:?}: expected 'key in (…)' or 'key notin (…)'"))?;
        let key = check_key(key.trim())?;
        return match op {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            other => Err(format!("{part:?}: unknown set operator {other:?}")),
        };
    }
    for (op, len) in [("==", 2), ("!=", 2), ("=", 1), (">", 1), ("<", 1)] {
        if let Some(at) = part.find(op) {
            let key = check_key(part[..at].trim())?;
            let value = part[at + len..].trim();
            return match op {
                "==" | "=" => Ok(Requirement::In(key, vec![check_value(value)?])),
                "!=" => Ok(Requirement::NotIn(key, vec![check_value(value)?])),
                _ => {
                    let n: i64 = value
                        .parse()
                        .map_err(|_| format!("{part:?}: {op} needs an integer"))?;
                    Ok(if op == ">" {
                        Requirement::GreaterThan(key, n)
                    } else {
                        Requirement::LessThan(key, n)
                    })
                }
            };
        }
    }
    Ok(Requirement::Exists(check_key(part)?))
}

fn check_key(key: &str) -> Result<String, String> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

fn check_value(value: &str) -> Result<String, String> {
    let valid = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(value.to_string())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matches(selector: &str, pairs: &[(&str, &str)]) -> bool {
        Selector::parse(selector)
            .expect("parses")
            .matches(&labels(pairs))
    }

    #[test]
    fn equality_and_existence() {
        let pod = [("app", "mock-vllm"), ("model.aibrix.ai/name", "deepseek")];
        assert!(matches("app=mock-vllm", &pod));
        assert!(matches("app==mock-vllm", &pod));
        assert!(matches(" app = mock-vllm ", &pod));
        assert!(!matches("app=other", &pod));
        assert!(matches("app!=other", &pod));
        assert!(matches("missing!=x", &pod), "!= matches a missing key");
        assert!(matches("model.aibrix.ai/name", &pod));
        assert!(!matches("!model.aibrix.ai/name", &pod));
        assert!(matches("!canary", &pod));
        assert!(matches("app=mock-vllm,model.aibrix.ai/name=deepseek", &pod));
        assert!(!matches("app=mock-vllm,model.aibrix.ai/name=other", &pod));
        assert!(matches("", &pod), "empty selects everything");
        assert!(matches("app=", &[("app", "")]));
    }

    #[test]
    fn set_operators() {
        let pod = [("app", "mock-vllm"), ("tier", "b")];
        assert!(matches("tier in (a,b)", &pod));
        assert!(matches("tier in (a, b ),app=mock-vllm", &pod));
        assert!(!matches("tier notin (a,b)", &pod));
        assert!(
            matches("zone notin (x)", &pod),
            "notin matches a missing key"
        );
        assert!(!matches("zone in (x)", &pod));
    }

    #[test]
    fn numeric_comparisons() {
        let pod = [("gen", "5")];
        assert!(matches("gen>3", &pod));
        assert!(!matches("gen<3", &pod));
        assert!(!matches("other>3", &pod));
    }

    #[test]
    fn invalid_selectors_are_errors() {
        for bad in [
            "app=(x",
            "tier in (a,b",
            "tier between (a)",
            "app=mock vllm",
            "a,,b",
            "gen>x",
            "bad key=x",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn matches_borrowed_label_maps() {
        let selector = Selector::parse("engine=0").expect("parses");
        let mut map: BTreeMap<&str, &str> = BTreeMap::new();
        map.insert("engine", "0");
        assert!(selector.matches(&map));
    }
}
