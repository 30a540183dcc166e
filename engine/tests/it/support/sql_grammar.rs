//! Whether a query written once for every SQL engine of docs/sql.md (DuckDB, Drill, Hive,
//! Athena) is valid in each engine's grammar: parsed by sqlparser-rs with the closest dialect,
//! and, since sqlparser accepts almost any keyword as a name, checked against each engine's own
//! reserved words and identifier quotes. An unquoted name must not be reserved in the engine
//! (`hour` is reserved in Drill, whose parser is Calcite's); a quoted name must use a quote the
//! engine reads as a name quote (Hive and Drill: backticks; Athena, which is Trino: double
//! quotes; DuckDB: either).

use sqlparser::ast::Statement;
use sqlparser::dialect::{Dialect, DuckDbDialect, GenericDialect, HiveDialect};
use sqlparser::parser::Parser;

/// The reserved keywords of Apache Calcite's SQL parser, which Drill uses (the bold words of
/// Calcite's SQL reference, "Keywords"). As names they need backticks in Drill.
pub(crate) const CALCITE_RESERVED: &[&str] = &[
    "ABS",
    "ALL",
    "ALLOCATE",
    "ALLOW",
    "ALTER",
    "AND",
    "ANY",
    "ARE",
    "ARRAY",
    "ARRAY_MAX_CARDINALITY",
    "AS",
    "ASENSITIVE",
    "ASOF",
    "ASYMMETRIC",
    "AT",
    "ATOMIC",
    "AUTHORIZATION",
    "AVG",
    "BEGIN",
    "BEGIN_FRAME",
    "BEGIN_PARTITION",
    "BETWEEN",
    "BIGINT",
    "BINARY",
    "BIT",
    "BLOB",
    "BOOLEAN",
    "BOTH",
    "BY",
    "CALL",
    "CALLED",
    "CARDINALITY",
    "CASCADED",
    "CASE",
    "CAST",
    "CEIL",
    "CEILING",
    "CHAR",
    "CHARACTER",
    "CHARACTER_LENGTH",
    "CHAR_LENGTH",
    "CHECK",
    "CLASSIFIER",
    "CLOB",
    "CLOSE",
    "COALESCE",
    "COLLATE",
    "COLLECT",
    "COLUMN",
    "COMMIT",
    "CONDITION",
    "CONNECT",
    "CONSTRAINT",
    "CONTAINS",
    "CONVERT",
    "CORR",
    "CORRESPONDING",
    "COUNT",
    "COVAR_POP",
    "COVAR_SAMP",
    "CREATE",
    "CROSS",
    "CUBE",
    "CUME_DIST",
    "CURRENT",
    "CURRENT_CATALOG",
    "CURRENT_DATE",
    "CURRENT_DEFAULT_TRANSFORM_GROUP",
    "CURRENT_PATH",
    "CURRENT_ROLE",
    "CURRENT_ROW",
    "CURRENT_SCHEMA",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_TRANSFORM_GROUP_FOR_TYPE",
    "CURRENT_USER",
    "CURSOR",
    "CYCLE",
    "DATE",
    "DATETIME",
    "DAY",
    "DEALLOCATE",
    "DEC",
    "DECIMAL",
    "DECLARE",
    "DEFAULT",
    "DEFINE",
    "DELETE",
    "DENSE_RANK",
    "DEREF",
    "DESCRIBE",
    "DETERMINISTIC",
    "DISALLOW",
    "DISCONNECT",
    "DISTINCT",
    "DOUBLE",
    "DROP",
    "DYNAMIC",
    "EACH",
    "ELEMENT",
    "ELSE",
    "EMPTY",
    "END",
    "END-EXEC",
    "END_FRAME",
    "END_PARTITION",
    "EQUALS",
    "ESCAPE",
    "EVERY",
    "EXCEPT",
    "EXEC",
    "EXECUTE",
    "EXISTS",
    "EXP",
    "EXPLAIN",
    "EXTEND",
    "EXTERNAL",
    "EXTRACT",
    "FALSE",
    "FETCH",
    "FILTER",
    "FIRST_VALUE",
    "FLOAT",
    "FLOOR",
    "FOR",
    "FOREIGN",
    "FRAME_ROW",
    "FREE",
    "FRIDAY",
    "FROM",
    "FULL",
    "FUNCTION",
    "FUSION",
    "GET",
    "GLOBAL",
    "GRANT",
    "GROUP",
    "GROUPING",
    "GROUPS",
    "HAVING",
    "HOLD",
    "HOUR",
    "IDENTITY",
    "IMPORT",
    "IN",
    "INDICATOR",
    "INITIAL",
    "INNER",
    "INOUT",
    "INSENSITIVE",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERSECTION",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "JSON_ARRAY",
    "JSON_ARRAYAGG",
    "JSON_EXISTS",
    "JSON_OBJECT",
    "JSON_OBJECTAGG",
    "JSON_QUERY",
    "JSON_SCOPE",
    "JSON_VALUE",
    "LAG",
    "LANGUAGE",
    "LARGE",
    "LAST_VALUE",
    "LATERAL",
    "LEAD",
    "LEADING",
    "LEFT",
    "LIKE",
    "LIKE_REGEX",
    "LIMIT",
    "LN",
    "LOCAL",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "LOWER",
    "MATCH",
    "MATCHES",
    "MATCH_CONDITION",
    "MATCH_NUMBER",
    "MATCH_RECOGNIZE",
    "MAX",
    "MEASURE",
    "MEASURES",
    "MEMBER",
    "MERGE",
    "METHOD",
    "MIN",
    "MINUS",
    "MINUTE",
    "MOD",
    "MODIFIES",
    "MODULE",
    "MONDAY",
    "MONTH",
    "MULTISET",
    "NATIONAL",
    "NATURAL",
    "NCHAR",
    "NCLOB",
    "NEW",
    "NEXT",
    "NO",
    "NONE",
    "NORMALIZE",
    "NOT",
    "NTH_VALUE",
    "NTILE",
    "NULL",
    "NULLIF",
    "NUMERIC",
    "OCCURRENCES_REGEX",
    "OCTET_LENGTH",
    "OF",
    "OFFSET",
    "OLD",
    "OMIT",
    "ON",
    "ONE",
    "ONLY",
    "OPEN",
    "OR",
    "ORDER",
    "ORDINAL",
    "OUT",
    "OUTER",
    "OVER",
    "OVERLAPS",
    "OVERLAY",
    "PARAMETER",
    "PARTITION",
    "PATTERN",
    "PER",
    "PERCENT",
    "PERCENTILE_CONT",
    "PERCENTILE_DISC",
    "PERCENT_RANK",
    "PERIOD",
    "PERMUTE",
    "PORTION",
    "POSITION",
    "POSITION_REGEX",
    "POWER",
    "PRECEDES",
    "PRECISION",
    "PREPARE",
    "PREV",
    "PRIMARY",
    "PROCEDURE",
    "QUALIFY",
    "RANGE",
    "RANK",
    "READS",
    "REAL",
    "RECURSIVE",
    "REF",
    "REFERENCES",
    "REFERENCING",
    "REGR_AVGX",
    "REGR_AVGY",
    "REGR_COUNT",
    "REGR_INTERCEPT",
    "REGR_R2",
    "REGR_SLOPE",
    "REGR_SXX",
    "REGR_SXY",
    "REGR_SYY",
    "RELEASE",
    "RESET",
    "RESULT",
    "RETURN",
    "RETURNS",
    "REVOKE",
    "RIGHT",
    "ROLLBACK",
    "ROLLUP",
    "ROW",
    "ROWS",
    "ROW_NUMBER",
    "RUNNING",
    "SAFE_CAST",
    "SAFE_OFFSET",
    "SAFE_ORDINAL",
    "SATURDAY",
    "SAVEPOINT",
    "SCOPE",
    "SCROLL",
    "SEARCH",
    "SECOND",
    "SEEK",
    "SELECT",
    "SENSITIVE",
    "SESSION_USER",
    "SET",
    "SHOW",
    "SIMILAR",
    "SKIP",
    "SMALLINT",
    "SOME",
    "SPECIFIC",
    "SPECIFICTYPE",
    "SQL",
    "SQLEXCEPTION",
    "SQLSTATE",
    "SQLWARNING",
    "SQRT",
    "START",
    "STATIC",
    "STDDEV_POP",
    "STDDEV_SAMP",
    "STREAM",
    "SUBMULTISET",
    "SUBSET",
    "SUBSTRING",
    "SUBSTRING_REGEX",
    "SUCCEEDS",
    "SUM",
    "SUNDAY",
    "SYMMETRIC",
    "SYSTEM",
    "SYSTEM_TIME",
    "SYSTEM_USER",
    "TABLE",
    "TABLESAMPLE",
    "THEN",
    "THURSDAY",
    "TIME",
    "TIMESTAMP",
    "TIMEZONE_HOUR",
    "TIMEZONE_MINUTE",
    "TINYINT",
    "TO",
    "TRAILING",
    "TRANSLATE",
    "TRANSLATE_REGEX",
    "TRANSLATION",
    "TREAT",
    "TRIGGER",
    "TRIM",
    "TRIM_ARRAY",
    "TRUE",
    "TRUNCATE",
    "TRY_CAST",
    "TUESDAY",
    "UESCAPE",
    "UNION",
    "UNIQUE",
    "UNKNOWN",
    "UNNEST",
    "UPDATE",
    "UPPER",
    "UPSERT",
    "USER",
    "USING",
    "VALUE",
    "VALUES",
    "VALUE_OF",
    "VARBINARY",
    "VARCHAR",
    "VARYING",
    "VAR_POP",
    "VAR_SAMP",
    "VERSIONING",
    "WEDNESDAY",
    "WHEN",
    "WHENEVER",
    "WHERE",
    "WIDTH_BUCKET",
    "WINDOW",
    "WITH",
    "WITHIN",
    "WITHOUT",
    "YEAR",
];

