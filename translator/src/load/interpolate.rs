//! Variable interpolation in compose files and `.env` values: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alternative}`, `${VAR+alternative}`, and
//! `$$` for a literal `$`.
//!
//! The behaviour is compose-go's `template` package (v2.9.1, the version inside Docker Compose v2.40),
//! not a shell's, and every quirk below was checked against the real `docker compose config`:
//! - a `$` that starts no expression (`$1`, `$-`, `$ `, a trailing `$`) stays as it is; only `${` that is
//!   not followed by `NAME}` or `NAME<operator>…}` is an error;
//! - names are `[_A-Za-z][_A-Za-z0-9]*`, matched case-insensitively by Go's regexp, which also lets the
//!   Kelvin sign `K` (U+212A) and the long s `ſ` (U+017F) through;
//! - an operator's argument runs to the *last* `}` on the same line, and is then cut at the first `}` that
//!   balances the opening `${` (counting every `{`, and skipping the byte after each `{`, as compose does).
//!   What follows the cut is substituted as a template of its own, which only shows in error messages;
//! - the argument (default, alternative or error message) is substituted before the variable is even
//!   looked at, so an error inside it is reported even when the variable is set;
//! - an unset variable without an operator becomes an empty string, and compose warns about it.

use std::fmt::Write as _;

/// How deep `${A:-${B:-…}}` may nest. Compose has no limit (Go's stacks grow); we stop long before the
/// recursion could overflow ours, at a depth no real file reaches.
const MAX_DEPTH: usize = 100;

/// Why a string could not be interpolated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InterpolationError {
    /// Byte offset in the input of the `$` that starts the bad expression (the innermost one, for an error
    /// inside a default).
    pub offset: usize,
    /// Lowercase, naming the bad input.
    pub message: String,
    pub kind: InterpolationErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterpolationErrorKind {
    /// `${` starts no valid expression. `template` is the text compose was scanning when it met it: the
    /// whole input, a default/alternative/message, or the remainder after an operator's closing `}`.
    /// Compose prints it, so we keep it.
    InvalidFormat { template: String },
    /// `${NAME:?reason}` with `NAME` unset or empty, or `${NAME?reason}` with `NAME` unset.
    MissingRequired { variable: String, reason: String },
    /// Expressions nested more than [`MAX_DEPTH`] deep (a limit of ours; compose has none).
    TooDeep,
}

impl InterpolationError {
    /// The message `docker compose` prints for this error in a compose file, at `path` (such as
    /// `services.web.image`), word for word.
    pub fn compose_message(&self, path: &str) -> String {
        match &self.kind {
            InterpolationErrorKind::InvalidFormat { template } => format!(
                "invalid interpolation format for {path}.\nYou may need to escape any $ with another $.\n{template}"
            ),
            _ => format!("error while interpolating {path}: {}", self.message),
        }
    }

    fn invalid(offset: usize, template: &str) -> Self {
        InterpolationError {
            offset,
            message: format!(
                "invalid interpolation format in {}: you may need to escape any $ with another $",
                go_quote(template)
            ),
            kind: InterpolationErrorKind::InvalidFormat { template: template.to_owned() },
        }
    }

    fn missing(offset: usize, variable: &str, reason: String) -> Self {
        // compose's wording, which drops the colon when there is no reason
        let message = if reason.is_empty() {
            format!("required variable {variable} is missing a value")
        } else {
            format!("required variable {variable} is missing a value: {reason}")
        };
        InterpolationError {
            offset,
            message,
            kind: InterpolationErrorKind::MissingRequired { variable: variable.to_owned(), reason },
        }
    }
}

/// Interpolates `input`, resolving variables with `lookup` (`None` means unset, which differs from an
/// empty value for `-`, `?` and `+`).
pub fn interpolate(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, InterpolationError> {
    interpolate_reporting_unset(input, lookup, &mut |_| {})
}

/// [`interpolate`], calling `unset` with the name of every variable that was substituted by an empty
/// string because it is unset (`$A` or `${A}`, not `${A-x}` and the like). Compose warns
/// `The "A" variable is not set. Defaulting to a blank string.` for each.
pub fn interpolate_reporting_unset(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut dyn FnMut(&str),
) -> Result<String, InterpolationError> {
    Interpolator { input, lookup, unset }.substitute(0, input.len(), 0)
}

struct Interpolator<'a> {
    input: &'a str,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    unset: &'a mut dyn FnMut(&str),
}

