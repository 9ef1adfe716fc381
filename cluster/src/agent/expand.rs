//! `$(VAR)` expansion exactly as the kubelet does it for env values, command and args: a port of
//! Kubernetes' `third_party/forked/golang/expansion/expand.go`. `$$` becomes `$`, unknown or unterminated
//! references are left as written, and a `$` before any other character is kept with that character.

use std::collections::HashMap;

/// Expands `input`, looking names up in each map of `contexts` in order.
pub fn expand(input: &str, contexts: &[&HashMap<String, String>]) -> String {
    let lookup = |name: &str| -> String {
        for vars in contexts {
            if let Some(value) = vars.get(name) {
                return value.clone();
            }
        }
        format!("$({name})")
    };
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let (read, is_var, advance) = try_read_variable_name(rest);
            if is_var {
                out.push_str(&lookup(&read));
            } else {
                out.push_str(&read);
            }
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint..]);
    out
}

/// Returns (text read, whether it is a variable name, bytes consumed after the `$`).
fn try_read_variable_name(input: &str) -> (String, bool, usize) {
    let bytes = input.as_bytes();
    match bytes[0] {
        b'$' => ("$".to_string(), false, 1),
        b'(' => {
            for i in 1..bytes.len() {
                if bytes[i] == b')' {
                    return (input[1..i].to_string(), true, i + 1);
                }
            }
            ("$(".to_string(), false, 1)
        }
        _ => {
            // Go copies one byte here; copying the whole character keeps the string valid UTF-8 and is the
            // same for ASCII.
            let ch = input.chars().next().unwrap_or_default();
            (format!("${ch}"), false, ch.len_utf8())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        [("VAR_A", "A"), ("VAR_B", "B"), ("VAR_C", "C"), ("VAR_REF", "$(VAR_A)"), ("VAR_EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Cases taken from Kubernetes' expand_test.go.
    #[test]
    fn kubernetes_cases() {
        let v = vars();
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)-1", "A-1"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("foo$(VAR_EMPTY)bar", "foobar"),
            ("$(VAR_EMPTY)", ""),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
            ("$$$$$$$(VAR_A)", "$$$A"),
            ("$(VAR_A", "$(VAR_A"),
            ("$VAR_A", "$VAR_A"),
            ("$", "$"),
            ("$$", "$"),
            ("$x", "$x"),
            ("$(", "$("),
            ("foo$()bar", "foo$()bar"),
            ("a$(VAR_A)$", "aA$"),
            ("ünï$(VAR_A)ç$ødé", "ünïAç$ødé"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &[&v]), want, "input {input:?}");
        }
    }

    #[test]
    fn earlier_context_wins() {
        let a: HashMap<String, String> = [("X".to_string(), "1".to_string())].into();
        let b: HashMap<String, String> =
            [("X".to_string(), "2".to_string()), ("Y".to_string(), "3".to_string())].into();
        assert_eq!(expand("$(X)$(Y)", &[&a, &b]), "13");
    }
}