/// The reserved keywords of Trino, whose SQL Athena's queries and views use (Trino's
/// "Keywords and identifiers"). As names they need double quotes.
pub(crate) const TRINO_RESERVED: &[&str] = &[
    "ALTER",
    "AND",
    "AS",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "CONSTRAINT",
    "CREATE",
    "CROSS",
    "CUBE",
    "CURRENT_CATALOG",
    "CURRENT_DATE",
    "CURRENT_PATH",
    "CURRENT_ROLE",
    "CURRENT_SCHEMA",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "DEALLOCATE",
    "DELETE",
    "DESCRIBE",
    "DISTINCT",
    "DROP",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXECUTE",
    "EXISTS",
    "EXTRACT",
    "FALSE",
    "FOR",
    "FROM",
    "FULL",
    "GROUP",
    "GROUPING",
    "HAVING",
    "IN",
    "INNER",
    "INSERT",
    "INTERSECT",
    "INTO",
    "IS",
    "JOIN",
    "JSON_ARRAY",
    "JSON_EXISTS",
    "JSON_OBJECT",
    "JSON_QUERY",
    "JSON_TABLE",
    "JSON_VALUE",
    "LEFT",
    "LIKE",
    "LISTAGG",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "NATURAL",
    "NORMALIZE",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "PREPARE",
    "RECURSIVE",
    "RIGHT",
    "ROLLUP",
    "SELECT",
    "SKIP",
    "TABLE",
    "THEN",
    "TRIM",
    "TRUE",
    "UESCAPE",
    "UNION",
    "UNNEST",
    "USING",
    "VALUES",
    "WHEN",
    "WHERE",
    "WITH",
];

