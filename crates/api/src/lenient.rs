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
}
