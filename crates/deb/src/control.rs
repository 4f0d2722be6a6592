//! A reader for deb822 paragraphs (`Packages`, `Release`, `*.sources`, control files).
//!
//! Zero-copy: fields borrow from the input. Continuation lines stay inside the value
//! (with their newlines), comment lines (`#`) are skipped, and paragraphs are separated
//! by one or more blank lines.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("line {line}: the data is not valid UTF-8")]
    NotUtf8 { line: usize },
    #[error("line {line}: expected `Field: value`, found {found:?}")]
    BadLine { line: usize, found: String },
    #[error("line {line}: a continuation line (starting with a space) has no field before it")]
    OrphanContinuation { line: usize },
}

/// One paragraph: its fields in file order and the line it starts on (1-based).
#[derive(Debug, Clone)]
pub struct Paragraph<'a> {
    fields: Vec<(&'a str, &'a str)>,
    line: usize,
}

impl<'a> Paragraph<'a> {
    /// The value of a field, matched case-insensitively as deb822 requires.
    pub fn field(&self, name: &str) -> Option<&'a str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }

    /// The line (1-based) where the paragraph starts.
    pub fn line(&self) -> usize {
        self.line
    }

    pub fn fields(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.fields.iter().copied()
    }
}

/// Iterates over the paragraphs of a deb822 text.
pub struct Paragraphs<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    /// Set once an error has been reported: the iterator then ends.
    done: bool,
    /// An error found before iteration started (invalid UTF-8).
    pending: Option<ControlError>,
}

impl<'a> Paragraphs<'a> {
    /// Reads paragraphs from bytes; invalid UTF-8 is reported by the first `next()`.
    pub fn new(text: &'a [u8]) -> Paragraphs<'a> {
        match std::str::from_utf8(text) {
            Ok(text) => Paragraphs::from_text(text),
            Err(e) => {
                let line = 1 + text[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                Paragraphs {
                    pending: Some(ControlError::NotUtf8 { line }),
                    ..Paragraphs::from_text("")
                }
            }
        }
    }

    pub fn from_text(text: &'a str) -> Paragraphs<'a> {
        Paragraphs {
            text,
            pos: 0,
            line: 1,
            done: false,
            pending: None,
        }
    }

    /// The next line without its newline, advancing the cursor.
    fn next_line(&mut self) -> Option<&'a str> {
        if self.pos >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.pos..];
        let end = rest.find('\n').unwrap_or(rest.len());
        self.pos += (end + 1).min(rest.len());
        self.line += 1;
        Some(rest[..end].strip_suffix('\r').unwrap_or(&rest[..end]))
    }
}

impl<'a> Iterator for Paragraphs<'a> {
    type Item = Result<Paragraph<'a>, ControlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(err) = self.pending.take() {
            self.done = true;
            return Some(Err(err));
        }
        if self.done {
            return None;
        }
        let mut fields: Vec<(&'a str, &'a str)> = Vec::with_capacity(24);
        let mut start_line = 0;
        // Byte offset in `text` where the current field's value starts, to extend it
        // over continuation lines without copying.
        let mut value_start = 0usize;
        loop {
            let line_no = self.line;
            let line_start = self.pos;
            let Some(line) = self.next_line() else { break };
            if line.trim().is_empty() {
                if fields.is_empty() {
                    continue;
                }
                break;
            }
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let Some(last) = fields.last_mut() else {
                    self.done = true;
                    return Some(Err(ControlError::OrphanContinuation { line: line_no }));
                };
                let end = line_start + line.len();
                last.1 = self.text[value_start..end].trim();
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                self.done = true;
                return Some(Err(ControlError::BadLine {
                    line: line_no,
                    found: line.chars().take(80).collect(),
                }));
            };
            if fields.is_empty() {
                start_line = line_no;
            }
            value_start = line_start + name.len() + 1;
            fields.push((name.trim(), value.trim()));
        }
        if fields.is_empty() {
            None
        } else {
            Some(Ok(Paragraph {
                fields,
                line: start_line,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_continuations() {
        let text = b"Package: a\nVersion: 1\nDescription: short\n long line\n .\n more\n\n\n# comment\nPackage: b\r\nversion: 2\n";
        let ps: Vec<_> = Paragraphs::new(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].field("package"), Some("a"));
        assert_eq!(
            ps[0].field("Description"),
            Some("short\n long line\n .\n more")
        );
        assert_eq!(ps[1].field("Version"), Some("2"));
        assert_eq!(ps[1].line(), 10);
    }

    #[test]
    fn errors_name_the_line() {
        let err = Paragraphs::new(b"Package: a\nnonsense\n")
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err,
            ControlError::BadLine {
                line: 2,
                found: "nonsense".into()
            }
        );
        let err = Paragraphs::new(b" cont\n").next().unwrap().unwrap_err();
        assert_eq!(err, ControlError::OrphanContinuation { line: 1 });
        let err = Paragraphs::new(b"A: b\n\nC: \xff\n")
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(err, ControlError::NotUtf8 { line: 3 });
    }
}
