//! A structural scan of a JSON text that finds the value at a path of member names without
//! building the values it passes, and checks on its way that the whole text is JSON.
//!
//! The scan decides only where its answer is certainly the one of parsing the text into a
//! `serde_json::Value` (as the general JSONPath does): it accepts a text only when that parse
//! accepts it too, and says [`Unsure`] about everything else, valid or not (a text that is not
//! JSON, escaped member names, numbers with an exponent or hundreds of digits, `\u` escapes of
//! UTF-16 surrogates, deep nesting). The caller then decides by parsing.

/// The scan met something it does not decide (a text that is not JSON, or JSON whose parse it
/// does not mirror).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unsure;

/// Nesting deeper than this is left to the parser (serde_json refuses past 127 levels).
const MAX_DEPTH: usize = 100;

/// Numbers longer than this are left to the parser (past f64's range, serde_json refuses them).
const MAX_NUMBER_LEN: usize = 300;

/// A member name that serde_json's `Value` parse treats specially (its raw-value token).
const SERDE_TOKEN: &[u8] = b"$serde_json::private::RawValue";

/// The text of the value at `names` (a member per name, the last duplicate winning, as when
/// the text is parsed into a value), `Ok(None)` when the path is not there. Either answer means
/// that the whole text is JSON as serde_json parses it.
pub(crate) fn select<'a>(text: &'a [u8], names: &[String]) -> Result<Option<&'a [u8]>, Unsure> {
    let mut found = [None];
    scan(text, &[(0, names)], &mut found)?;
    Ok(found[0])
}

/// [`select`] of two paths in one pass, into `found` (nothing allocated).
pub(crate) fn select_pair<'a>(
    text: &'a [u8],
    first: &[String],
    second: &[String],
    found: &mut [Option<&'a [u8]>; 2],
) -> Result<(), Unsure> {
    *found = [None, None];
    scan(text, &[(0, first), (1, second)], found)
}

/// [`select`] of several paths in one pass over the text: the text of the value at each path
/// (in the order of `paths`), `None` where a path is not there. A path may be a prefix of
/// another (the value is then given for both); the empty path selects the whole text.
pub(crate) fn select_many<'a, P: AsRef<[String]>>(
    text: &'a [u8],
    paths: &[P],
) -> Result<Vec<Option<&'a [u8]>>, Unsure> {
    let mut found = vec![None; paths.len()];
    let wanted: Vec<(usize, &[String])> = paths.iter().map(AsRef::as_ref).enumerate().collect();
    scan(text, &wanted, &mut found)?;
    Ok(found)
}

/// The members of the JSON object `text`, in their order: `each(name, value text)` for every
/// member, and inside the value of the member named `probed`, the values at `wanted` paths (as
/// [`select_many`] finds them there) set into `found`. `Ok` means the whole text is one JSON
/// object as serde_json parses it; `each` may stop the scan with [`Unsure`].
pub(crate) fn object_members<'a>(
    text: &'a [u8],
    probed: &[u8],
    wanted: &[(usize, &[String])],
    found: &mut [Option<&'a [u8]>],
    mut each: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), Unsure>,
) -> Result<(), Unsure> {
    whole(text, |s| {
        if s.peek()? != b'{' {
            return Err(Unsure);
        }
        if s.open(b'}')? {
            return Ok(());
        }
        loop {
            let name = s.member_name()?;
            let start = s.pos;
            if name == probed {
                s.member(wanted, found)?;
            } else {
                s.skip_value()?;
            }
            each(name, &text[start..s.pos])?;
            if !s.next_or_close(b'}')? {
                return Ok(());
            }
        }
    })
}

/// Runs `value` over the one JSON value `text` holds (whitespace around it allowed); `Unsure`
/// unless it ends where the text does.
fn whole<'a>(
    text: &'a [u8],
    value: impl FnOnce(&mut Scanner<'a>) -> Result<(), Unsure>,
) -> Result<(), Unsure> {
    // Outside strings the scan accepts ASCII only; inside them, any UTF-8 (checked where a
    // string holds a byte past ASCII), so an accepted text is UTF-8 throughout.
    let mut s = Scanner {
        text,
        pos: 0,
        depth: 0,
    };
    s.whitespace();
    value(&mut s)?;
    s.whitespace();
    if s.pos != text.len() {
        return Err(Unsure);
    }
    Ok(())
}

