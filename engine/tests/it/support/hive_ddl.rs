//! A strict checker for the Hive DDL the `ddl` sink writes (Hive on EMR and Athena DDL), for the
//! pitfalls that lenient SQL parsers (sqlparser-rs included) accept and real Hive rejects:
//! reserved words as unquoted names (`date`, `hour`…), trailing commas, `STRUCT<x STRING>`
//! without the colon, and clauses out of Hive's order (LOCATION before PARTITIONED BY).
//!
//! It follows the clause order of Hive's grammar (`createTableStatement` in HiveParser.g):
//! `CREATE [EXTERNAL] TABLE [IF NOT EXISTS] name (cols) [COMMENT] [PARTITIONED BY (cols)]
//! [ROW FORMAT …] [STORED AS …|STORED BY '…' [WITH SERDEPROPERTIES (…)]] [LOCATION '…']
//! [TBLPROPERTIES (…)]`, and also checks `DROP TABLE|VIEW [IF EXISTS] name` and
//! `MSCK REPAIR TABLE name`. Other statements are not its business.

/// Hive 3's reserved keywords (LanguageManual DDL, "Reserved Keywords"); as names they need
/// backticks.
pub(crate) const RESERVED: &[&str] = &[
    "ALL",
    "ALTER",
    "AND",
    "ARRAY",
    "AS",
    "AUTHORIZATION",
    "BETWEEN",
    "BIGINT",
    "BINARY",
    "BOOLEAN",
    "BOTH",
    "BY",
    "CASE",
    "CAST",
    "CHAR",
    "COLUMN",
    "CONF",
    "CREATE",
    "CROSS",
    "CUBE",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIMESTAMP",
    "CURSOR",
    "DATABASE",
    "DATE",
    "DECIMAL",
    "DELETE",
    "DESCRIBE",
    "DISTINCT",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "EXCHANGE",
    "EXISTS",
    "EXTENDED",
    "EXTERNAL",
    "FALSE",
    "FETCH",
    "FLOAT",
    "FOLLOWING",
    "FOR",
    "FROM",
    "FULL",
    "FUNCTION",
    "GRANT",
    "GROUP",
    "GROUPING",
    "HAVING",
    "IF",
    "IMPORT",
    "IN",
    "INNER",
    "INSERT",
    "INT",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "LATERAL",
    "LEFT",
    "LESS",
    "LIKE",
    "LOCAL",
    "MACRO",
    "MAP",
    "MORE",
    "NONE",
    "NOT",
    "NULL",
    "OF",
    "ON",
    "OR",
    "ORDER",
    "OUT",
    "OUTER",
    "OVER",
    "PARTIALSCAN",
    "PARTITION",
    "PERCENT",
    "PRECEDING",
    "PRESERVE",
    "PROCEDURE",
    "RANGE",
    "READS",
    "REDUCE",
    "REVOKE",
    "RIGHT",
    "ROLLUP",
    "ROW",
    "ROWS",
    "SELECT",
    "SET",
    "SMALLINT",
    "TABLE",
    "TABLESAMPLE",
    "THEN",
    "TIMESTAMP",
    "TO",
    "TRANSFORM",
    "TRIGGER",
    "TRUE",
    "TRUNCATE",
    "UNBOUNDED",
    "UNION",
    "UNIQUEJOIN",
    "UPDATE",
    "USER",
    "USING",
    "UTC_TMESTAMP",
    "VALUES",
    "VARCHAR",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "COMMIT",
    "ONLY",
    "REGEXP",
    "RLIKE",
    "ROLLBACK",
    "START",
    "CACHE",
    "CONSTRAINT",
    "FOREIGN",
    "PRIMARY",
    "REFERENCES",
    "DAYOFWEEK",
    "EXTRACT",
    "FLOOR",
    "INTEGER",
    "PRECISION",
    "VIEWS",
    "TIME",
    "NUMERIC",
    "SYNC",
    "DEFAULT",
    "HOUR",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Str(String),
    Num(String),
    Punct(char),
}

