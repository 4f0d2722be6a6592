//! Strict TOML/JSON decoding with errors that name the line, column and field path.

use std::fmt::Write as _;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{BlueprintError, Location};
use crate::model::Blueprint;

/// One step of a field path: a key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path as `customizations.user[1].name`.
pub(crate) fn format_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// Field path of a decoding error. For an unknown key the path names the table that holds it
/// (`customizations.user[1]`), since the message already names the key.
fn error_path(path: &serde_path_to_error::Path, message: &str) -> String {
    let mut segs = segs_from_track(path);
    if let Some(Seg::Key(last)) = segs.last()
        && message.starts_with(&format!("unknown field `{last}`"))
    {
        segs.pop();
    }
    format_path(&segs)
}

fn segs_from_track(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// Makes serde's wording friendlier where it matters for blueprint authors.
fn polish(message: &str) -> String {
    let mut m = message.trim_end().to_owned();
    if m.starts_with("unknown field") {
        m.push_str(" (check the spelling; osbuild key names mix `-` and `_`)");
    }
    m
}

/// Decodes TOML text into a [`Blueprint`] without semantic validation.
pub(crate) fn from_toml(src: &str) -> Result<Blueprint, BlueprintError> {
    let de = toml::Deserializer::parse(src).map_err(|e| toml_error(src, &e, String::new()))?;
    match serde_path_to_error::deserialize::<_, Blueprint>(de) {
        Ok(bp) => Ok(bp),
        Err(err) => {
            let path = error_path(err.path(), err.inner().message());
            Err(toml_error(src, err.inner(), path))
        }
    }
}

fn toml_error(src: &str, err: &toml::de::Error, path: String) -> BlueprintError {
    let loc = err
        .span()
        .map(|span| Location::from_offset(src, span.start));
    BlueprintError::Parse {
        line: loc.map_or(0, |l| l.line),
        column: loc.map_or(0, |l| l.column),
        path,
        message: polish(err.message()),
    }
}

/// Decodes JSON text into a [`Blueprint`] without semantic validation.
pub(crate) fn from_json(src: &str) -> Result<Blueprint, BlueprintError> {
    let mut de = serde_json::Deserializer::from_str(src);
    let bp = match serde_path_to_error::deserialize::<_, Blueprint>(&mut de) {
        Ok(bp) => bp,
        Err(err) => {
            let path = error_path(err.path(), &err.inner().to_string());
            return Err(json_error(err.inner(), path));
        }
    };
    de.end().map_err(|e| json_error(&e, String::new()))?;
    Ok(bp)
}

fn json_error(err: &serde_json::Error, path: String) -> BlueprintError {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    BlueprintError::Parse {
        line: err.line(),
        column: err.column(),
        path,
        message: polish(message),
    }
}

/// Finds where a field path is in TOML source, falling back to the deepest existing parent
/// (a missing required key is reported at its table).
pub(crate) fn locate_toml(src: &str, segs: &[Seg]) -> Option<Location> {
    let root = DeTable::parse(src).ok()?;
    let mut span = root.span();
    let mut current: Current<'_, '_> = Current::Table(root.get_ref());
    for seg in segs {
        let next: &Spanned<DeValue<'_>> = match (seg, current) {
            (Seg::Key(k), Current::Table(t)) => {
                match t.iter().find(|(key, _)| key.get_ref() == k) {
                    Some((key, value)) => {
                        // Point at the key for scalars (where the user types), at the value for
                        // tables/arrays whose key span is the header.
                        span = if value.get_ref().is_table() || value.get_ref().is_array() {
                            key.span()
                        } else {
                            value.span()
                        };
                        value
                    }
                    None => break,
                }
            }
            (Seg::Index(i), Current::Array(a)) => match a.get(*i) {
                Some(v) => {
                    span = v.span();
                    v
                }
                None => break,
            },
            _ => break,
        };
        current = match next.get_ref() {
            DeValue::Table(t) => Current::Table(t),
            DeValue::Array(a) => Current::Array(a),
            _ => Current::Scalar,
        };
    }
    Some(Location::from_offset(src, span.start))
}

#[derive(Clone, Copy)]
enum Current<'a, 'i> {
    Table(&'a DeTable<'i>),
    Array(&'a [Spanned<DeValue<'i>>]),
    Scalar,
}
