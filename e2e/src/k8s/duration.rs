//! Go duration strings (`"30s"`, `"1m30s"`): parsed as AIBrix reads its cooldown-window annotations with
//! `time.ParseDuration` (the harness must accept exactly what the controller accepts, so the grammar is Go's), and
//! formatted as the metrics APIs write a window.

use std::time::Duration;

/// A Go duration string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The empty string.
    #[error("empty duration")]
    Empty,
    /// Not of the form `[-+]?(<number><unit>)+` with units ns, us, µs, ms, s, m, h.
    #[error("invalid duration {input:?}: {reason}")]
    Invalid {
        /// The text.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// Negative (Go accepts these, but a window cannot be negative).
    #[error("negative duration {0:?}")]
    Negative(String),
}

/// Parses a Go `time.ParseDuration` string (`"30s"`, `"5m"`, `"1m30s"`, `"1.5h"`, `"300ms"`, `"0"`).
///
/// Same grammar as Go: an optional sign, then one or more `<decimal number><unit>` terms, units `ns`, `us`
/// (`µs`, `μs`), `ms`, `s`, `m`, `h`; the bare `"0"` needs no unit. Negative durations parse in Go but are rejected
/// here, since every duration the controller reads is a window length.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = |reason: &str| DurationError::Invalid {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let (negative, mut rest) = match input.as_bytes()[0] {
        b'-' => (true, &input[1..]),
        b'+' => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("no number"));
    }
    let mut seconds = 0.0_f64;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid("a number is expected before each unit"));
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "" => return Err(invalid("missing unit (ns, us, ms, s, m, h)")),
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => {
                return Err(invalid(&format!(
                    "unknown unit {other:?} (ns, us, ms, s, m, h)"
                )))
            }
        };
        let int_text = if int_part.is_empty() { "0" } else { int_part };
        let frac_text = if frac_part.is_empty() { "0" } else { frac_part };
        let value: f64 = format!("{int_text}.{frac_text}")
            .parse()
            .map_err(|_| invalid("unreadable number"))?;
        seconds += value * scale;
    }
    if negative && seconds > 0.0 {
        return Err(DurationError::Negative(input.to_string()));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid("out of range"))
}

/// A Go duration string (`15s`, `1500ms`): whole seconds when exact, else milliseconds.
pub(crate) fn format_go_duration(window: Duration) -> String {
    let millis = window.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_format() {
        assert_eq!(format_go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn go_durations_parse_like_go() {
        let secs = |s: &str| parse_go_duration(s).map(|d| d.as_secs_f64());
        assert_eq!(secs("30s"), Ok(30.0));
        assert_eq!(secs("5m"), Ok(300.0));
        assert_eq!(secs("1m30s"), Ok(90.0));
        assert_eq!(secs("1h"), Ok(3600.0));
        assert_eq!(secs("1.5h"), Ok(5400.0));
        assert_eq!(secs(".5s"), Ok(0.5));
        assert_eq!(secs("300ms"), Ok(0.3));
        assert_eq!(secs("1500us"), Ok(0.0015));
        assert_eq!(secs("2µs"), Ok(0.000002));
        assert_eq!(secs("0"), Ok(0.0));
        assert_eq!(secs("+10s"), Ok(10.0));
        assert_eq!(secs("-0s"), Ok(0.0));
        assert_eq!(secs(""), Err(DurationError::Empty));
        assert!(matches!(secs("-5s"), Err(DurationError::Negative(_))));
        for bad in ["30", "5d", "s", ".s", "1m30", "abc", "-", "1 s", "3.5.5s"] {
            let err = secs(bad).expect_err(bad);
            assert!(matches!(err, DurationError::Invalid { .. }), "{bad}: {err}");
        }
        assert!(secs("5d")
            .expect_err("unit")
            .to_string()
            .contains("unknown unit \"d\""));
    }
}
