//! Scalars whose JSON type varies in compose's output, and the lenient decoders for them.
//!
//! Docker Compose prints some numbers as strings (`published: "8080"`, `mem_limit: "52428800"`,
//! `mode: "0440"`) and others as numbers (`target: 80`, `tmpfs.mode: 1777`). [`Scalar`] keeps whichever it
//! was given, so re-encoding the model reproduces compose's JSON exactly, while conversion reads it through
//! [`Scalar::as_i64`] and friends without caring which. The `lenient` helpers accept numbers and booleans
//! where a string is expected, because a hand-written or older document may hold them.

use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};

/// A string, number or boolean, kept as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
}

impl Scalar {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::Bool(_) => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Number(n) => n.as_f64(),
            Scalar::Str(s) => s.trim().parse().ok(),
            Scalar::Bool(_) => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(*b),
            Scalar::Str(s) => s.parse().ok(),
            Scalar::Number(_) => None,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Str(s) => f.write_str(s),
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar::Str(s.to_string())
    }
}

impl From<i64> for Scalar {
    fn from(n: i64) -> Self {
        Scalar::Number(n.into())
    }
}

/// A size in bytes. Compose prints it as a string of digits (`"67108864"`); a unit suffix (`64m`) is
/// still understood, as compose-go's `units.RAMInBytes` does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(pub Scalar);

impl Bytes {
    pub fn bytes(&self) -> Option<u64> {
        match &self.0 {
            Scalar::Number(n) => n.as_u64(),
            Scalar::Str(s) => parse_bytes(s),
            Scalar::Bool(_) => None,
        }
    }
}

/// `64m`, `1g`, `1000` → bytes, as the loader reads sizes (docker's `RAMInBytes`).
pub fn parse_bytes(text: &str) -> Option<u64> {
    crate::load::units::parse_bytes(text.trim()).ok().and_then(|b| u64::try_from(b).ok())
}

/// A Go duration as compose prints it (`"1m30s"`, `"10s"`, `"500ms"`); a bare number means seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(pub Scalar);

impl Duration {
    /// Whole seconds, rounded up so that a timeout never becomes shorter than asked.
    pub fn seconds(&self) -> Option<i64> {
        let secs = match &self.0 {
            Scalar::Number(n) => n.as_f64()?,
            Scalar::Str(s) => parse_duration(s)?,
            Scalar::Bool(_) => return None,
        };
        Some(secs.ceil() as i64)
    }
}

/// `1h2m3.5s`, `500ms`, `10us` → seconds, as the loader reads durations; a bare number means seconds.
pub fn parse_duration(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Some(secs);
    }
    crate::load::units::parse_duration(text).ok().map(|d| d.as_secs_f64())
}

/// Decoders that accept a number or boolean where compose's schema says string (`environment: {A: 1}`).
pub mod lenient {
    use super::*;

    fn text(value: Scalar) -> String {
        value.to_string()
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Scalar::deserialize(d).map(text)
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Scalar>::deserialize(d)?.map(text))
    }

    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        Ok(Option::<Vec<Scalar>>::deserialize(d)?.map(|v| v.into_iter().map(text).collect()))
    }

    pub fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IndexMap<String, String>>, D::Error> {
        let map = Option::<IndexMap<String, Option<Scalar>>>::deserialize(d)?;
        Ok(map.map(|m| m.into_iter().map(|(k, v)| (k, v.map(text).unwrap_or_default())).collect()))
    }

    pub fn opt_string_map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<IndexMap<String, Option<String>>>, D::Error> {
        let map = Option::<IndexMap<String, Option<Scalar>>>::deserialize(d)?;
        Ok(map.map(|m| m.into_iter().map(|(k, v)| (k, v.map(text))).collect()))
    }

    /// `null` kept apart from absent: compose prints `command: null` for "no override".
    pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Ok(Some(Option::<T>::deserialize(d)?))
    }

    /// A command as a list; a lone string (never printed by compose, but cheap to accept) is one word.
    pub fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Vec<String>>>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<Scalar>),
            One(String),
        }
        Ok(Some(Option::<Form>::deserialize(d)?.map(|form| match form {
            Form::List(v) => v.into_iter().map(text).collect(),
            Form::One(s) => vec![s],
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("1m30s"), Some(90.0));
        assert_eq!(parse_duration("1h0m0s"), Some(3600.0));
        assert_eq!(parse_duration("500ms"), Some(0.5));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5"), Some(5.0));
        assert_eq!(Duration(Scalar::from("1.5s")).seconds(), Some(2));
        assert_eq!(parse_bytes("64m"), Some(64 * 1024 * 1024));
        assert_eq!(parse_bytes("52428800"), Some(52428800));
        assert_eq!(parse_bytes("1gb"), Some(1 << 30));
        assert_eq!(parse_bytes("1.5g"), Some(3 << 29));
        assert_eq!(parse_bytes("lots"), None);
    }

    #[test]
    fn scalars_keep_their_json_type() {
        for text in [r#""8080""#, "8080", "0.5", "true"] {
            let value: Scalar = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&value).unwrap(), text);
        }
    }
}
