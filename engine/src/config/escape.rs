//! Writing template values into TOML so that a value can never change the file's structure.
//!
//! The template renders every `{{ … }}` as a placeholder; [`place`] then reads the rendered text
//! as TOML reads it (strings, comments, tables, arrays, inline tables) and writes each value in
//! the form its place needs:
//!
//! - inside `"…"` or `"""…"""`: escaped (`\"`, `\\`, `\n`, `\u0001`, …), so any value arrives
//!   intact and cannot end the string;
//! - inside `'…'` or `'''…'''` (no escapes exist there) and in a `# comment`: written as it is
//!   when it cannot end the string or comment, otherwise refused;
//! - where a value goes (`rate = {{ rate }}`, an array item): as a typed TOML literal, a string
//!   quoted and escaped, a number, a boolean, an array, an inline table;
//! - where a key goes (`[sinks.{{ id }}]`): as a quoted key.
//!
//! Text the template itself produced (a `{% set %}` block, a macro, `tojson`) is marked safe by
//! minijinja; it is written as it is where a value or key goes, and escaped like any other text
//! inside a string.

use std::fmt::Write as _;

/// Where a value lands in the TOML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Where a key goes: a table header, the left of `=`, a key of an inline table.
    Key,
    /// Where a value goes: the right of `=`, an array item.
    Value,
    /// Inside `"…"`.
    Basic,
    /// Inside `"""…"""`.
    MultiBasic,
    /// Inside `'…'`.
    Literal,
    /// Inside `'''…'''`.
    MultiLiteral,
    /// Inside a `# comment`.
    Comment,
}

/// Reads TOML text one piece at a time and knows, at the end of each piece, what [`Place`] the
/// next character is in. It follows strings, comments and brackets only: it does not check the
/// syntax (the TOML parser does that afterwards).
#[derive(Debug, Clone)]
pub struct Lexer {
    /// Open brackets: `h` a table header, `[` an array, `{` an inline table.
    stack: Vec<u8>,
    /// Whether a key or a value comes next, outside strings and comments.
    bare: Place,
    /// The string or comment the text is in, if any.
    inside: Option<Place>,
    /// Inside a `"…"` or `"""…"""` string, right after a backslash.
    escaped: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer {
            stack: Vec::new(),
            bare: Place::Key,
            inside: None,
            escaped: false,
        }
    }
}

impl Lexer {
    /// The place the next character is in.
    pub fn place(&self) -> Place {
        match self.inside {
            Some(p) => p,
            None if self.stack.last() == Some(&b'h') => Place::Key,
            None => self.bare,
        }
    }

    /// True right after a backslash inside a `"…"` string: a value written here would combine
    /// with it into an escape sequence.
    pub fn after_backslash(&self) -> bool {
        self.escaped
    }

    /// Reads `text`, which continues everything read before.
    pub fn feed(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let run = |q: u8| bytes[i..].iter().take_while(|&&c| c == q).count();
            match self.inside {
                Some(Place::Comment) => {
                    if b == b'\n' {
                        self.inside = None;
                        self.newline();
                    }
                }
                Some(Place::Basic) => {
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if b == b'"' {
                        self.end_string();
                    } else if b == b'\n' {
                        self.inside = None;
                        self.newline();
                    }
                }
                Some(Place::MultiBasic) => {
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if b == b'"' && run(b'"') >= 3 {
                        // Up to two more quotes belong to the string's text.
                        i += run(b'"').min(5) - 1;
                        self.end_string();
                    }
                }
                Some(Place::Literal) => {
                    if b == b'\'' {
                        self.end_string();
                    } else if b == b'\n' {
                        self.inside = None;
                        self.newline();
                    }
                }
                Some(Place::MultiLiteral) => {
                    if b == b'\'' && run(b'\'') >= 3 {
                        i += run(b'\'').min(5) - 1;
                        self.end_string();
                    }
                }
                Some(_) | None => match b {
                    b'#' => self.inside = Some(Place::Comment),
                    b'"' if run(b'"') >= 3 => {
                        i += 2;
                        self.inside = Some(Place::MultiBasic);
                    }
                    b'"' => self.inside = Some(Place::Basic),
                    b'\'' if run(b'\'') >= 3 => {
                        i += 2;
                        self.inside = Some(Place::MultiLiteral);
                    }
                    b'\'' => self.inside = Some(Place::Literal),
                    b'\n' => self.newline(),
                    b'=' => self.bare = Place::Value,
                    b'[' => {
                        let header = self.stack.last() == Some(&b'h')
                            || (self.stack.is_empty() && self.bare == Place::Key);
                        self.stack.push(if header { b'h' } else { b'[' });
                        if !header {
                            self.bare = Place::Value;
                        }
                    }
                    // Closing a table header (the pop happens either way).
                    b']' if self.stack.pop() == Some(b'h') => self.bare = Place::Key,
                    b'{' => {
                        self.stack.push(b'{');
                        self.bare = Place::Key;
                    }
                    b'}' => {
                        self.stack.pop();
                        self.bare = Place::Value;
                    }
                    b',' => match self.stack.last() {
                        Some(b'{') => self.bare = Place::Key,
                        Some(b'[') => self.bare = Place::Value,
                        _ => {}
                    },
                    _ => {}
                },
            }
            i += 1;
        }
    }

    fn end_string(&mut self) {
        self.inside = None;
        self.escaped = false;
    }

    fn newline(&mut self) {
        // A line break ends a key/value pair at the top level (and a broken header); inside a
        // multi-line array or an inline table the value goes on.
        if self.stack.iter().all(|&b| b == b'h') {
            self.stack.clear();
            self.bare = Place::Key;
        }
    }
}

