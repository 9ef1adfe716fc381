//! Durations, byte sizes and command lines as compose reads them. compose-go converts these while
//! decoding into its typed model (mapstructure hooks), not in the tree passes, so they are plain
//! functions here for the typed model to call:
//! - [`parse_duration`] follows `types/duration.go`, which parses with xhit/go-str2duration v2.1.0
//!   (Go's `time.ParseDuration` plus days and weeks); [`format_duration`] prints the way Go's
//!   `time.Duration.String` does, which is what `docker compose config` shows;
//! - [`parse_bytes`] follows `types/bytes.go`: an integer, else docker/go-units `RAMInBytes`
//!   ([`ram_in_bytes`], binary multiples, case-insensitive, optional `b`/`ib`);
//! - [`shell_split`] follows `types/command.go`, which splits with mattn/go-shellwords v1.0.12 with
//!   environment and backtick expansion off.

use std::time::Duration;

/// Parses `1m30s`, `1.5s`, `2d`, `1w` as compose does: Go's `time.ParseDuration` grammar (a sequence
/// of decimal numbers, each with an optional fraction and a unit, in any order and repeatable:
/// `1m1m` is two minutes) plus the units `d` (24h) and `w` (168h). Units are case-sensitive (`1.5S`
/// is refused), a bare `0` is zero but any other number needs a unit, and the empty string is an
/// error. Negative durations, which compose accepts (`interval: -1s` prints as `-1s`), are refused:
/// a [`Duration`] cannot hold them; [`parse_duration_nanos`] keeps the sign.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let nanos = parse_duration_nanos(text)?;
    if nanos < 0 {
        return Err(format!("negative duration {text:?} is not supported"));
    }
    Ok(Duration::from_nanos(nanos.unsigned_abs()))
}

/// [`parse_duration`] as Go's signed nanoseconds, negative durations included.
pub fn parse_duration_nanos(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole = leading_int(&rest[..int_len]).ok_or_else(invalid)?;
        rest = &rest[int_len..];
        // The fraction keeps the digits an i64 holds and ignores the rest, as Go does.
        let (mut fraction, mut scale, mut frac_len) = (0i64, 1f64, 0usize);
        if let Some(after) = rest.strip_prefix('.') {
            frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for digit in after[..frac_len].bytes() {
                match fraction.checked_mul(10).and_then(|f| f.checked_add(i64::from(digit - b'0'))) {
                    Some(f) if !overflow => {
                        fraction = f;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            rest = &after[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos = unit_nanos(unit).ok_or_else(|| format!("time: unknown unit {unit:?} in duration {text:?}"))?;
        let mut value = whole.checked_mul(nanos).ok_or_else(invalid)?;
        if fraction > 0 {
            // Through f64, as Go does, which is exact to the nanosecond for fractions of an hour.
            value = value.checked_add((fraction as f64 * (nanos as f64 / scale)) as i64).ok_or_else(invalid)?;
        }
        total = total.checked_add(value).ok_or_else(invalid)?;
    }
    Ok(if negative { -total } else { total })
}

/// A run of digits as an i64, `None` on overflow (the empty run is zero).
fn leading_int(digits: &str) -> Option<i64> {
    digits.bytes().try_fold(0i64, |n, d| n.checked_mul(10)?.checked_add(i64::from(d - b'0')))
}

fn unit_nanos(unit: &str) -> Option<i64> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        "d" => 24 * 3600 * 1_000_000_000,
        "w" => 168 * 3600 * 1_000_000_000,
        _ => return None,
    })
}

/// Go's `time.Duration.String`: `1h0m0s`, `1m30s`, `1.5s`, `500ms`, `2µs`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    format_nanos(duration.as_nanos())
}

/// [`format_duration`] for Go's signed nanoseconds: `-1s`.
pub fn format_duration_nanos(nanos: i64) -> String {
    let text = format_nanos(u128::from(nanos.unsigned_abs()));
    if nanos < 0 { format!("-{text}") } else { text }
}

fn format_nanos(nanos: u128) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 6));
    }
    let mut out = String::new();
    let seconds = nanos / 1_000_000_000;
    let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if seconds >= 60 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", decimal(nanos % 60_000_000_000, 9)));
    out
}

/// `value / 10^digits` with the fraction's trailing zeros (and a bare point) removed.
fn decimal(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let frac = format!("{:0width$}", value % scale, width = digits as usize);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() { format!("{}", value / scale) } else { format!("{}.{frac}", value / scale) }
}

/// A byte size as compose reads `mem_limit`, `shm_size` and friends: a plain integer (negative
/// allowed, `-1` meaning unlimited), else [`ram_in_bytes`].
pub fn parse_bytes(text: &str) -> Result<i64, String> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    ram_in_bytes(text)
}