fn tokenize(sql: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '`' {
            let start = i + 1;
            i = start;
            while i < chars.len() && chars[i] != '`' {
                i += 1;
            }
            if i >= chars.len() {
                return Err("unclosed backtick".into());
            }
            out.push(Tok::Quoted(chars[start..i].iter().collect()));
            i += 1;
        } else if c == '\'' || c == '"' {
            let quote = c;
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unclosed string literal".into()),
                    Some('\\') => {
                        s.push(*chars.get(i + 1).ok_or("dangling backslash")?);
                        i += 2;
                    }
                    Some(&q) if q == quote => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if "(),<>:;=.".contains(c) {
            out.push(Tok::Punct(c));
            i += 1;
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<Tok>,
    at: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn kw(&mut self, kw: &str) -> Result<(), String> {
        if self.is_kw(kw) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {kw}, found {:?}", self.peek()))
        }
    }
    fn opt_kws(&mut self, kws: &[&str]) -> Result<bool, String> {
        if !self.is_kw(kws[0]) {
            return Ok(false);
        }
        for kw in kws {
            self.kw(kw)?;
        }
        Ok(true)
    }
    fn punct(&mut self, c: char) -> Result<(), String> {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{c}`, found {:?}", self.peek()))
        }
    }
    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }
    fn string(&mut self) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.at += 1;
                Ok(s)
            }
            other => Err(format!("expected a string literal, found {other:?}")),
        }
    }
    fn name(&mut self) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Tok::Quoted(s)) => {
                self.at += 1;
                Ok(s)
            }
            Some(Tok::Word(w)) if RESERVED.contains(&w.to_ascii_uppercase().as_str()) => Err(
                format!("`{w}` is a reserved word in Hive: quote it with backticks"),
            ),
            Some(Tok::Word(w)) => {
                self.at += 1;
                Ok(w)
            }
            other => Err(format!("expected a name, found {other:?}")),
        }
    }
    fn table_name(&mut self) -> Result<(), String> {
        self.name()?;
        if self.is_punct('.') {
            self.at += 1;
            self.name()?;
        }
        Ok(())
    }
    fn ty(&mut self) -> Result<(), String> {
        let Some(Tok::Word(w)) = self.peek().cloned() else {
            return Err(format!("expected a type, found {:?}", self.peek()));
        };
        self.at += 1;
        match w.to_ascii_uppercase().as_str() {
            "STRING" | "INT" | "BIGINT" | "SMALLINT" | "TINYINT" | "DOUBLE" | "FLOAT"
            | "BOOLEAN" | "TIMESTAMP" | "DATE" | "BINARY" => Ok(()),
            "DECIMAL" | "VARCHAR" | "CHAR" => {
                if self.is_punct('(') {
                    self.at += 1;
                    self.num()?;
                    if self.is_punct(',') {
                        self.at += 1;
                        self.num()?;
                    }
                    self.punct(')')?;
                }
                Ok(())
            }
            "ARRAY" => {
                self.punct('<')?;
                self.ty()?;
                self.punct('>')
            }
            "MAP" => {
                self.punct('<')?;
                self.ty()?;
                self.punct(',')?;
                self.ty()?;
                self.punct('>')
            }
            "STRUCT" => {
                self.punct('<')?;
                loop {
                    self.name()?;
                    self.punct(':')
                        .map_err(|e| format!("{e} (STRUCT fields are written `name:type`)"))?;
                    self.ty()?;
                    if self.is_punct(',') {
                        self.at += 1;
                        continue;
                    }
                    break;
                }
                self.punct('>')
            }
            other => Err(format!("unknown Hive type {other}")),
        }
    }
    fn num(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(Tok::Num(_)) => {
                self.at += 1;
                Ok(())
            }
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
    fn columns(&mut self) -> Result<usize, String> {
        self.punct('(')?;
        let mut n = 0;
        loop {
            self.name()?;
            self.ty()?;
            if self.opt_kws(&["COMMENT"])? {
                self.string()?;
            }
            n += 1;
            if self.is_punct(',') {
                self.at += 1;
                if self.is_punct(')') {
                    return Err("trailing comma before `)`".into());
                }
                continue;
            }
            break;
        }
        self.punct(')')?;
        Ok(n)
    }
    fn properties(&mut self) -> Result<(), String> {
        self.punct('(')?;
        loop {
            self.string()?;
            self.punct('=')?;
            self.string()?;
            if self.is_punct(',') {
                self.at += 1;
                if self.is_punct(')') {
                    return Err("trailing comma before `)`".into());
                }
                continue;
            }
            break;
        }
        self.punct(')')
    }
    fn end(&mut self) -> Result<(), String> {
        if self.is_punct(';') {
            self.at += 1;
        }
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(format!(
                "unexpected {t:?} (a clause out of Hive's order, or an unknown clause)"
            )),
        }
    }
}

/// Checks one statement. `Ok(false)` when it is not a statement this checker knows.
pub(crate) fn check(statement: &str) -> Result<bool, String> {
    let head: Vec<String> = statement
        .split_whitespace()
        .take(3)
        .map(str::to_ascii_uppercase)
        .collect();
    let known = matches!(head.first().map(String::as_str), Some("MSCK" | "DROP"))
        || (head.first().map(String::as_str) == Some("CREATE")
            && head[1..].iter().any(|w| w == "TABLE"));
    if !known {
        return Ok(false);
    }
    let mut p = P {
        toks: tokenize(statement)?,
        at: 0,
    };
    if p.opt_kws(&["MSCK", "REPAIR", "TABLE"])? {
        p.table_name()?;
        p.end()?;
        return Ok(true);
    }
    if p.is_kw("DROP") {
        p.kw("DROP")?;
        if !p.opt_kws(&["TABLE"])? {
            p.kw("VIEW")?;
        }
        p.opt_kws(&["IF", "EXISTS"])?;
        p.table_name()?;
        p.end()?;
        return Ok(true);
    }
    if !p.is_kw("CREATE") {
        return Ok(false);
    }
    p.kw("CREATE")?;
    p.opt_kws(&["EXTERNAL"])?;
    if !p.is_kw("TABLE") {
        return Ok(false);
    }
    p.kw("TABLE")?;
    p.opt_kws(&["IF", "NOT", "EXISTS"])?;
    p.table_name()?;
    p.columns()?;
    if p.opt_kws(&["COMMENT"])? {
        p.string()?;
    }
    if p.opt_kws(&["PARTITIONED", "BY"])? {
        p.columns()?;
    }
    if p.opt_kws(&["ROW", "FORMAT"])? {
        if p.opt_kws(&["SERDE"])? {
            p.string()?;
            if p.opt_kws(&["WITH", "SERDEPROPERTIES"])? {
                p.properties()?;
            }
        } else {
            p.kw("DELIMITED")?;
            while p.opt_kws(&["FIELDS", "TERMINATED", "BY"])? {
                p.string()?;
            }
        }
    }
    if p.opt_kws(&["STORED"])? {
        if p.opt_kws(&["BY"])? {
            p.string()?;
            if p.opt_kws(&["WITH", "SERDEPROPERTIES"])? {
                p.properties()?;
            }
        } else {
            p.kw("AS")?;
            if p.opt_kws(&["INPUTFORMAT"])? {
                p.string()?;
                p.kw("OUTPUTFORMAT")?;
                p.string()?;
            } else {
                match p.peek() {
                    Some(Tok::Word(_)) => p.at += 1,
                    other => return Err(format!("expected a file format, found {other:?}")),
                }
            }
        }
    }
    if p.opt_kws(&["LOCATION"])? {
        p.string()?;
    }
    if p.opt_kws(&["TBLPROPERTIES"])? {
        p.properties()?;
    }
    p.end()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::check;

    const GOOD: &str = "CREATE EXTERNAL TABLE `db`.`t` (`date` STRING, `s` STRUCT<`a`:STRING, b:ARRAY<INT>>) PARTITIONED BY (`dt` STRING) ROW FORMAT SERDE 'x' STORED AS TEXTFILE LOCATION 's3://b/p/' TBLPROPERTIES ('k' = 'v')";

    #[test]
    fn accepts_hive_ddl() {
        assert_eq!(check(GOOD), Ok(true));
        assert_eq!(check("MSCK REPAIR TABLE `db`.`t`"), Ok(true));
        assert_eq!(check("DROP VIEW IF EXISTS `db`.`v`"), Ok(true));
        assert_eq!(check("CREATE VIEW v AS SELECT 1"), Ok(false));
    }

    #[test]
    fn rejects_what_hive_rejects() {
        let bad = [
            (GOOD.replace("`date`", "date"), "reserved"),
            ("CREATE TABLE t (a STRING,)".to_owned(), "trailing comma"),
            (GOOD.replace("`a`:STRING", "`a` STRING"), "name:type"),
            (
                "CREATE EXTERNAL TABLE t (a STRING) LOCATION 's3://b/' PARTITIONED BY (dt STRING)"
                    .to_owned(),
                "out of Hive's order",
            ),
            (
                GOOD.replace("('k' = 'v')", "('k' = 'v',)"),
                "trailing comma",
            ),
            (GOOD.replace("`db`.`t`", "default.t"), "reserved"),
        ];
        for (sql, why) in bad {
            let err = check(&sql).expect_err(&sql);
            assert!(err.contains(why), "{sql}: {err}");
        }
    }
}