/// Appends `text` escaped for a TOML basic string (without the quotes).
pub fn escape_basic(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `text` as a quoted TOML basic string.
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    escape_basic(text, &mut out);
    out.push('"');
    out
}

/// Why `text` cannot be written as it is in `place` (a literal string or a comment), if it
/// cannot: it would end the string or the comment, or TOML does not allow it there.
pub fn unwritable(text: &str, place: Place) -> Option<&'static str> {
    let multi_line = place == Place::MultiLiteral;
    for c in text.chars() {
        match c {
            '\'' if place != Place::Comment => return Some("a `'`"),
            '\n' if multi_line => {}
            '\n' | '\r' => return Some("a line break"),
            '\t' => {}
            c if c.is_control() => return Some("a control character"),
            _ => {}
        }
    }
    None
}

/// `value` as a TOML literal: strings quoted and escaped, numbers, booleans, date-times,
/// arrays and inline tables (keys quoted).
pub fn literal(value: &toml::Value, out: &mut String) {
    match value {
        toml::Value::String(s) => out.push_str(&quoted(s)),
        toml::Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        toml::Value::Float(f) => out.push_str(&toml::Value::Float(*f).to_string()),
        toml::Value::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        toml::Value::Datetime(d) => {
            let _ = write!(out, "{d}");
        }
        toml::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                literal(item, out);
            }
            out.push(']');
        }
        toml::Value::Table(t) => {
            out.push('{');
            for (i, (k, v)) in t.iter().enumerate() {
                out.push_str(if i > 0 { ", " } else { " " });
                out.push_str(&quoted(k));
                out.push_str(" = ");
                literal(v, out);
            }
            out.push_str(if t.is_empty() { "}" } else { " }" });
        }
    }
}

/// `text` as a JSONPath (RFC 9535) single-quoted string literal, quotes included, for building
/// filter expressions from values: `@.data.region == {{ region | jsonpath_literal }}`.
pub fn jsonpath_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Why `text` is not a safe file name (one path segment), if it is not.
pub fn path_segment_problem(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        Some("it is empty")
    } else if text == "." || text == ".." {
        Some("`.` and `..` are not file names")
    } else if text.contains('/') || text.contains('\\') {
        Some("it contains a path separator (`/` or `\\`)")
    } else if text.contains("..") {
        Some("it contains `..`")
    } else if text.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place_after(text: &str) -> Place {
        let mut l = Lexer::default();
        l.feed(text);
        l.place()
    }

    #[test]
    fn the_lexer_knows_where_a_value_lands() {
        assert_eq!(place_after(""), Place::Key);
        assert_eq!(place_after("a = "), Place::Value);
        assert_eq!(place_after("a = \""), Place::Basic);
        assert_eq!(place_after("a = \"x\\\""), Place::Basic);
        assert_eq!(place_after("a = \"x\\\\\""), Place::Value);
        assert_eq!(place_after("a = '"), Place::Literal);
        assert_eq!(place_after("a = '\\'"), Place::Value);
        assert_eq!(place_after("a = \"\"\"x\"\""), Place::MultiBasic);
        assert_eq!(place_after("a = \"\"\"x\"\"\"\"\" "), Place::Value);
        assert_eq!(place_after("a = '''x\n''"), Place::MultiLiteral);
        assert_eq!(place_after("a = 1 # "), Place::Comment);
        assert_eq!(place_after("a = 1 # \"\n"), Place::Key);
        assert_eq!(place_after("[sinks."), Place::Key);
        assert_eq!(place_after("[[sinks."), Place::Key);
        assert_eq!(place_after("[a]\nb = [1, "), Place::Value);
        assert_eq!(place_after("b = [\n  1,\n  "), Place::Value);
        assert_eq!(place_after("b = { x = 1, "), Place::Key);
        assert_eq!(place_after("b = { x = "), Place::Value);
        assert_eq!(place_after("b = { x = [1], y = { z = 2 } }\n"), Place::Key);
        assert_eq!(place_after("a = \"unclosed\nb = "), Place::Value);
    }

    #[test]
    fn escapes_cannot_end_a_basic_string() {
        let q = quoted("x\"\n[sinks.evil]\\\u{1}\u{7f}");
        assert_eq!(q, "\"x\\\"\\n[sinks.evil]\\\\\\u0001\\u007F\"");
        let t: toml::Table = toml::from_str(&format!("a = {q}")).unwrap();
        assert_eq!(t["a"].as_str(), Some("x\"\n[sinks.evil]\\\u{1}\u{7f}"));
    }

    #[test]
    fn literals_and_comments_refuse_what_would_end_them() {
        assert_eq!(unwritable("it's", Place::Literal), Some("a `'`"));
        assert_eq!(unwritable("a\nb", Place::Literal), Some("a line break"));
        assert_eq!(unwritable("a\nb", Place::MultiLiteral), None);
        assert_eq!(unwritable("a\nb", Place::Comment), Some("a line break"));
        assert_eq!(unwritable("it's\tfine", Place::Comment), None);
        assert_eq!(
            unwritable("\u{0}", Place::Literal),
            Some("a control character")
        );
    }

    #[test]
    fn path_segments() {
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "x..y", "a\nb"] {
            assert!(path_segment_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["INC-123", "inc_7.2", "é"] {
            assert!(path_segment_problem(good).is_none(), "{good:?}");
        }
    }
}
