//! Errors a user sees when a blueprint is wrong: each one names where (line, column, field
//! path) and says what to change.

use std::fmt;

/// A position in the blueprint source, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column (in characters), starting at 1.
    pub column: usize,
}

impl Location {
    /// Converts a byte offset into `src` to a line/column pair.
    pub fn from_offset(src: &str, offset: usize) -> Location {
        let offset = offset.min(src.len());
        // Clamp to a char boundary so slicing cannot panic on odd spans.
        let offset = (0..=offset)
            .rev()
            .find(|i| src.is_char_boundary(*i))
            .unwrap_or(0);
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Everything that can go wrong with a blueprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlueprintError {
    /// The text is not a well-formed blueprint: syntax error, unknown key, wrong type, missing
    /// required field or a value that cannot be decoded (e.g. a size with an unknown unit).
    #[error("{}", render(Some(Location { line: *line, column: *column }).filter(|_| *line > 0), path, message))]
    Parse {
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// Field path such as `customizations.user[1].name`; empty for the document itself.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The blueprint parsed but breaks a rule (bad name, denied mountpoint, ...).
    #[error("{}", render(*location, path, message))]
    Invalid {
        /// Field path such as `customizations.filesystem[0].mountpoint`.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
        /// Where the field is in the source, when the blueprint came from TOML text.
        location: Option<Location>,
    },
    /// Serialization failed (should not happen for a blueprint that parsed).
    #[error("cannot write blueprint as {format}: {message}")]
    Serialize {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// The underlying error.
        message: String,
    },
    /// Hashing a password failed (the system random number generator was unavailable).
    #[error("{path}: cannot hash the password: {message}")]
    Password {
        /// Field path of the password.
        path: String,
        /// The underlying error.
        message: String,
    },
}

fn render(location: Option<Location>, path: &str, message: &str) -> String {
    let mut out = String::new();
    if let Some(loc) = location {
        out.push_str(&loc.to_string());
        out.push_str(": ");
    }
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

impl BlueprintError {
    /// The field path the error is about (empty for document-level errors).
    pub fn path(&self) -> &str {
        match self {
            BlueprintError::Parse { path, .. }
            | BlueprintError::Invalid { path, .. }
            | BlueprintError::Password { path, .. } => path,
            BlueprintError::Serialize { .. } => "",
        }
    }

    /// The source position, when known.
    pub fn location(&self) -> Option<Location> {
        match self {
            BlueprintError::Parse { line, column, .. } if *line > 0 => Some(Location {
                line: *line,
                column: *column,
            }),
            BlueprintError::Invalid { location, .. } => *location,
            _ => None,
        }
    }
}

/// One or more problems found in a blueprint; validation reports all of them at once so the
/// user can fix everything in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlueprintErrors(Vec<BlueprintError>);

impl BlueprintErrors {
    /// Wraps a list of errors. An empty list is allowed but never returned by this crate.
    pub fn new(errors: Vec<BlueprintError>) -> Self {
        BlueprintErrors(errors)
    }

    /// The individual errors, in document order of the checks.
    pub fn errors(&self) -> &[BlueprintError] {
        &self.0
    }

    /// Consumes the wrapper.
    pub fn into_vec(self) -> Vec<BlueprintError> {
        self.0
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, BlueprintError> {
        self.0.iter()
    }
}

impl fmt::Display for BlueprintErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("no error"),
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems in blueprint:", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for BlueprintErrors {}

impl From<BlueprintError> for BlueprintErrors {
    fn from(e: BlueprintError) -> Self {
        BlueprintErrors(vec![e])
    }
}

impl IntoIterator for BlueprintErrors {
    type Item = BlueprintError;
    type IntoIter = std::vec::IntoIter<BlueprintError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a BlueprintErrors {
    type Item = &'a BlueprintError;
    type IntoIter = std::slice::Iter<'a, BlueprintError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_to_lines() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(
            Location::from_offset(src, 0),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::from_offset(src, 6),
            Location { line: 2, column: 1 }
        );
        // byte 9 is after the two-byte 'é': column counts characters.
        assert_eq!(
            Location::from_offset(src, 9),
            Location { line: 2, column: 3 }
        );
        // Mid-character and past-the-end offsets do not panic.
        let _ = Location::from_offset(src, 8);
        let _ = Location::from_offset(src, 999);
    }

    #[test]
    fn display_formats() {
        let e = BlueprintError::Parse {
            line: 12,
            column: 3,
            path: "customizations.user[1]".into(),
            message: "unknown field `passwd`".into(),
        };
        assert_eq!(
            e.to_string(),
            "line 12, column 3: customizations.user[1]: unknown field `passwd`"
        );
        let e = BlueprintError::Invalid {
            path: "name".into(),
            message: "must not be empty".into(),
            location: None,
        };
        assert_eq!(e.to_string(), "name: must not be empty");
    }
}
