//! A structural scan of a JSON text that finds the value at a path of member names without
//! parsing the values it passes: strings are skipped from quote to quote, containers by bracket
//! depth, scalars up to the next delimiter. It does not validate what it skips; where it meets
//! something it does not expect, it says [`Unsure`] and the caller decides another way.

/// The scan met something it does not handle (not an object where a name is looked up, an
/// escaped member name, a text that ends early or goes on after the value).
#[derive(Debug, PartialEq, Eq)]
pub struct Unsure;

/// The text of the value at `names` (a member per name, the last duplicate winning, as when
/// the text is parsed into a value), `Ok(None)` when the path is not there.
///
/// Once the value is found, the scan stops early when none of the path's names occurs quoted
/// (`"name"`) in the rest of the text and nothing there is `\u`-escaped: then no later member
/// can replace it.
pub fn select<'a>(text: &'a [u8], names: &[String]) -> Result<Option<&'a [u8]>, Unsure> {
    let needles: Vec<Vec<u8>> = names
        .iter()
        .map(|n| format!("\"{n}\"").into_bytes())
        .collect();
    let mut s = Scanner {
        text,
        pos: 0,
        needles: &needles,
        settled: false,
    };
    s.whitespace();
    let found = s.value_at(names)?;
    if s.settled {
        return Ok(found);
    }
    s.whitespace();
    if s.pos != text.len() {
        return Err(Unsure);
    }
    Ok(found)
}

struct Scanner<'a, 'n> {
    text: &'a [u8],
    pos: usize,
    /// The path's names, quoted.
    needles: &'n [Vec<u8>],
    /// The value is found and nothing after it can replace it: stop scanning.
    settled: bool,
}