/// Scans the whole text, setting `found[index]` to the text at each wanted path.
fn scan<'a>(
    text: &'a [u8],
    wanted: &[(usize, &[String])],
    found: &mut [Option<&'a [u8]>],
) -> Result<(), Unsure> {
    whole(text, |s| {
        let start = s.pos;
        s.values_at(wanted, found)?;
        for &(i, names) in wanted {
            if names.is_empty() {
                found[i] = Some(&text[start..s.pos]);
            }
        }
        Ok(())
    })
}

/// The end of a run of plain string content from `i`: the first quote, backslash or control
/// character, or the end of `text`; with `ascii`, also the first byte past ASCII. Eight bytes at
/// a time: payload strings are mostly short, where a SIMD search costs more to set up than it
/// saves.
fn plain_run_end(text: &[u8], mut i: usize, ascii: bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte below `n` (n <= 0x80); a wrong bit can only follow a right
    // one, so the lowest set bit is always a match.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let past_ascii = if ascii { HIGHS } else { 0 };
    while let Some(chunk) = text.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let hit = below(x, 0x20)
            | below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            | (x & past_ascii);
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while text
        .get(i)
        .is_some_and(|&b| b != b'"' && b != b'\\' && b >= 0x20 && (!ascii || b < 0x80))
    {
        i += 1;
    }
    i
}

/// From `i` inside a string: the end of its plain content (see [`plain_run_end`]), the bytes
/// past ASCII on the way checked to be UTF-8. A quote, backslash or control byte never lies
/// inside a UTF-8 sequence, so cutting there splits no character.
fn utf8_run_end(text: &[u8], i: usize) -> Result<usize, Unsure> {
    let mut i = plain_run_end(text, i, true);
    while text.get(i).is_some_and(|&b| b >= 0x80) {
        let end = plain_run_end(text, i, false);
        std::str::from_utf8(&text[i..end]).map_err(|_| Unsure)?;
        i = plain_run_end(text, end, true);
    }
    Ok(i)
}

struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
    /// Containers open around the position.
    depth: usize,
}

impl<'a> Scanner<'a> {
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