/// The operators, each with the separator compose splits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    DefaultIfUnsetOrEmpty,
    DefaultIfUnset,
    AltIfSetAndNonEmpty,
    AltIfSet,
    RequiredNonEmpty,
    Required,
}

impl Op {
    /// The operator right after a name. Compose picks the operator whose text occurs first in the whole
    /// expression; names contain none of `:-+?`, so that is always this one.
    fn at(s: &str) -> Option<(Op, usize)> {
        let mut chars = s.chars();
        let op = match (chars.next()?, chars.next()) {
            (':', Some('-')) => (Op::DefaultIfUnsetOrEmpty, 2),
            (':', Some('+')) => (Op::AltIfSetAndNonEmpty, 2),
            (':', Some('?')) => (Op::RequiredNonEmpty, 2),
            ('-', _) => (Op::DefaultIfUnset, 1),
            ('+', _) => (Op::AltIfSet, 1),
            ('?', _) => (Op::Required, 1),
            _ => return None,
        };
        Some(op)
    }
}

/// A `${…}` that compose's pattern accepts.
enum Braced {
    /// `${NAME}`; the `}` is at `name_end`.
    Plain { name_end: usize },
    /// `${NAME<op>…}`, as far as the last `}` on the line: `match_end` is just past it.
    WithOp { name_end: usize, op: Op, op_len: usize, match_end: usize },
}

impl Interpolator<'_> {
    /// Substitutes `self.input[start..end]`; offsets stay those of the whole input so that errors point
    /// into it.
    fn substitute(&mut self, start: usize, end: usize, depth: usize) -> Result<String, InterpolationError> {
        let s = self.input;
        if depth > MAX_DEPTH {
            return Err(InterpolationError {
                offset: start,
                message: format!("expressions nested more than {MAX_DEPTH} deep in {}", go_quote(&s[start..end])),
                kind: InterpolationErrorKind::TooDeep,
            });
        }
        let mut out = String::with_capacity(end - start);
        // Compose substitutes the text after an operator's balancing `}` as a separate template, and names
        // that template in an invalid-format error. We scan it in line (same result, no recursion), and
        // only remember its bounds for the message.
        let mut template = (start, end);
        let mut pos = start;
        while pos < end {
            let Some(found) = s[pos..end].find('$') else {
                out.push_str(&s[pos..end]);
                break;
            };
            let dollar = pos + found;
            out.push_str(&s[pos..dollar]);
            if dollar >= template.1 {
                template = (start, end);
            }
            let after = dollar + 1;
            let next = s[after..end].chars().next();
            match next {
                Some('$') => {
                    out.push('$');
                    pos = after + 1;
                }
                Some(c) if is_name_start(c) => {
                    let name_end = scan_name(s, after, end);
                    out.push_str(&self.value_or_blank(&s[after..name_end]));
                    pos = name_end;
                }
                Some('{') => match parse_braced(s, dollar, end) {
                    None => return Err(InterpolationError::invalid(dollar, &s[template.0..template.1])),
                    Some(Braced::Plain { name_end }) => {
                        out.push_str(&self.value_or_blank(&s[dollar + 2..name_end]));
                        pos = name_end + 1;
                    }
                    Some(Braced::WithOp { name_end, op, op_len, match_end }) => {
                        let arg_start = name_end + op_len;
                        let (arg_end, rest_start) = match first_balancing_brace(&s.as_bytes()[dollar..match_end]) {
                            Some(k) if dollar + k >= arg_start => (dollar + k, dollar + k + 1),
                            // unbalanced: compose keeps the whole match, up to its last `}`
                            _ => (match_end - 1, match_end),
                        };
                        let arg = self.substitute(arg_start, arg_end, depth + 1)?;
                        let name = &s[dollar + 2..name_end];
                        out.push_str(&self.apply(op, name, arg, dollar)?);
                        if rest_start < match_end {
                            template = (rest_start, match_end);
                        }
                        pos = rest_start;
                    }
                },
                // `$` followed by nothing compose recognises is kept as it is
                _ => {
                    out.push('$');
                    pos = after;
                }
            }
        }
        Ok(out)
    }

    fn value_or_blank(&mut self, name: &str) -> String {
        match (self.lookup)(name) {
            Some(value) => value,
            None => {
                (self.unset)(name);
                String::new()
            }
        }
    }

    fn apply(&self, op: Op, name: &str, arg: String, offset: usize) -> Result<String, InterpolationError> {
        let value = (self.lookup)(name);
        Ok(match op {
            Op::DefaultIfUnsetOrEmpty => value.filter(|v| !v.is_empty()).unwrap_or(arg),
            Op::DefaultIfUnset => value.unwrap_or(arg),
            // set but empty gives the (empty) value, unset gives an empty string
            Op::AltIfSetAndNonEmpty => match value {
                Some(v) if !v.is_empty() => arg,
                _ => String::new(),
            },
            Op::AltIfSet => value.map(|_| arg).unwrap_or_default(),
            Op::RequiredNonEmpty => match value {
                Some(v) if !v.is_empty() => v,
                _ => return Err(InterpolationError::missing(offset, name, arg)),
            },
            Op::Required => match value {
                Some(v) => v,
                None => return Err(InterpolationError::missing(offset, name, arg)),
            },
        })
    }
}