/// An engine of docs/sql.md, for its query grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// DuckDB (sqlparser's DuckDB dialect; DuckDB reserves few words and the tests also run
    /// the queries in DuckDB).
    DuckDb,
    /// Apache Drill (Calcite's parser): sqlparser's generic dialect and Calcite's reserved words.
    Drill,
    /// Hive: sqlparser's Hive dialect and the reserved words of the Hive DDL checker
    /// ([`crate::support::hive_ddl::RESERVED`], which also counts a few keywords such as `HOUR`).
    Hive,
    /// Athena's queries (Trino): sqlparser's generic dialect and Trino's reserved words.
    Athena,
}

impl Engine {
    /// Every engine.
    pub(crate) const ALL: [Engine; 4] =
        [Engine::DuckDb, Engine::Drill, Engine::Hive, Engine::Athena];

    fn dialect(self) -> Box<dyn Dialect> {
        match self {
            Engine::DuckDb => Box::new(DuckDbDialect {}),
            Engine::Drill | Engine::Athena => Box::new(GenericDialect {}),
            Engine::Hive => Box::new(HiveDialect {}),
        }
    }

    fn reserved(self) -> &'static [&'static str] {
        match self {
            Engine::DuckDb => &[],
            Engine::Drill => CALCITE_RESERVED,
            Engine::Hive => crate::support::hive_ddl::RESERVED,
            Engine::Athena => TRINO_RESERVED,
        }
    }

    /// The characters that quote a name (not a string) in this engine.
    fn name_quotes(self) -> &'static [char] {
        match self {
            Engine::DuckDb => &['"', '`'],
            Engine::Drill | Engine::Hive => &['`'],
            Engine::Athena => &['"'],
        }
    }

    /// Checks one query: it parses as exactly one statement, no unquoted name is a reserved
    /// word of the engine, and every quoted name uses one of the engine's name quotes.
    pub(crate) fn check(self, sql: &str) -> Result<(), String> {
        let parsed = Parser::parse_sql(self.dialect().as_ref(), sql)
            .map_err(|e| format!("{self:?}: does not parse: {e}"))?;
        let [statement] = parsed.as_slice() else {
            return Err(format!("{self:?}: {} statements, not one", parsed.len()));
        };
        let mut problems = Vec::new();
        for name in names(statement) {
            match name.quote {
                None if !name.function
                    && self
                        .reserved()
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(&name.value)) =>
                {
                    problems.push(format!(
                        "{} is a reserved word (as a name: {q}{}{q})",
                        name.value,
                        name.value,
                        q = self.name_quotes()[0]
                    ))
                }
                Some(q) if !self.name_quotes().contains(&q) => problems.push(format!(
                    "{q}{}{q} is not a quoted name here (use {})",
                    name.value,
                    self.name_quotes()[0]
                )),
                _ => {}
            }
        }
        problems.dedup();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("{self:?}: {}", problems.join("; ")))
        }
    }
}

