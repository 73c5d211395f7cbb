//! Field types for what billing code really sends: PHP modules send
//! numbers as strings (`"2"`), and an empty string for a field they leave
//! unset. Shared by every face that takes such clients.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// An optional number given as a number or as a numeric string; `null`
/// and `""` are absent. Anything else is refused naming the field.
pub fn opt_number<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + TryFrom<u64>,
    <T as FromStr>::Err: Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Unsigned(u64),
        Signed(i64),
        Float(f64),
        Text(String),
    }
    let raw = Option::<Raw>::deserialize(de)?;
    let text = match raw {
        None => return Ok(None),
        Some(Raw::Unsigned(n)) => {
            return T::try_from(n)
                .map(Some)
                .map_err(|_| de::Error::custom(format!("{n} is out of range")));
        }
        Some(Raw::Signed(n)) => return Err(de::Error::custom(format!("{n} must not be negative"))),
        Some(Raw::Float(f)) if f.fract() == 0.0 && f >= 0.0 => format!("{f:.0}"),
        Some(Raw::Float(f)) => return Err(de::Error::custom(format!("{f} is not a whole number"))),
        Some(Raw::Text(t)) => t,
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<T>()
        .map(Some)
        .map_err(|e| de::Error::custom(format!("{text:?} is not a number: {e}")))
}

/// An optional string given as a string or a number (`"53"` or `53`);
/// `null` is absent.
pub fn opt_text<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(Option::<Raw>::deserialize(de)?.map(|r| match r {
        Raw::Text(t) => t,
        Raw::Number(n) => n.to_string(),
    }))
}

/// An optional flag given as `true`/`false`, `1`/`0` or their text
/// (`"1"`, `"true"`, `"on"`); `null` and `""` are absent.
pub fn opt_bool<'de, D: Deserializer<'de>>(de: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Flag(bool),
        Number(u64),
        Text(String),
    }
    match Option::<Raw>::deserialize(de)? {
        None => Ok(None),
        Some(Raw::Flag(b)) => Ok(Some(b)),
        Some(Raw::Number(0)) => Ok(Some(false)),
        Some(Raw::Number(1)) => Ok(Some(true)),
        Some(Raw::Number(n)) => Err(de::Error::custom(format!("{n} is not 0 or 1"))),
        Some(Raw::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "1" | "true" | "on" | "yes" => Ok(Some(true)),
            "0" | "false" | "off" | "no" => Ok(Some(false)),
            other => Err(de::Error::custom(format!(
                "{other:?} is not a flag (true/false, 1/0)"
            ))),
        },
    }
}

/// Log, by name only (values may be secrets), the fields of a request
/// that ironidc does not model: billing clients send them, and they are
/// ignored rather than refused.
pub fn note_ignored(what: &str, ignored: &std::collections::BTreeMap<String, serde_json::Value>) {
    if !ignored.is_empty() {
        let names: Vec<&str> = ignored.keys().map(String::as_str).collect();
        tracing::info!(fields = %names.join(","), "{what}: fields ironidc does not model were ignored");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(default, deserialize_with = "opt_number")]
        n: Option<u32>,
    }

    fn n(v: serde_json::Value) -> Result<Option<u32>, String> {
        serde_json::from_value::<T>(serde_json::json!({ "n": v }))
            .map(|t| t.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_as_billing_code_sends_them() {
        assert_eq!(n(serde_json::json!(2)), Ok(Some(2)));
        assert_eq!(n(serde_json::json!("2")), Ok(Some(2)));
        assert_eq!(n(serde_json::json!(" 8 ")), Ok(Some(8)));
        assert_eq!(n(serde_json::json!(4.0)), Ok(Some(4)));
        assert_eq!(n(serde_json::json!("")), Ok(None));
        assert_eq!(n(serde_json::json!(null)), Ok(None));
        assert!(n(serde_json::json!(-1)).is_err());
        assert!(n(serde_json::json!("two")).is_err());
        assert!(n(serde_json::json!(1.5)).is_err());
        assert!(n(serde_json::json!(5_000_000_000u64))
            .unwrap_err()
            .contains("out of range"));
        let absent: T = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(absent.n, None);
    }

    #[derive(Deserialize, Debug)]
    struct F {
        #[serde(default, deserialize_with = "opt_bool")]
        f: Option<bool>,
    }

    #[test]
    fn flags_as_billing_code_sends_them() {
        let f = |v: serde_json::Value| {
            serde_json::from_value::<F>(serde_json::json!({ "f": v }))
                .map(|t| t.f)
                .map_err(|e| e.to_string())
        };
        assert_eq!(f(serde_json::json!(true)), Ok(Some(true)));
        assert_eq!(f(serde_json::json!(0)), Ok(Some(false)));
        assert_eq!(f(serde_json::json!("1")), Ok(Some(true)));
        assert_eq!(f(serde_json::json!("false")), Ok(Some(false)));
        assert_eq!(f(serde_json::json!("")), Ok(None));
        assert!(f(serde_json::json!(2)).is_err());
        assert!(f(serde_json::json!("maybe")).is_err());
    }
}