/// Matches compose's `\$\{(NAME(?::?[-+?](.*))?)\}` at `dollar` (`.` excludes newlines, so the argument
/// ends at the last `}` before the end of the line), within `s[..end]`.
fn parse_braced(s: &str, dollar: usize, end: usize) -> Option<Braced> {
    let name_start = dollar + 2;
    if !s[name_start..end].chars().next().is_some_and(is_name_start) {
        return None;
    }
    let name_end = scan_name(s, name_start, end);
    let tail = &s[name_end..end];
    match Op::at(tail) {
        Some((op, op_len)) => {
            let arg_start = name_end + op_len;
            let line_end = s[arg_start..end].find('\n').map_or(end, |i| arg_start + i);
            // no `}` on the line: the regexp then wants `}` right after the name, where the operator is
            let close = s[arg_start..line_end].rfind('}')?;
            Some(Braced::WithOp { name_end, op, op_len, match_end: arg_start + close + 1 })
        }
        None => tail.starts_with('}').then_some(Braced::Plain { name_end }),
    }
}

/// compose-go's `getFirstBraceClosingIndex`: the `}` that brings the count of `{` back to zero. Every `{`
/// counts (not only `${`), and the byte after a `{` is skipped, so `{}` inside opens without closing.
fn first_balancing_brace(bytes: &[u8]) -> Option<usize> {
    let mut open = 0i64;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'}' => {
                open -= 1;
                if open == 0 {
                    return Some(i);
                }
            }
            b'{' => {
                open += 1;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `[_a-z]` under Go's case-insensitive matching, which folds `k` with U+212A and `s` with U+017F.
fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '\u{212A}' || c == '\u{17F}'
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

/// End of the name starting at `from`.
fn scan_name(s: &str, from: usize, end: usize) -> usize {
    s[from..end].char_indices().find(|&(_, c)| !is_name_char(c)).map_or(end, |(i, _)| from + i)
}

/// `s` quoted the way Go's `%q` does, since compose's messages quote names and values that way: `"`, `\`
/// and control characters escaped, other characters kept. Go also escapes unassigned code points, which we
/// cannot tell apart here; no name or value in a message is likely to hold one.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !go_is_print(c) => {
                let _ = if (c as u32) < 0x10000 {
                    write!(out, "\\u{:04x}", c as u32)
                } else {
                    write!(out, "\\U{:08x}", c as u32)
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, short of the unassigned code points: no control, format, private-use or
/// separator characters other than the ASCII space.
fn go_is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let format = matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}');
    let private = matches!(c, '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..='\u{10ffff}');
    !(c.is_control() || c.is_whitespace() || format || private)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `env` as a lookup: `("A", "")` sets A to empty; names not listed are unset.
    fn lookup<'a>(env: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    fn check(input: &str, env: &[(&str, &str)], expected: &str) {
        let got = interpolate(input, &lookup(env));
        assert_eq!(got.as_deref(), Ok(expected), "interpolating {input:?} with {env:?}");
    }

    fn check_err(input: &str, env: &[(&str, &str)], offset: usize, message: &str) -> InterpolationError {
        let err = interpolate(input, &lookup(env)).expect_err(input);
        assert_eq!((err.offset, err.message.as_str()), (offset, message), "interpolating {input:?} with {env:?}");
        err
    }

    fn invalid_message(template: &str) -> String {
        format!("invalid interpolation format in {}: you may need to escape any $ with another $", go_quote(template))
    }

    // Each row was run through `docker compose config` (v2.40.3) as `environment: {X: <input>}`.
    #[test]
    fn substitutes_like_compose() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("$A", &[("A", "1")], "1"),
            ("$A", &[], ""),
            ("${A}", &[], ""),
            ("${a}", &[("a", "low")], "low"),
            ("${_}", &[("_", "u")], "u"),
            ("$A_B-c", &[("A_B", "v")], "v-c"),
            ("$A{x}", &[("A", "1")], "1{x}"),
            // defaults: `:-` also on empty, `-` only on unset
            ("${A:-d}", &[("A", "")], "d"),
            ("${A:-d}", &[("A", "v")], "v"),
            ("${A-d}", &[("A", "")], ""),
            ("${A-d}", &[], "d"),
            // required, when satisfied
            ("${A?err}", &[("A", "")], ""),
            ("${A:?err}", &[("A", "v")], "v"),
            // alternatives: `:+` only when non-empty, `+` when set
            ("${A:+alt}", &[("A", "")], ""),
            ("${A:+alt}", &[("A", "v")], "alt"),
            ("${A:+alt}", &[], ""),
            ("${A+alt}", &[("A", "")], "alt"),
            ("${A+alt}", &[], ""),
            ("${A:+${B}}", &[("A", "1"), ("B", "2")], "2"),
            // nesting
            ("${A:-${B:-x}}", &[], "x"),
            ("${A:-${B:-x}}", &[("B", "b")], "b"),
            // escapes, and `$` that starts nothing
            ("$$A", &[("A", "1")], "$A"),
            ("$$$A", &[("A", "1")], "$1"),
            ("$", &[], "$"),
            ("a$", &[], "a$"),
            ("$1", &[], "$1"),
            ("$-x", &[], "$-x"),
            ("$ x", &[], "$ x"),
            ("$é", &[], "$é"),
            ("${A:-$}", &[], "$"),
            ("${A:-$$}", &[], "$"),
            // where the argument ends
            ("${A:-x} and ${B}", &[("B", "b")], "x and b"),
            ("${A:-x}}", &[], "x}"),
            ("${A:-a}b}", &[], "ab}"),
            ("${A:-{x}}", &[], "{x}"),
            ("${A:-{}} y", &[], "{} y"),
            ("${A:-\\}}", &[], "\\}"),
            ("${A:--}", &[], "-"),
            ("${A-:-x}", &[], ":-x"),
            ("${A:-x:-y}", &[], "x:-y"),
            ("${A+x-y}", &[], ""),
            // Go's case folding lets these two through as names
            ("$\u{212A}", &[("\u{212A}", "kelvin")], "kelvin"),
            ("${\u{17F}}", &[("\u{17F}", "long s")], "long s"),
            ("multi\nline $A\n", &[("A", "1")], "multi\nline 1\n"),
        ];
        for (input, env, expected) in cases {
            check(input, env, expected);
        }
    }

    #[test]
    fn missing_required_values() {
        let msg = "required variable A is missing a value: err";
        check_err("${A:?err}", &[("A", "")], 0, msg);
        check_err("${A:?err}", &[], 0, msg);
        check_err("${A?err}", &[], 0, msg);
        check_err("${A:?}", &[], 0, "required variable A is missing a value");
        check_err("${A?}", &[], 0, "required variable A is missing a value");
        // the message is interpolated too
        check_err("${A:?${B}}", &[("B", "bb")], 0, "required variable A is missing a value: bb");
        // the first error wins
        check_err("x ${A:?e1} ${B:?e2}", &[], 2, "required variable A is missing a value: e1");
        // a default is substituted even when it is not needed
        check_err("${A:-${B:?e1}}", &[("A", "1")], 5, "required variable B is missing a value: e1");
        check_err("${A?e}${B:-${C:?c}}", &[("A", "1")], 11, "required variable C is missing a value: c");
        // the message runs to the first balancing `}`
        check_err("${A:?a}b}", &[], 0, "required variable A is missing a value: a");
        let err = check_err("${A:?x}", &[], 0, "required variable A is missing a value: x");
        assert_eq!(err.kind, InterpolationErrorKind::MissingRequired { variable: "A".into(), reason: "x".into() });
        assert_eq!(
            err.compose_message("services.s.environment.X"),
            "error while interpolating services.s.environment.X: required variable A is missing a value: x"
        );
    }

    #[test]
    fn invalid_formats_name_the_template_compose_names() {
        // (input, offset of the bad `${`, template compose prints)
        let cases: &[(&str, usize, &str)] = &[
            ("${", 0, "${"),
            ("${A", 0, "${A"),
            ("${A:}", 0, "${A:}"),
            ("${A:x}", 0, "${A:x}"),
            ("${ A}", 0, "${ A}"),
            ("${A }", 0, "${A }"),
            ("${}", 0, "${}"),
            ("${1A}", 0, "${1A}"),
            ("x ${A", 2, "x ${A"),
            // inside a default, compose names the default
            ("${A-${}", 4, "${"),
            // after an operator's `}`, compose names the rest of the match
            ("${A:-x} ${ }", 8, " ${ }"),
            ("${A:-x} ${", 8, "${A:-x} ${"),
            // an argument cannot span lines
            ("${A:-a\nb}", 0, "${A:-a\nb}"),
            ("${A:-x\n}", 0, "${A:-x\n}"),
        ];
        for (input, offset, template) in cases {
            let err = check_err(input, &[], *offset, &invalid_message(template));
            assert_eq!(err.kind, InterpolationErrorKind::InvalidFormat { template: (*template).to_owned() });
        }
        let err = interpolate("${A", &|_| None).unwrap_err();
        assert_eq!(
            err.compose_message("services.s.image"),
            "invalid interpolation format for services.s.image.\nYou may need to escape any $ with another $.\n${A"
        );
    }

    #[test]
    fn reports_unset_variables_only_where_compose_warns() {
        let mut unset = Vec::new();
        let got = interpolate_reporting_unset("$A ${B} ${C-x} ${D:+y} $E", &lookup(&[("E", "e")]), &mut |name| {
            unset.push(name.to_owned())
        });
        assert_eq!(got.as_deref(), Ok("  x  e"));
        assert_eq!(unset, ["A", "B"]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let input = format!("{}x{}", "${A:-".repeat(10_000), "}".repeat(10_000));
        let err = interpolate(&input, &|_| None).unwrap_err();
        assert_eq!(err.kind, InterpolationErrorKind::TooDeep);
        // many expressions side by side are fine
        let input = "${A:-x}".repeat(10_000);
        assert_eq!(interpolate(&input, &|_| None).map(|s| s.len()), Ok(10_000));
    }

    #[test]
    fn go_quote_escapes_like_go() {
        assert_eq!(go_quote("A\"B=1"), r#""A\"B=1""#);
        assert_eq!(go_quote("\u{1}\t\u{a0}é€\\"), r#""\x01\t\u00a0é€\\""#);
    }

    proptest! {
        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]*") {
            prop_assert_eq!(interpolate(&s, &|_| Some("v".into())), Ok(s.clone()));
        }

        #[test]
        fn escaped_text_comes_back(s in any::<String>()) {
            let escaped = s.replace('$', "$$");
            prop_assert_eq!(interpolate(&escaped, &|_| Some("v".into())), Ok(s));
        }

        #[test]
        fn never_panics(s in "[$:{}?+\\-A-C\n x]*") {
            let _ = interpolate(&s, &|name| (name == "A").then(|| "a".into()));
        }
    }
}