/// One name (identifier) of a parsed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    /// The name without quotes.
    pub value: String,
    /// Its quote character, if quoted.
    pub quote: Option<char>,
    /// Whether it names the function of a call (`count` in `count(*)`): engines that reserve
    /// function names (Calcite: `COUNT`, `SUM`, `ROW_NUMBER`) accept them as calls.
    pub function: bool,
}

/// Every name of a statement, in order. sqlparser 0.64 is used without its `visitor` feature,
/// so the names are read from the statement's `Debug` form (`Ident { value: "…", quote_style:
/// …, span: … }`); [`names_of`] checks that this still finds the names of a known query.
pub(crate) fn names(statement: &Statement) -> Vec<Name> {
    const IDENT: &str = "Ident { value: \"";
    const FUNCTION: &str = "Function { name: ObjectName([Identifier(";
    let debug = format!("{statement:?}");
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(found) = debug[pos..].find(IDENT) {
        let start = pos + found;
        let function = debug[..start].ends_with(FUNCTION);
        let mut value = String::new();
        let mut chars = debug[start + IDENT.len()..].char_indices();
        let mut end = debug.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(e);
                    }
                }
                '"' => {
                    end = start + IDENT.len() + i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        let rest = &debug[end..];
        let quote = rest
            .strip_prefix(", quote_style: Some('")
            .and_then(|r| r.chars().next());
        out.push(Name {
            value,
            quote: if quote == Some('\\') {
                rest.strip_prefix(", quote_style: Some('\\")
                    .and_then(|r| r.chars().next())
            } else {
                quote
            },
            function,
        });
        pos = end;
    }
    out
}