    /// Steps into a container at its opening bracket; true when it is empty (its closing
    /// bracket `close` follows at once, and is stepped over).
    fn open(&mut self, close: u8) -> Result<bool, Unsure> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Unsure);
        }
        self.pos += 1;
        self.whitespace();
        if self.peek()? == close {
            self.pos += 1;
            self.depth -= 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// After a member or element: `,` (then whitespace) gives true, the closing bracket
    /// `close` gives false.
    fn next_or_close(&mut self, close: u8) -> Result<bool, Unsure> {
        self.whitespace();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                self.whitespace();
                Ok(true)
            }
            b if b == close => {
                self.pos += 1;
                self.depth -= 1;
                Ok(false)
            }
            _ => Err(Unsure),
        }
    }

    /// At a value: skips it, and for each wanted `(index, names)` with names left, looks the
    /// first name up in it (an object) and goes on with the rest, setting `found[index]` to the
    /// text where a path ends. A later duplicate member replaces what an earlier one found.
    fn values_at(
        &mut self,
        wanted: &[(usize, &[String])],
        found: &mut [Option<&'a [u8]>],
    ) -> Result<(), Unsure> {
        let wanted_here = wanted.iter().any(|(_, names)| !names.is_empty());
        if !wanted_here || self.peek()? != b'{' {
            return self.skip_value();
        }
        if self.open(b'}')? {
            return Ok(());
        }
        loop {
            let name = self.member_name()?;
            let matches = |names: &[String]| names.first().is_some_and(|n| n.as_bytes() == name);
            let mut matching = wanted.iter().filter(|(_, names)| matches(names));
            match (matching.next(), matching.next()) {
                (None, _) => self.skip_value()?,
                // One path through this member (the common case): nothing to allocate.
                (Some(&(i, names)), None) => self.member(&[(i, &names[1..])], found)?,
                _ => {
                    let inner: Vec<(usize, &[String])> = wanted
                        .iter()
                        .filter(|(_, names)| matches(names))
                        .map(|&(i, names)| (i, &names[1..]))
                        .collect();
                    self.member(&inner, found)?;
                }
            }
            if !self.next_or_close(b'}')? {
                return Ok(());
            }
        }
    }

    /// At the value of a member that the paths `inner` (their names below it) go through:
    /// forgets what an earlier duplicate of the member gave them, and finds them in it.
    fn member(
        &mut self,
        inner: &[(usize, &[String])],
        found: &mut [Option<&'a [u8]>],
    ) -> Result<(), Unsure> {
        for &(i, _) in inner {
            found[i] = None;
        }
        let start = self.pos;
        self.values_at(inner, found)?;
        for &(i, rest) in inner {
            if rest.is_empty() {
                found[i] = Some(&self.text[start..self.pos]);
            }
        }
        Ok(())
    }

    /// A member name without escapes (with escapes, the name's text is not its bytes), and
    /// the `:` after it.
    fn member_name(&mut self) -> Result<&'a [u8], Unsure> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = utf8_run_end(self.text, start)?;
        let name = &self.text[start..end];
        if self.text.get(end) != Some(&b'"') || name == SERDE_TOKEN {
            return Err(Unsure);
        }
        self.pos = end + 1;
        self.whitespace();
        self.expect(b':')?;
        self.whitespace();
        Ok(name)
    }

    fn skip_value(&mut self) -> Result<(), Unsure> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => self.skip_object(),
            b'[' => self.skip_array(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Unsure),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Unsure> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(Unsure);
        }
        self.pos += word.len();
        Ok(())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, not too long; an exponent is left to the parser.
    fn number(&mut self) -> Result<(), Unsure> {
        let start = self.pos;
        if self.peek()? == b'-' {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return Err(Unsure),
        }
        if self.text.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !self.peek()?.is_ascii_digit() {
                return Err(Unsure);
            }
            self.digits();
        }
        if matches!(self.text.get(self.pos), Some(b'e' | b'E')) || self.pos - start > MAX_NUMBER_LEN
        {
            return Err(Unsure);
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.text.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    /// From an opening quote to just past its closing quote: no control characters, only
    /// JSON's escapes.
    fn skip_string(&mut self) -> Result<(), Unsure> {
        let mut i = self.pos + 1;
        loop {
            i = utf8_run_end(self.text, i)?;
            match self.text.get(i).ok_or(Unsure)? {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(());
                }
                b'\\' => match self.text.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') => {
                        let hex = self.text.get(i + 2..i + 6).ok_or(Unsure)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(Unsure);
                        }
                        // A surrogate's validity depends on what follows it: the parser decides.
                        if matches!(hex[0], b'd' | b'D')
                            && matches!(hex[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                        {
                            return Err(Unsure);
                        }
                        i += 6;
                    }
                    _ => return Err(Unsure),
                },
                _ => return Err(Unsure),
            }
        }
    }

    fn skip_object(&mut self) -> Result<(), Unsure> {
        if self.open(b'}')? {
            return Ok(());
        }
        loop {
            self.member_name()?;
            self.skip_value()?;
            if !self.next_or_close(b'}')? {
                return Ok(());
            }
        }
    }

    fn skip_array(&mut self) -> Result<(), Unsure> {
        if self.open(b']')? {
            return Ok(());
        }
        loop {
            self.skip_value()?;
            if !self.next_or_close(b']')? {
                return Ok(());
            }
        }
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
        let text = r#" {"x":[1,{"a":"}"}],"s":"q\"}\\","a":{"b" : [1, 2] ,"c":-1.5}} "#;
        assert_eq!(sel(text, &["a", "b"]), Ok(Some("[1, 2]".into())));
        assert_eq!(sel(text, &["a", "c"]), Ok(Some("-1.5".into())));
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
        assert_eq!(
            sel(r#"{"a":12345678901234567890123,"b":"\u00e9\n"}"#, &["a"]),
            Ok(Some("12345678901234567890123".into()))
        );
        assert_eq!(sel("{}", &["a"]), Ok(None));
        assert_eq!(sel("[1]", &["a"]), Ok(None));
        assert_eq!(sel(r#""a""#, &["a"]), Ok(None));
    }

    fn many(text: &str, paths: &[&[&str]]) -> Result<Vec<Option<String>>, Unsure> {
        let owned: Vec<Vec<String>> = paths
            .iter()
            .map(|p| p.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        select_many(text.as_bytes(), &owned).map(|found| {
            found
                .into_iter()
                .map(|o| o.map(|b| String::from_utf8(b.to_vec()).expect("utf-8")))
                .collect()
        })
    }

    #[test]
    fn selects_several_paths_in_one_pass_as_one_at_a_time() {
        let text = r#"{"x":[1,{"a":"}"}],"s":"q","a":{"b":[1, 2],"c":-1.5},"d":{"e":{"f":true}}}"#;
        let paths: &[&[&str]] = &[
            &["a", "b"],
            &["a"],
            &["a", "c"],
            &["s"],
            &["d", "e", "f"],
            &["d", "z"],
            &["x", "a"],
            &[],
        ];
        let found = many(text, paths).unwrap();
        for (path, got) in paths.iter().zip(&found) {
            let one = if path.is_empty() {
                Some(text.to_owned())
            } else {
                sel(text, path).unwrap()
            };
            assert_eq!(got, &one, "{path:?}");
        }
        assert_eq!(found[1].as_deref(), Some(r#"{"b":[1, 2],"c":-1.5}"#));
        // A later duplicate replaces all an earlier one gave, below it too.
        assert_eq!(
            many(
                r#"{"a":{"b":1,"c":2},"a":{"b":3}}"#,
                &[&["a", "b"], &["a", "c"]]
            ),
            Ok(vec![Some("3".into()), None])
        );
        assert_eq!(
            many(r#"{"a":{"b":1},"a":5}"#, &[&["a", "b"], &["a"]]),
            Ok(vec![None, Some("5".into())])
        );
        assert_eq!(many(r#"{"a":1} x"#, &[&["a"], &["b"]]), Err(Unsure));
    }

    proptest::proptest! {
        /// The word-at-a-time search stops where a byte-by-byte one does.
        #[test]
        fn plain_runs_end_at_the_first_special_byte(
            text in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b' ', 0x7f, 0x80, 0xe9, 0xff, b'"', b'\\', 0x00, 0x1f, 0x20, 0x21]),
                0..40,
            ),
            start in 0usize..40,
        ) {
            let start = start.min(text.len());
            for ascii in [false, true] {
                let naive = text[start..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20 || (ascii && b >= 0x80))
                    .map_or(text.len(), |p| start + p);
                proptest::prop_assert_eq!(plain_run_end(&text, start, ascii), naive);
            }
        }
    }

    #[test]
    fn is_unsure_where_it_cannot_tell() {
        // Not JSON, also after the key is found.
        for text in [
            r#"{"a":1} x"#,
            r#"{"a":1,"z":[} trailing"#,
            r#"{"a":1, BROKEN"#,
            r#"{"a":{"b":1}"#,
            r#"{"a":"open"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,"z":"\q"}"#,
            r#"{"a":1,"z":"\u00g1"}"#,
            "{\"a\":1,\"z\":\"\u{1}\"}",
            "not json",
            "",
        ] {
            assert_eq!(sel(text, &["a"]), Err(Unsure), "{text}");
        }
        assert_eq!(
            select(b"{\"a\":1,\"z\":\"Zo\xe9\"}", &["a".to_owned()]),
            Err(Unsure)
        );
        // JSON whose parse the scan does not mirror.
        for text in [
            r#"{"\u0061":1}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"a":1e5}"#,
            r#"{"a":1,"z":"\ud83d\ude00"}"#,
            r#"{"$serde_json::private::RawValue":"1"}"#,
        ] {
            assert_eq!(sel(text, &["a"]), Err(Unsure), "{text}");
        }
        let deep = format!(r#"{{"a":1,"z":{}{}}}"#, "[".repeat(150), "]".repeat(150));
        assert_eq!(sel(&deep, &["a"]), Err(Unsure));
        let long = format!(r#"{{"a":1{}}}"#, "0".repeat(400));
        assert_eq!(sel(&long, &["a"]), Err(Unsure));
    }
}
