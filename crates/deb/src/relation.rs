//! Relationship fields (`Depends`, `Pre-Depends`, `Provides`, `Conflicts`, ...).
//!
//! A field is a comma-separated list of groups; a group is a `|`-separated list of
//! alternatives; an alternative is `name[:arch] [(op version)] [[archs]] [<profiles>]`.
//! Architecture restrictions and build profiles only appear in source packages; they are
//! parsed and dropped here because binary indexes are per architecture already.

use std::fmt;
use thiserror::Error;

/// A version constraint operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    Lt = 1,
    Le = 2,
    Eq = 3,
    Ge = 4,
    Gt = 5,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Lt,
            // `<` and `>` are the deprecated spellings of `<=` and `>=`.
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    pub fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Lt,
            2 => Op::Le,
            3 => Op::Eq,
            4 => Op::Ge,
            5 => Op::Gt,
            _ => return None,
        })
    }

    /// Whether `ordering` (candidate compared with the constraint's version) satisfies it.
    pub fn accepts(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Lt => ordering == Less,
            Op::Le => ordering != Greater,
            Op::Eq => ordering == Equal,
            Op::Ge => ordering != Less,
            Op::Gt => ordering == Greater,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alternative of a relation group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation<'a> {
    pub name: &'a str,
    /// The architecture qualifier after `:` (`any`, `native`, or an architecture).
    pub arch: Option<&'a str>,
    pub constraint: Option<(Op, &'a str)>,
}

impl fmt::Display for Relation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if let Some(arch) = self.arch {
            write!(f, ":{arch}")?;
        }
        if let Some((op, v)) = self.constraint {
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid relation {text:?}: {reason}")]
pub struct RelationError {
    pub text: String,
    pub reason: &'static str,
}

/// Parses a relationship field into groups of alternatives.
pub fn parse(field: &str) -> Result<Vec<Vec<Relation<'_>>>, RelationError> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        if group.trim().is_empty() {
            // Tolerate trailing commas, as dpkg does.
            continue;
        }
        let alts = group
            .split('|')
            .map(parse_one)
            .collect::<Result<Vec<_>, _>>()?;
        groups.push(alts);
    }
    Ok(groups)
}

/// Parses one alternative, e.g. `libc6:any (>= 2.36)`.
pub fn parse_one(text: &str) -> Result<Relation<'_>, RelationError> {
    let err = |reason| RelationError {
        text: text.trim().to_string(),
        reason,
    };
    let mut rest = text.trim();
    // Drop `[arch list]` and `<profiles>` restrictions.
    if let Some(i) = rest
        .find(['[', '<'])
        .filter(|&i| !rest[..i].contains('(') || rest[..i].contains(')'))
    {
        let (head, tail) = rest.split_at(i);
        if !tail.trim_end().ends_with([']', '>']) {
            return Err(err("unterminated restriction list"));
        }
        rest = head.trim_end();
    }
    let (name_part, constraint) = match rest.find('(') {
        Some(i) => {
            let inner = rest[i + 1..]
                .strip_suffix(')')
                .ok_or_else(|| err("missing `)` after the version"))?
                .trim();
            let op_len = inner
                .find(|c: char| !matches!(c, '<' | '>' | '='))
                .ok_or_else(|| err("missing version after the operator"))?;
            let op = Op::parse(&inner[..op_len]).ok_or_else(|| err("unknown operator"))?;
            let version = inner[op_len..].trim();
            if version.is_empty() || version.contains(char::is_whitespace) {
                return Err(err("malformed version"));
            }
            (rest[..i].trim(), Some((op, version)))
        }
        None => (rest, None),
    };
    let (name, arch) = match name_part.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (name_part, None),
    };
    let valid_name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    };
    if !valid_name(name) {
        return Err(err("bad package name"));
    }
    if arch
        .is_some_and(|a| a.is_empty() || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(err("bad architecture qualifier"));
    }
    Ok(Relation {
        name,
        arch,
        constraint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_groups() {
        let g = parse(
            "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, python3:any, foo [amd64] <!nocheck>,",
        )
        .unwrap();
        assert_eq!(g.len(), 4);
        assert_eq!(
            g[0][0],
            Relation {
                name: "libc6",
                arch: None,
                constraint: Some((Op::Ge, "2.34"))
            }
        );
        assert_eq!(g[1].len(), 2);
        assert_eq!(g[1][1].name, "debconf-2.0");
        assert_eq!(g[2][0].arch, Some("any"));
        assert_eq!(g[3][0].name, "foo");
        let g = parse("a (<< 1:2.0~), b (>2), c(=1)").unwrap();
        assert_eq!(g[0][0].constraint, Some((Op::Lt, "1:2.0~")));
        assert_eq!(g[1][0].constraint, Some((Op::Ge, "2")));
        assert_eq!(g[2][0].constraint, Some((Op::Eq, "1")));
        assert_eq!(g[0][0].to_string(), "a (<< 1:2.0~)");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["a (>= )", "a (~ 1)", "A", "a (>= 1", "a:", "a b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