/// The names of one SQL text parsed with sqlparser's generic dialect (for tests of [`names`]).
pub(crate) fn names_of(sql: &str) -> Vec<Name> {
    let parsed = Parser::parse_sql(&GenericDialect {}, sql).expect("parses");
    parsed.iter().flat_map(names).collect()
}

/// The `sql` code blocks of one `## ` section of a Markdown text, each with the paragraph just
/// above it (its caption, on one line).
pub(crate) fn sql_blocks(markdown: &str, section: &str) -> Vec<(String, String)> {
    code_blocks(markdown, section, "sql")
}

/// The code blocks of language `lang` (```` ```lang ````) of one `## ` section of a Markdown
/// text, each with the paragraph just above it (its caption, on one line).
pub(crate) fn code_blocks(markdown: &str, section: &str, lang: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut caption = String::new();
    let mut blank = true;
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        if let Some(sql) = &mut block {
            if line.trim_start().starts_with("```") {
                out.push((caption.clone(), std::mem::take(sql)));
                block = None;
                blank = true;
            } else {
                sql.push_str(line);
                sql.push('\n');
            }
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            inside = heading.trim() == section;
            continue;
        }
        if !inside {
            continue;
        }
        if line.trim_start().strip_prefix("```").map(str::trim) == Some(lang) {
            block = Some(String::new());
        } else if line.trim().is_empty() {
            blank = true;
        } else {
            if blank {
                caption.clear();
            } else {
                caption.push(' ');
            }
            caption.push_str(line.trim());
            blank = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_with_their_quotes() {
        let names = names_of("SELECT `hour`, \"dt\", count(*) AS n FROM t.v WHERE x = 'hour'");
        let got: Vec<(&str, Option<char>, bool)> = names
            .iter()
            .map(|n| (n.value.as_str(), n.quote, n.function))
            .collect();
        assert_eq!(
            got,
            [
                ("hour", Some('`'), false),
                ("dt", Some('"'), false),
                ("count", None, true),
                ("n", None, false),
                ("t", None, false),
                ("v", None, false),
                ("x", None, false),
            ]
        );
    }

    #[test]
    fn reserved_names_and_foreign_quotes_are_refused() {
        let q = "SELECT dt, hour, count(*) AS records FROM orders_archive GROUP BY dt, hour";
        let err = Engine::Drill.check(q).unwrap_err();
        assert!(err.contains("hour is a reserved word"), "{err}");
        assert!(!err.contains("count"), "{err}");
        Engine::Athena.check(q).unwrap();
        Engine::DuckDb.check(q).unwrap();
        Engine::Drill
            .check("SELECT `hour`, count(*) FROM v GROUP BY `hour`")
            .unwrap();
        let err = Engine::Drill.check("SELECT \"hour\" FROM v").unwrap_err();
        assert!(err.contains("not a quoted name"), "{err}");
        let err = Engine::Athena.check("SELECT `hour` FROM v").unwrap_err();
        assert!(err.contains("not a quoted name"), "{err}");
        assert!(Engine::Hive.check("SELECT date FROM v").is_err());
        assert!(Engine::Hive.check("SELECT FROM WHERE").is_err());
    }
}
