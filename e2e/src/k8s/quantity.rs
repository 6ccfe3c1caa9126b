//! Kubernetes quantities: numbers to the strings the metrics APIs return, and resource requests to numbers.

/// Formats `value` as a Kubernetes quantity with milli precision: integers plain (`"46"`), others in milli-units
/// (`0.46` → `"460m"`). `None` for NaN and infinities (such a value is omitted, as a missing sample).
///
/// The HPA reads these with `Quantity.MilliValue()`, so milli precision loses nothing it would use.
pub(crate) fn format_quantity(value: f64) -> Option<String> {
    if !value.is_finite() {
        return None;
    }
    let milli = (value * 1000.0).round();
    if milli.abs() >= 9.0e18 {
        // Beyond milli-units in an i64: whole units (the `as` cast saturates).
        return Some(format!("{}", value.round() as i64));
    }
    let milli = milli as i64;
    if milli == 0 {
        Some("0".to_string())
    } else if milli % 1000 == 0 {
        Some(format!("{}", milli / 1000))
    } else {
        Some(format!("{milli}m"))
    }
}

/// Parses a quantity such as `"1"`, `"500m"`, `"1.5"`, `"1Gi"`, `"2e3"` to a number (cores, bytes, …).
pub(crate) fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    // A decimal exponent (`2e3`, `1E-3`) is part of the number; a bare `E` is the exa suffix.
    if let Some(exponent) = suffix.strip_prefix(['e', 'E']) {
        if !exponent.is_empty()
            && exponent
                .trim_start_matches(['+', '-'])
                .chars()
                .all(|c| c.is_ascii_digit())
        {
            return text.parse().ok();
        }
    }
    let value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        _ => return None,
    };
    Some(value * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_plain_and_fractions_are_milli_units() {
        assert_eq!(format_quantity(0.46).as_deref(), Some("460m"));
        assert_eq!(format_quantity(46.0).as_deref(), Some("46"));
        assert_eq!(format_quantity(0.0).as_deref(), Some("0"));
        assert_eq!(format_quantity(-0.0).as_deref(), Some("0"));
        assert_eq!(format_quantity(1.5).as_deref(), Some("1500m"));
        assert_eq!(format_quantity(8.0).as_deref(), Some("8"));
        assert_eq!(format_quantity(0.0004).as_deref(), Some("0"));
        assert_eq!(format_quantity(0.0005).as_deref(), Some("1m"));
        assert_eq!(format_quantity(12.3456).as_deref(), Some("12346m"));
        assert_eq!(format_quantity(-0.25).as_deref(), Some("-250m"));
        assert_eq!(format_quantity(268_435_456.0).as_deref(), Some("268435456"));
        assert_eq!(
            format_quantity(1e300).as_deref(),
            Some(format!("{}", i64::MAX).as_str())
        );
        assert_eq!(format_quantity(f64::NAN), None);
        assert_eq!(format_quantity(f64::INFINITY), None);
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_quantity("1"), Some(1.0));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        assert_eq!(parse_quantity("2e3"), Some(2000.0));
        assert_eq!(parse_quantity("1E"), Some(1e18));
        assert_eq!(parse_quantity("250u"), Some(0.00025));
        assert_eq!(parse_quantity("x"), None);
        assert_eq!(parse_quantity("1Zi"), None);
    }

    #[test]
    fn formatting_round_trips_through_parsing() {
        for value in [0.0, 0.001, 0.46, 1.0, 46.0, 99.999, 1234.5] {
            let text = format_quantity(value).expect("finite");
            let back = parse_quantity(&text).expect("parses");
            assert!((back - value).abs() < 1e-9, "{value} → {text} → {back}");
        }
    }
}
