//! `.env` files (`--env-file`, the project's `.env`, `include.env_file`) and `env_file` entries, read the
//! way Docker Compose v2.40 reads them.
//!
//! Two formats:
//! - the default one, [`parse`]: compose-go's `dotenv` parser (v2.9.1), a port of Ruby's dotenv with
//!   quirks of its own, all checked against the real `docker compose config`:
//!   - statements are `KEY=VALUE`, `KEY: VALUE` or a bare `KEY` (whose value comes from the lookup, and
//!     which is left out when the lookup has none: compose keeps no "declared but unset" entry);
//!   - `export ` in front is dropped; `#` starts a comment at the start of a statement, and after a value
//!     only as ` #` (so `A=x#y` is `x#y`, and `A= #y` is `#y`, the blank being eaten before the value);
//!   - values in double quotes may span lines, take the escapes `\a \b \f \n \r \t \v \\ \" \$` and
//!     `\0ooo` (octal), and are interpolated; single-quoted values are taken literally but for `\'`;
//!     unquoted values run to the end of the line, lose trailing blanks, and are interpolated;
//!   - interpolation sees the lookup first, then the keys already read (from this file, or whatever the
//!     caller put in the map given to [`parse_into`]);
//!   - whatever follows a closing quote on the same line starts a new statement, so `A="x"y` also
//!     declares a bare key `y`; text that runs to the end of the file without `=`, `:` or a newline is the
//!     value of the empty key (`FOO` as a last line without newline gives `"" = "FOO"`).
//! - `format: raw`, [`parse_raw`]: docker/cli's `kvfile` parser (v28.5.1, as `docker run --env-file`):
//!   one `KEY=VALUE` per line, the value verbatim (quotes and `$` included), leading blanks and `#` lines
//!   skipped, a bare `KEY` from the lookup, and lines of 64 KiB or more refused.
//!
//! Errors carry the line and column of the problem and compose's wording; compose's own line number is
//! wrong for an unterminated quote (it counts every line to the end of the file), ours points at the quote.

use indexmap::IndexMap;

use super::interpolate::{InterpolationErrorKind, go_quote, interpolate};

/// A `.env` or `env_file` that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DotenvError {
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    /// Lowercase, naming the bad input, in compose's words.
    pub message: String,
}

impl DotenvError {
    /// The error as a diagnostic at its position in `file`.
    pub fn into_diagnostic(self, file: &str) -> crate::diag::Diagnostic {
        let loc =
            crate::source::Location { file: file.into(), line: self.line, column: self.column, end_line: self.line };
        crate::diag::Diagnostic::error(Some(loc), "", self.message)
    }

