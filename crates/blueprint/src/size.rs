//! Data sizes as blueprints write them (`minsize = "20 GiB"` or `minsize = 1073741824`).
//!
//! The original spelling is kept next to the byte count so that a blueprint written back out
//! looks like the one the user wrote (a lossless round trip), while the rest of kiln only ever
//! asks for [`Size::bytes`].

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Units accepted in size strings, case-sensitive as in osbuild (`datasizes.Parse`).
const UNITS: &[(&str, u64)] = &[
    ("kB", 1000),
    ("KiB", 1024),
    ("MB", 1000 * 1000),
    ("MiB", 1024 * 1024),
    ("GB", 1000 * 1000 * 1000),
    ("GiB", 1024 * 1024 * 1024),
    ("TB", 1000 * 1000 * 1000 * 1000),
    ("TiB", 1024 * 1024 * 1024 * 1024),
];

/// Largest size kiln accepts: TOML integers are signed 64-bit, so anything larger could not be
/// written back out as a number.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// A size in bytes together with the way it was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Size {
    repr: SizeRepr,
    bytes: u64,
}

/// How a [`Size`] was spelled in the blueprint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SizeRepr {
    /// A bare number of bytes (`minsize = 1024`).
    Number,
    /// A string with an optional unit (`minsize = "1 GiB"`), kept verbatim.
    Text(String),
}

impl Size {
    /// A size written as a plain number of bytes.
    ///
    /// # Errors
    /// Fails when `bytes` exceeds [`MAX_SIZE`].
    pub fn from_bytes(bytes: u64) -> Result<Self, String> {
        if bytes > MAX_SIZE {
            return Err(too_large(&bytes.to_string()));
        }
        Ok(Size {
            repr: SizeRepr::Number,
            bytes,
        })
    }

    /// Parses a size string such as `"512 MiB"`, `"1.5GB"` or `"4096"`.
    ///
    /// # Errors
    /// The message says what is wrong and which units are accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = parse_size(text)?;
        Ok(Size {
            repr: SizeRepr::Text(text.to_owned()),
            bytes,
        })
    }

    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How the size was written.
    pub fn repr(&self) -> &SizeRepr {
        &self.repr
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            SizeRepr::Number => write!(f, "{}", self.bytes),
            SizeRepr::Text(t) => f.write_str(t),
        }
    }
}

fn too_large(text: &str) -> String {
    format!("size {text:?} is too large: the largest supported size is {MAX_SIZE} bytes (8 EiB)")
}

fn units_hint() -> String {
    let names: Vec<&str> = UNITS.iter().map(|(n, _)| *n).collect();
    format!(
        "write a plain number of bytes or a number followed by one of {} (case-sensitive), e.g. \"20 GiB\"",
        names.join(", ")
    )
}