impl<'a> Scanner<'a, '_> {
    fn peek(&self) -> Result<u8, Unsure> {
        self.text.get(self.pos).copied().ok_or(Unsure)
    }

    fn whitespace(&mut self) {
        while matches!(self.text.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Unsure> {
        if self.peek()? != byte {
            return Err(Unsure);
        }
        self.pos += 1;
        Ok(())
    }

    /// At a value: with no names left, skips it and returns its text; otherwise looks the
    /// first name up in it (an object) and goes on with the rest.
    fn value_at(&mut self, names: &[String]) -> Result<Option<&'a [u8]>, Unsure> {
        let Some((first, rest)) = names.split_first() else {
            let start = self.pos;
            self.skip_value()?;
            // A later member could also spell a name with `\u` escapes: then scan on.
            let after = &self.text[self.pos..];
            self.settled = memchr::memmem::find(after, b"\\u").is_none()
                && self
                    .needles
                    .iter()
                    .all(|n| memchr::memmem::find(after, n).is_none());
            return Ok(Some(&self.text[start..self.pos]));
        };
        if self.peek()? != b'{' {
            self.skip_value()?;
            return Ok(None);
        }
        self.pos += 1;
        self.whitespace();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(None);
        }
        let mut found = None;
        loop {
            self.whitespace();
            let name = self.member_name()?;
            self.whitespace();
            self.expect(b':')?;
            self.whitespace();
            if name == first.as_bytes() {
                found = self.value_at(rest)?;
                if self.settled {
                    return Ok(found);
                }
            } else {
                self.skip_value()?;
            }
            self.whitespace();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Ok(found);
                }
                _ => return Err(Unsure),
            }
        }
    }

    /// A member name without escapes (with escapes, the name's text is not its bytes).
    fn member_name(&mut self) -> Result<&'a [u8], Unsure> {
        self.expect(b'"')?;
        let rest = &self.text[self.pos..];
        match rest.iter().position(|&b| b == b'"' || b == b'\\') {
            Some(i) if rest[i] == b'"' => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            _ => Err(Unsure),
        }
    }

    fn skip_value(&mut self) -> Result<(), Unsure> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => self.skip_container(),
            _ => {
                let start = self.pos;
                while let Some(&b) = self.text.get(self.pos) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(Unsure);
                }
                Ok(())
            }
        }
    }

    /// From an opening quote to just past its closing quote. A plain loop: payload strings
    /// are mostly short, where a SIMD search costs more to set up than it saves.
    fn skip_string(&mut self) -> Result<(), Unsure> {
        let mut i = self.pos + 1;
        while let Some(&b) = self.text.get(i) {
            match b {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(());
                }
                // A backslash escapes the byte after it (a `\uXXXX` has no quote in it).
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        Err(Unsure)
    }

    /// From an opening bracket to just past the bracket that closes it.
    fn skip_container(&mut self) -> Result<(), Unsure> {
        let mut depth = 0usize;
        while let Some(&b) = self.text.get(self.pos) {
            match b {
                b'"' => {
                    self.skip_string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(Unsure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(text: &str, path: &[&str]) -> Result<Option<String>, Unsure> {
        let names: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        select(text.as_bytes(), &names)
            .map(|o| o.map(|b| String::from_utf8(b.to_vec()).expect("utf-8")))
    }

    #[test]
    fn finds_values_and_skips_the_rest() {
        let text = r#" {"x":[1,{"a":"}"}],"s":"q\"}\\","a":{"b" : [1, 2] ,"c":-1.5e3}} "#;
        assert_eq!(sel(text, &["a", "b"]), Ok(Some("[1, 2]".into())));
        assert_eq!(sel(text, &["a", "c"]), Ok(Some("-1.5e3".into())));
        assert_eq!(sel(text, &["s"]), Ok(Some(r#""q\"}\\""#.into())));
        assert_eq!(sel(text, &["a", "z"]), Ok(None));
        assert_eq!(sel(text, &["x", "a"]), Ok(None));
        assert_eq!(sel(r#"{"a":1,"a":2}"#, &["a"]), Ok(Some("2".into())));
        assert_eq!(sel(r#"{"a":{"b":1},"a":3}"#, &["a", "b"]), Ok(None));
        assert_eq!(
            sel(r#"{"a":{"b":1,"b":2}}"#, &["a", "b"]),
            Ok(Some("2".into()))
        );
        assert_eq!(
            sel(r#"{"a":{"b":1},"c":{"b":2}}"#, &["a", "b"]),
            Ok(Some("1".into()))
        );
        // Found, and no name of the path follows: the rest is not looked at.
        assert_eq!(
            sel(r#"{"a":1,"z":[} trailing"#, &["a"]),
            Ok(Some("1".into()))
        );
        // An escaped duplicate of the name follows: the scan goes on, and is unsure of it.
        assert_eq!(sel(r#"{"a":1,"\u0061":2}"#, &["a"]), Err(Unsure));
        assert_eq!(
            sel(r#"{"a":{"b":1},"\u0061":{}}"#, &["a", "b"]),
            Err(Unsure)
        );
        // A name of the path follows: the scan goes on, and is unsure of what it cannot read.
        assert_eq!(sel(r#"{"a":1,"z":["a"} trailing"#, &["a"]), Err(Unsure));
        assert_eq!(sel("{}", &["a"]), Ok(None));
        assert_eq!(sel("[1]", &["a"]), Ok(None));
    }

    #[test]
    fn is_unsure_where_it_cannot_tell() {
        assert_eq!(sel(r#"{"a":1} x"#, &["b"]), Err(Unsure));
        assert_eq!(sel(r#"{"a":{"b":1}"#, &["b"]), Err(Unsure));
        assert_eq!(sel(r#"{"\u0061":1}"#, &["a"]), Err(Unsure));
        assert_eq!(sel(r#"{"a":"open"#, &["a"]), Err(Unsure));
        assert_eq!(sel(r#"{"a":}"#, &["a"]), Err(Unsure));
        assert_eq!(sel("not json", &["a"]), Err(Unsure));
        assert_eq!(sel("", &["a"]), Err(Unsure));
    }
}