    /// An error at byte `offset` of `text`.
    fn at(text: &str, offset: usize, message: String) -> Self {
        let before = &text[..offset.min(text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        DotenvError { line: saturate(line), column: saturate(column), message }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Parses a `.env` file. Bare `KEY`s take their value from `lookup`, and are left out when it has none;
/// `${VAR}` in values resolves through `lookup`, then through the keys read before it.
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<IndexMap<String, String>, DotenvError> {
    let mut out = IndexMap::new();
    parse_into(text, lookup, &mut out)?;
    Ok(out)
}

/// [`parse`], adding to `out`: later keys replace earlier ones, and interpolation falls back on what `out`
/// already holds. Compose reads several `--env-file`s into one map this way, and reads a service's
/// `env_file`s into a map that starts as its `environment`.
pub fn parse_into(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut IndexMap<String, String>,
) -> Result<(), DotenvError> {
    // editors on Windows like to start files with a byte-order mark
    let src = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut pos = 0;
    loop {
        pos = skip(src, pos, char::is_whitespace);
        if pos >= src.len() {
            return Ok(());
        }
        if src[pos..].starts_with('#') {
            match src[pos..].find('\n') {
                Some(i) => {
                    pos += i;
                    continue;
                }
                None => return Ok(()),
            }
        }
        // compose's `^export\s+`, where `\s` is ASCII white space without `\v`; only the blanks after it
        // are skipped, so `export` then a newline leaves a bare empty key
        let rest = &src[pos..];
        if rest.starts_with("export") && rest[6..].starts_with([' ', '\t', '\n', '\r', '\u{c}']) {
            pos = skip(src, pos + 6, is_blank);
        }
        let key_start = pos;
        let (key, value_start) = match key_end(src, key_start)? {
            Some((end, separator)) => {
                let key = src[key_start..end].trim_end();
                if key.contains(' ') {
                    return Err(DotenvError::at(src, key_start, "key cannot contain a space".into()));
                }
                if separator == '\n' {
                    if let Some(value) = lookup(key) {
                        out.insert(key.to_owned(), value);
                    }
                    pos = end + 1;
                    continue;
                }
                (key, end + 1)
            }
            // only reachable after `export ` at the very end
            None if key_start == src.len() => {
                return Err(DotenvError::at(src, key_start, "zero length string".into()));
            }
            None => ("", key_start),
        };
        let value_start = skip(src, value_start, is_blank);
        let (value, next) = value(src, value_start, lookup, out)?;
        out.insert(key.to_owned(), value);
        pos = next;
    }
}

/// Where the key starting at `start` ends, and on which of `=`, `:` (YAML style) or a newline (a bare key).
/// `None` when the text runs out first. Keys are letters, digits, `_ . - [ ]`, and blanks (refused later
/// if they are spaces inside the key). Go's `unicode.IsLetter`/`IsNumber` are approximated by Rust's
/// `is_alphabetic`/`is_numeric`, which also let combining vowel signs through.
fn key_end(src: &str, start: usize) -> Result<Option<(usize, char)>, DotenvError> {
    for (i, c) in src[start..].char_indices() {
        match c {
            c if is_blank(c) => {}
            '=' | ':' | '\n' => return Ok(Some((start + i, c))),
            '_' | '.' | '-' | '[' | ']' => {}
            c if c.is_alphabetic() || c.is_numeric() => {}
            c => {
                let line = src[start..].split('\n').next().unwrap_or_default();
                let message = format!(
                    "unexpected character {} in variable name {}",
                    go_quote(c.encode_utf8(&mut [0; 4])),
                    go_quote(line)
                );
                return Err(DotenvError::at(src, start + i, message));
            }
        }
    }
    Ok(None)
}

/// The value starting at `start`, and where the next statement may start.
fn value(
    src: &str,
    start: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &IndexMap<String, String>,
) -> Result<(String, usize), DotenvError> {
    let quote = match src[start..].chars().next() {
        Some(q @ ('"' | '\'')) => q,
        _ => {
            let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
            let mut value = &src[start..line_end];
            if let Some(comment) = value.find(" #") {
                value = &value[..comment];
            }
            let value = expand(value.trim_end(), lookup, out).map_err(|(offset, message)| {
                // the text interpolated is the file's own, so the offset carries over
                DotenvError::at(src, start + offset, message)
            })?;
            return Ok((value, (line_end + 1).min(src.len())));
        }
    };
    // A backslash escapes the quote and is dropped; before anything else it is kept, for the escape
    // expansion below (double quotes) or for good (single quotes).
    let mut raw = String::new();
    let mut escaped = false;
    for (i, c) in src[start + 1..].char_indices() {
        if c == quote && !escaped {
            let value = if quote == '"' {
                // escapes change offsets; point at the opening quote
                expand(&unescape(&raw), lookup, out).map_err(|(_, message)| DotenvError::at(src, start, message))?
            } else {
                raw
            };
            return Ok((value, start + 1 + i + 1));
        }
        if c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        if escaped && c != quote {
            raw.push('\\');
        }
        escaped = false;
        raw.push(c);
    }
    let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
    Err(DotenvError::at(src, start, format!("unterminated quoted value {}", &src[start..line_end])))
}

/// Interpolates a value: `lookup` first, then the keys read so far. Errors as (offset in `value`, message).
fn expand(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &IndexMap<String, String>,
) -> Result<String, (usize, String)> {
    let resolve = |name: &str| lookup(name).or_else(|| out.get(name).cloned());
    interpolate(value, &resolve).map_err(|err| {
        let message = match err.kind {
            // compose's dotenv says `Invalid template: "…"` here, not the compose-file wording
            InterpolationErrorKind::InvalidFormat { template } => format!("invalid template: {}", go_quote(&template)),
            _ => err.message,
        };
        (err.offset, message)
    })
}

/// Expands the escapes of a double-quoted value, as compose-go does: `\a \b \f \n \r \t \v \\ \"` as in
/// Go, `\$` into `$$` (so interpolation leaves a literal `$`), `\0` plus up to three digits as the octal
/// `\ooo` when that is valid, and otherwise left alone. Compose's octal path drops the `0` even when the
/// octal is invalid (`\0` becomes `\`, `\01` becomes `\1`); so do we.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(c) = after.chars().next() else {
            out.push('\\');
            rest = after;
            break;
        };
        let plain = match c {
            'a' => Some("\u{7}"),
            'b' => Some("\u{8}"),
            'f' => Some("\u{c}"),
            'n' => Some("\n"),
            'r' => Some("\r"),
            't' => Some("\t"),
            'v' => Some("\u{b}"),
            '"' => Some("\""),
            '\\' => Some("\\"),
            '$' => Some("$$"),
            // in compose's list of escapes, but Go knows no `\c`: kept, and the `c` consumed with it
            'c' => Some("\\c"),
            _ => None,
        };
        if let Some(replacement) = plain {
            out.push_str(replacement);
            rest = &after[1..];
            continue;
        }
        if c != '0' {
            out.push('\\');
            rest = after;
            continue;
        }
        let digits_len = after[1..].bytes().take(3).take_while(u8::is_ascii_digit).count();
        let digits = &after[1..1 + digits_len];
        match octal(digits) {
            Some(decoded) => out.push(decoded),
            None => {
                out.push('\\');
                out.push_str(digits);
            }
        }
        rest = &after[1 + digits_len..];
    }
    out.push_str(rest);
    out
}

/// Three octal digits up to `\377`, as the code point of that value (Go's `UnquoteChar`).
fn octal(digits: &str) -> Option<char> {
    if digits.len() != 3 {
        return None;
    }
    let value = u32::from_str_radix(digits, 8).ok()?;
    if value > 0o377 {
        return None;
    }
    char::from_u32(value)
}

/// Parses an `env_file` with `format: raw`. Bare `KEY`s take their value from `lookup`, and are left out
/// when it has none.
pub fn parse_raw(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<IndexMap<String, String>, DotenvError> {
    // Go's bufio.Scanner refuses a line (without its newline) of this many bytes or more
    const MAX_LINE: usize = 64 * 1024;
    let mut out = IndexMap::new();
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    for (index, raw_line) in lines.into_iter().enumerate() {
        let number = saturate(index + 1);
        if raw_line.len() >= MAX_LINE {
            let message = "bufio.Scanner: token too long".to_owned();
            return Err(DotenvError { line: number, column: 1, message });
        }
        let mut line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if index == 0 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let column = saturate(line.chars().count() - trimmed.chars().count() + 1);
        let (key, value) = match trimmed.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (trimmed, None),
        };
        if key.is_empty() {
            let message = format!("no variable name on line '{trimmed}'");
            return Err(DotenvError { line: number, column, message });
        }
        if key.contains([' ', '\t']) {
            let message = format!("variable '{key}' contains whitespaces");
            return Err(DotenvError { line: number, column, message });
        }
        match value {
            Some(value) => {
                out.insert(key.to_owned(), value.to_owned());
            }
            None => {
                if let Some(value) = lookup(key) {
                    out.insert(key.to_owned(), value);
                }
            }
        }
    }
    Ok(out)
}

/// compose-go's `isSpace`: white space that does not end a line.
fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

/// The first byte at or after `from` whose character is not `skipped`.
fn skip(src: &str, from: usize, skipped: impl Fn(char) -> bool) -> usize {
    src[from..].char_indices().find(|&(_, c)| !skipped(c)).map_or(src.len(), |(i, _)| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(env: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    fn pairs(map: &IndexMap<String, String>) -> Vec<(&str, &str)> {
        map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn check(text: &str, env: &[(&str, &str)], expected: &[(&str, &str)]) {
        let got = parse(text, &lookup(env)).unwrap_or_else(|e| panic!("parsing {text:?}: {e}"));
        assert_eq!(pairs(&got), expected, "parsing {text:?} with {env:?}");
    }

    fn check_err(text: &str, env: &[(&str, &str)], line: u32, column: u32, message: &str) {
        let got = parse(text, &lookup(env));
        let expected = DotenvError { line, column, message: message.to_owned() };
        assert_eq!(got, Err(expected), "parsing {text:?} with {env:?}");
    }

    fn check_raw(text: &str, env: &[(&str, &str)], expected: &[(&str, &str)]) {
        let got = parse_raw(text, &lookup(env)).unwrap_or_else(|e| panic!("parsing {text:?}: {e}"));
        assert_eq!(pairs(&got), expected, "parsing {text:?} as raw with {env:?}");
    }

    fn check_raw_err(text: &str, line: u32, column: u32, message: &str) {
        let expected = DotenvError { line, column, message: message.to_owned() };
        assert_eq!(parse_raw(text, &|_| None), Err(expected), "parsing {text:?} as raw");
    }

    // Each row was read by `docker compose config` (v2.40.3) as an `env_file`, with the row's variables as
    // the only environment (`env_file` looks variables up in the project environment).
    #[test]
    fn parses_like_compose() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            ("A=1\nB=2", &[], &[("A", "1"), ("B", "2")]),
            ("# c\n  A = 1 \n\n", &[], &[("A", "1")]),
            ("\u{feff}A=1", &[], &[("A", "1")]),
            ("A=1\r\nB=\"x\"\r\nC='y'\r\n", &[], &[("A", "1"), ("B", "x"), ("C", "y")]),
            ("A:1\nB: 2", &[], &[("A", "1"), ("B", "2")]),
            (
                "export A=1\nexport  B=2\nexport=3\nexportC=4\nexport\tD=5",
                &[],
                &[("A", "1"), ("B", "2"), ("export", "3"), ("exportC", "4"), ("D", "5")],
            ),
            ("export\nB=2", &[], &[("B", "2")]),
            ("A.B-C[0]=1\nÄB=2\n1A=3\nA\tB=4", &[], &[("A.B-C[0]", "1"), ("ÄB", "2"), ("1A", "3"), ("A\tB", "4")]),
            // inline comments need a blank before `#`
            (
                "A=x # c\nB=x#c\nC=x\t#c\nD= # c\nE=\nF=#x",
                &[],
                &[("A", "x"), ("B", "x#c"), ("C", "x\t#c"), ("D", "# c"), ("E", ""), ("F", "#x")],
            ),
            (
                "A=   x\nB=  \"q\"\nC=x y z\nD=x\u{a0}\nE=\u{a0}y",
                &[],
                &[("A", "x"), ("B", "q"), ("C", "x y z"), ("D", "x"), ("E", "y")],
            ),
            ("=x\nA==b\nB=b=c", &[], &[("", "x"), ("A", "=b"), ("B", "b=c")]),
            // quotes
            (
                "A='x y'\nB=\"x\\ny\"\nC='a\\nb'\nD=\"a\\\"b\"\nE='a\\'b'",
                &[],
                &[("A", "x y"), ("B", "x\ny"), ("C", "a\\nb"), ("D", "a\"b"), ("E", "a'b")],
            ),
            ("A=\"l1\nl2\"\nB='l1\nl2'", &[], &[("A", "l1\nl2"), ("B", "l1\nl2")]),
            ("A = \"x\" # c\nB=\"y\"#c\nC=a #b", &[], &[("A", "x"), ("B", "y"), ("C", "a")]),
            ("A=\"a\\\\\"\nB='a\\\\'", &[], &[("A", "a\\"), ("B", "a\\\\")]),
            (
                "A=\"t\\tb\\a\\0101\\0\\x41\\\\c\\c\\u0041\\01\\0377\\$\"",
                &[],
                &[("A", "t\tb\u{7}A\\\\x41\\c\\c\\u0041\\1\u{ff}$")],
            ),
            ("A=\"\\$x\"\nB=$$y\nC='$$'\nD=\"\\\\$\"", &[], &[("A", "$x"), ("B", "$y"), ("C", "$$"), ("D", "\\$")]),
            // text after a closing quote starts a new statement
            ("A=\"x\"y\nB=2", &[], &[("A", "x"), ("B", "2")]),
            ("A=\"x\" B=2", &[], &[("A", "x"), ("B", "2")]),
            ("A='x' y", &[], &[("A", "x"), ("", "y")]),
            // bare keys
            ("KEY\nO=1", &[], &[("O", "1")]),
            ("A   \nB=1", &[("A", "v")], &[("A", "v"), ("B", "1")]),
            ("FOO", &[], &[("", "FOO")]),
            ("A  ", &[], &[("", "A")]),
            // interpolation: earlier keys, the lookup first, never in single quotes, comments first
            (
                "A=1\nB=${A}\nC='${A}'\nD=\"${A}x\"\nE=$A",
                &[],
                &[("A", "1"), ("B", "1"), ("C", "${A}"), ("D", "1x"), ("E", "1")],
            ),
            ("A=1\nB=${A}", &[("A", "os")], &[("A", "1"), ("B", "os")]),
            ("A=${B}\nB=1", &[], &[("A", ""), ("B", "1")]),
            ("A=\"${X:-d}\"\nB=${A:+set}", &[], &[("A", "d"), ("B", "set")]),
            ("A=1 # c ${Z:?bad}", &[], &[("A", "1")]),
        ];
        for (text, env, expected) in cases {
            check(text, env, expected);
        }
    }

    #[test]
    fn errors_like_compose() {
        check_err("A B=1", &[], 1, 1, "key cannot contain a space");
        check_err("A=1\n\nB!=1", &[], 3, 2, r#"unexpected character "!" in variable name "B!=1""#);
        check_err("A€B=1", &[], 1, 2, r#"unexpected character "€" in variable name "A€B=1""#);
        check_err("A\u{1}B=1", &[], 1, 2, r#"unexpected character "\x01" in variable name "A\x01B=1""#);
        check_err("A\"B=1", &[], 1, 2, r#"unexpected character "\"" in variable name "A\"B=1""#);
        check_err("export ", &[], 1, 8, "zero length string");
        // compose says line 3 for these two, counting to the end of the file; we point at the quote
        check_err("A=\"unterminated\nB=2\nC=3", &[], 1, 3, "unterminated quoted value \"unterminated");
        check_err("A='x\n\nB!=1", &[], 1, 3, "unterminated quoted value 'x");
        check_err("A=\"x\\", &[], 1, 3, "unterminated quoted value \"x\\");
        check_err("A=${B:?missing}", &[], 1, 3, "required variable B is missing a value: missing");
        check_err("A=\"${Z:?bad}\" # c", &[], 1, 3, "required variable Z is missing a value: bad");
        check_err("A=1\nB=x ${", &[], 2, 5, r#"invalid template: "x ${""#);
        let err = parse("A B=1", &|_| None).unwrap_err();
        assert_eq!(err.to_string(), "line 1: key cannot contain a space");
    }

    #[test]
    fn parse_into_extends_and_falls_back_on_the_map() {
        let mut map = IndexMap::from([("BASE".to_owned(), "b".to_owned()), ("A".to_owned(), "old".to_owned())]);
        parse_into("A=${BASE}-1\nC=$A", &|_| None, &mut map).unwrap();
        assert_eq!(pairs(&map), [("BASE", "b"), ("A", "b-1"), ("C", "b-1")]);
    }

    #[test]
    fn unescape_matches_compose_go() {
        let cases = [
            ("\\0101", "A"),
            ("\\0", "\\"),
            ("\\01", "\\1"),
            ("\\0089", "\\089"),
            ("\\0400", "\\400"),
            ("\\01234", "S4"),
            ("\\x", "\\x"),
            ("end\\", "end\\"),
            ("\\c\\n", "\\c\n"),
        ];
        for (raw, expected) in cases {
            assert_eq!(unescape(raw), expected, "unescaping {raw:?}");
        }
    }

    // `format: raw`, checked the same way
    #[test]
    fn raw_format_like_compose() {
        check_raw(
            "A=\"x\"\nB='y'\n  C=1  \n\t# c\n# d\nD=$E ${F}\nE=a # b",
            &[],
            &[("A", "\"x\""), ("B", "'y'"), ("C", "1  "), ("D", "$E ${F}"), ("E", "a # b")],
        );
        check_raw("KEY\nK2", &[("KEY", "v")], &[("KEY", "v")]);
        check_raw("A=\nB", &[("B", "")], &[("A", ""), ("B", "")]);
        check_raw("\u{feff}A=1\r\nB=2\r\n", &[], &[("A", "1"), ("B", "2")]);
        check_raw("A\u{a0}B=1\n\u{a0}C=1\nD\rE=1", &[], &[("A\u{a0}B", "1"), ("C", "1"), ("D\rE", "1")]);
        let longest = format!("A={}\nB=1", "x".repeat(65_533));
        assert_eq!(parse_raw(&longest, &|_| None).map(|m| m.len()), Ok(2));
        check_raw_err("=x", 1, 1, "no variable name on line '=x'");
        check_raw_err("  =x", 1, 3, "no variable name on line '=x'");
        check_raw_err("A B=1", 1, 1, "variable 'A B' contains whitespaces");
        check_raw_err("A\tB=1", 1, 1, "variable 'A\tB' contains whitespaces");
        check_raw_err("export A=1", 1, 1, "variable 'export A' contains whitespaces");
        check_raw_err(&format!("A=1\nA={}", "x".repeat(65_534)), 2, 1, "bufio.Scanner: token too long");
        check_raw_err(&format!("A={}\r\nB=1", "x".repeat(65_533)), 1, 1, "bufio.Scanner: token too long");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in
            ["\"", "'", "A=\"\\", "export", "export\t", "\u{feff}", "#", "A=\\0", "A=\"\\0\"", ":", "\n\n=", "A=${"]
        {
            let _ = parse(text, &|_| None);
            let _ = parse_raw(text, &|_| None);
        }
    }
}