/// Exact decimal parsing: `"1.5 GiB"` is 1610612736 bytes, `"0.3 GiB"` is rejected because it is
/// not a whole number of bytes (osbuild rejects fractional bytes too).
fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let digits_end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let (number, rest) = s.split_at(digits_end);
    let unit = rest.trim_start();
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a valid size: it must start with a positive number; {}",
            units_hint()
        ));
    }
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty()
        || (number.contains('.') && frac_part.is_empty())
        || frac_part.contains('.')
    {
        return Err(format!(
            "{text:?} is not a valid size: {number:?} is not a number; {}",
            units_hint()
        ));
    }
    let multiplier = if unit.is_empty() {
        1
    } else {
        match UNITS.iter().find(|(name, _)| *name == unit) {
            Some((_, m)) => *m,
            None => {
                return Err(format!(
                    "{text:?} is not a valid size: unknown unit {unit:?}; {}",
                    units_hint()
                ));
            }
        }
    };
    // value = (int_part . frac_part) * multiplier, computed exactly in u128.
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > 20 {
        return Err(format!(
            "{text:?} is not a valid size: too many decimal places"
        ));
    }
    let too_big = || too_large(text);
    let int_value: u128 = int_part
        .trim_start_matches('0')
        .chars()
        .try_fold(0u128, |acc, c| {
            acc.checked_mul(10)?
                .checked_add(u128::from(c.to_digit(10)?))
        })
        .ok_or_else(too_big)?;
    let mut scale: u128 = 1;
    let mut frac_value: u128 = 0;
    for c in frac_trimmed.chars() {
        scale = scale.checked_mul(10).ok_or_else(too_big)?;
        frac_value = frac_value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(c.to_digit(10).unwrap_or(0))))
            .ok_or_else(too_big)?;
    }
    let m = u128::from(multiplier);
    let whole = int_value.checked_mul(m).ok_or_else(too_big)?;
    let frac_scaled = frac_value.checked_mul(m).ok_or_else(too_big)?;
    if frac_scaled % scale != 0 {
        return Err(format!(
            "{text:?} is not a whole number of bytes; use fewer decimals or a smaller unit (e.g. \"1536 MiB\" instead of \"1.5001 GiB\")"
        ));
    }
    let total = whole.checked_add(frac_scaled / scale).ok_or_else(too_big)?;
    if total > u128::from(MAX_SIZE) {
        return Err(too_big());
    }
    u64::try_from(total).map_err(|_| too_big())
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.repr {
            SizeRepr::Number => serializer.serialize_u64(self.bytes),
            SizeRepr::Text(t) => serializer.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = Size;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size: a number of bytes or a string such as \"10 GiB\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
        Size::from_bytes(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
        let bytes = u64::try_from(v)
            .map_err(|_| E::custom(format!("size {v} is negative; sizes must be positive")))?;
        Size::from_bytes(bytes).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Size, E> {
        // JSON numbers may arrive as floats (e.g. 1e9); accept them only when they are a whole,
        // representable number of bytes.
        if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9.0e18 {
            // The range check above makes the cast exact enough: integral and < 2^63.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let bytes = v as u64;
            Size::from_bytes(bytes).map_err(E::custom)
        } else {
            Err(E::custom(format!(
                "size {v} is not a whole, positive number of bytes"
            )))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
        Size::parse(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("123", Some(123)),
            ("123 kB", Some(123_000)),
            ("123 KiB", Some(123 * 1024)),
            ("123 MB", Some(123_000_000)),
            ("123 MiB", Some(123 * 1024 * 1024)),
            ("123 GB", Some(123_000_000_000)),
            ("123 GiB", Some(123 * 1024 * 1024 * 1024)),
            ("123 TB", Some(123_000_000_000_000)),
            ("123 TiB", Some(123 * 1024 * 1024 * 1024 * 1024)),
            ("123kB", Some(123_000)),
            ("123KiB", Some(123 * 1024)),
            (" 123  ", Some(123)),
            ("  123kB  ", Some(123_000)),
            ("1.0", Some(1)),
            ("123.00", Some(123)),
            ("1.5 GiB", Some(1_610_612_736)),
            ("1.5 GB", Some(1_500_000_000)),
            ("0.5 MiB", Some(512 * 1024)),
            ("0.5 MB", Some(500_000)),
            ("123 KB", None),
            ("123 mb", None),
            ("123 PB", None),
            ("123 PiB", None),
            ("1.5", None),
            ("123.45", None),
            ("0.3 GiB", None),
            ("-1 MiB", None),
            ("", None),
            ("GiB", None),
            (".5 GiB", None),
            ("5. GiB", None),
            ("1.2.3 GiB", None),
            ("10 G iB", None),
            ("99999999999999999999999999 TiB", None),
            ("9223372036854775808", None),
            ("9223372036854775807", Some(9_223_372_036_854_775_807)),
        ];
        for (input, expected) in cases {
            let got = Size::parse(input).map(|s| s.bytes()).ok();
            assert_eq!(got, *expected, "input {input:?}");
        }
    }

    #[test]
    fn errors_explain_units() {
        let e = Size::parse("10 KB").unwrap_err();
        assert!(e.contains("unknown unit \"KB\""), "{e}");
        assert!(e.contains("KiB"), "{e}");
        let e = Size::parse("0.3 GiB").unwrap_err();
        assert!(e.contains("whole number of bytes"), "{e}");
    }

    #[test]
    fn display_keeps_spelling() {
        assert_eq!(Size::parse("2GiB").unwrap().to_string(), "2GiB");
        assert_eq!(Size::from_bytes(42).unwrap().to_string(), "42");
    }
}