/// docker/go-units `RAMInBytes`: `512m`, `1.5GiB`, `10 KB`, `100b`; the multiples are binary
/// whatever the spelling, the suffix is case-insensitive and at most three letters.
pub fn ram_in_bytes(text: &str) -> Result<i64, String> {
    let invalid_size = || format!("invalid size: '{text}'");
    let Some(sep) = text.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(invalid_size());
    };
    let (number, suffix) =
        if text.as_bytes()[sep] == b' ' { (&text[..sep], &text[sep + 1..]) } else { (&text[..=sep], &text[sep + 1..]) };
    let size =
        parse_go_float(number).ok_or_else(|| format!("strconv.ParseFloat: parsing {number:?}: invalid syntax"))?;
    if size < 0.0 {
        return Err(invalid_size());
    }
    if suffix.is_empty() {
        return Ok(size as i64);
    }
    let bad_suffix = || format!("invalid suffix: '{}'", suffix.to_lowercase());
    if suffix.len() > 3 {
        return Err(format!("invalid suffix: '{suffix}'"));
    }
    let lower = suffix.to_lowercase();
    let mut chars = lower.chars();
    let multiplier: f64 = match chars.next() {
        Some('b') if lower.len() == 1 => return Ok(size as i64),
        Some('k') => 1024.0,
        Some('m') => 1024.0 * 1024.0,
        Some('g') => 1024.0 * 1024.0 * 1024.0,
        Some('t') => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        Some('p') => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad_suffix()),
    };
    match chars.as_str() {
        "" | "b" | "ib" => Ok((size * multiplier) as i64),
        _ => Err(bad_suffix()),
    }
}

/// Go's `strconv.ParseFloat` for decimal text (Rust also takes `inf`/`nan` words, which cannot reach
/// here: the number always ends in a digit, a point or nothing).
fn parse_go_float(text: &str) -> Option<f64> {
    if text.is_empty() || text.contains('_') {
        return None;
    }
    text.parse().ok()
}

/// Splits a command line as compose splits `command: echo "a b"` (go-shellwords, no expansion).
///
/// Surprises kept: parsing **stops silently** at an unquoted `;`, `&`, `|`, `<` or `>` (so
/// `echo a && echo b` is `["echo", "a"]`, and `echo 2>f` is `["echo"]`); a backslash escapes any
/// character outside single quotes, also inside double quotes; `(` outside quotes is an error unless
/// it follows `$`; an unclosed quote is an error.
pub fn shell_split(line: &str) -> Result<Vec<String>, String> {
    let invalid = || "invalid command line string".to_owned();
    let mut args = Vec::new();
    let mut buf = String::new();
    let (mut escaped, mut double, mut single, mut back, mut dollar) = (false, false, false, false, false);
    // Whether `buf` holds an argument (possibly an empty quoted one).
    let mut got = false;
    for r in line.chars() {
        if escaped {
            buf.push(r);
            escaped = false;
            got = true;
            continue;
        }
        if r == '\\' {
            if single {
                buf.push(r);
            } else {
                escaped = true;
            }
            continue;
        }
        if matches!(r, ' ' | '\t' | '\r' | '\n') {
            if single || double || back || dollar {
                buf.push(r);
            } else if got {
                args.push(std::mem::take(&mut buf));
                got = false;
            }
            continue;
        }
        match r {
            '`' if !single && !double && !dollar => back = !back,
            ')' if !single && !double && !back => dollar = !dollar,
            '(' if !single && !double && !back => {
                if !dollar && buf.ends_with('$') {
                    dollar = true;
                    buf.push('(');
                    continue;
                }
                return Err(invalid());
            }
            '"' if !single && !dollar => {
                if double {
                    got = true;
                }
                double = !double;
                continue;
            }
            '\'' if !double && !dollar => {
                if single {
                    got = true;
                }
                single = !single;
                continue;
            }
            ';' | '&' | '|' | '<' | '>' if !(single || double || back || dollar) => {
                // `2>file`: the descriptor number is part of the redirection, not an argument.
                if r == '>' && buf.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                    got = false;
                }
                if got {
                    args.push(buf);
                }
                return Ok(args);
            }
            _ => {}
        }
        got = true;
        buf.push(r);
    }
    if got {
        args.push(buf);
    }
    if escaped || single || double || back || dollar {
        return Err(invalid());
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_like_str2duration() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("+0", 0),
            ("0s", 0),
            ("1m30s", 90_000_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("10ms", 10_000_000),
            ("1h", 3_600_000_000_000),
            ("120m", 7_200_000_000_000),
            ("1m1m", 120_000_000_000),
            ("1s1m", 61_000_000_000),
            ("2d", 172_800_000_000_000),
            ("1w2d3h4m5s6ms7µs8ns", 788_645_006_007_008),
            ("300us", 300_000),
            ("1.5h", 5_400_000_000_000),
            ("1.0000000001s", 1_000_000_000),
        ];
        for (text, nanos) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::from_nanos(*nanos)), "{text}");
        }
        let errors = [
            ("", "time: invalid duration \"\""),
            ("10", "time: missing unit in duration \"10\""),
            ("1.5S", "time: unknown unit \"S\" in duration \"1.5S\""),
            ("1H", "time: unknown unit \"H\" in duration \"1H\""),
            (".s", "time: invalid duration \".s\""),
            ("abc", "time: invalid duration \"abc\""),
            ("99999999999999999999s", "time: invalid duration \"99999999999999999999s\""),
            ("-1s", "negative duration \"-1s\" is not supported"),
        ];
        for (text, want) in errors {
            assert_eq!(parse_duration(text), Err(want.to_owned()), "{text}");
        }
        assert_eq!(parse_duration_nanos("-1.5s"), Ok(-1_500_000_000));
        assert_eq!(format_duration_nanos(-1_500_000_000), "-1.5s");
        assert_eq!(format_duration_nanos(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn formats_durations_like_go() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (172_800_000_000_000, "48h0m0s"),
            (3_661_000_000_001, "1h1m1.000000001s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(format_duration(Duration::from_nanos(*nanos)), *text, "{nanos}");
        }
    }

    #[test]
    fn parses_sizes_like_go_units() {
        let cases: &[(&str, i64)] = &[
            ("32", 32),
            ("-1", -1),
            ("32b", 32),
            ("32B", 32),
            ("32k", 32 * 1024),
            ("32K", 32 * 1024),
            ("32kb", 32 * 1024),
            ("32Kib", 32 * 1024),
            ("32Mb", 32 * 1024 * 1024),
            ("512M", 536_870_912),
            ("32Gb", 32 * 1024 * 1024 * 1024),
            ("32Tb", 32 * 1024 * 1024 * 1024 * 1024),
            ("32PB", 32 * 1024 * 1024 * 1024 * 1024 * 1024),
            ("32.5KB", 33280),
            ("32.3 MiB", 33_869_004),
            ("0.3 K", 307),
            ("1e3k", 1_024_000),
        ];
        for (text, want) in cases {
            assert_eq!(parse_bytes(text), Ok(*want), "{text}");
        }
        let errors = [
            ("", "invalid size: ''"),
            ("hello", "invalid size: 'hello'"),
            ("-32", "invalid size: '-32'"),
            ("32m b", "strconv.ParseFloat: parsing \"32m\": invalid syntax"),
            ("32bm", "invalid suffix: 'bm'"),
            ("32kbb", "invalid suffix: 'kbb'"),
            ("32.5 KiBb", "invalid suffix: 'KiBb'"),
            (".", "strconv.ParseFloat: parsing \".\": invalid syntax"),
            ("-32.5k", "invalid size: '-32.5k'"),
        ];
        for (text, want) in errors {
            assert_eq!(ram_in_bytes(text), Err(want.to_owned()), "{text}");
        }
        for text in ["0", "0b", "0 B", "0.", "0. ", "0.b", "-0", "-0 b", "32.", "32. B", "0 ", ".3kB"] {
            assert!(ram_in_bytes(text).is_ok(), "{text}");
        }
        for text in [" 0", " 0b", "0b ", "0 B ", ". ", " ", " .", "-32b", "32b.", "32 bb", "32 b b", "32  b", " 32 "] {
            assert!(ram_in_bytes(text).is_err(), "{text}");
        }
    }

    #[test]
    fn splits_like_shellwords() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("echo hello", &["echo", "hello"]),
            (r#"echo "a b" 'c d'"#, &["echo", "a b", "c d"]),
            (r#"sh -c "echo \"hi\"""#, &["sh", "-c", "echo \"hi\""]),
            (r#"a\ b c"#, &["a b", "c"]),
            (r#"'a\b'"#, &[r"a\b"]),
            (r#""a\nb""#, &["anb"]),
            ("echo ''", &["echo", ""]),
            ("echo a && echo b", &["echo", "a"]),
            ("echo a; b", &["echo", "a"]),
            ("echo 2>f", &["echo"]),
            ("echo a>f", &["echo", "a"]),
            ("echo $(date)", &["echo", "$(date)"]),
            ("  spaced\targs\n", &["spaced", "args"]),
            ("echo `date`", &["echo", "`date`"]),
        ];
        for (line, want) in cases {
            assert_eq!(shell_split(line), Ok(want.iter().map(|s| (*s).to_owned()).collect()), "{line}");
        }
        for line in ["echo (a)", "echo 'a", "echo \"a", "echo a\\", "echo `a", "a)"] {
            assert_eq!(shell_split(line), Err("invalid command line string".to_owned()), "{line}");
        }
    }
}
