//! Go string literals as PromQL, LogQL and Loki's stream selectors write them: double-quoted with
//! Go escapes, single-quoted (PromQL), or backtick raw strings.

/// Reads the quoted string at the start of `s`; returns its value and the bytes consumed (quotes
/// included). `quotes` lists the opening quote characters accepted.
pub fn unquote_prefix(s: &str, quotes: &[char]) -> Result<(String, usize), String> {
    let mut chars = s.char_indices();
    let q = match chars.next() {
        Some((_, c)) if quotes.contains(&c) => c,
        Some((_, c)) => return Err(format!("expected a quoted string, found {c:?}")),
        None => return Err("expected a quoted string, found the end".into()),
    };
    let mut out = String::new();
    while let Some((off, c)) = chars.next() {
        if c == q {
            return Ok((out, off + c.len_utf8()));
        }
        if c != '\\' || q == '`' {
            out.push(c);
            continue;
        }
        let Some((eoff, e)) = chars.next() else { break };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => out.push('\''),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..n)
                    .filter_map(|_| chars.next())
                    .map(|(_, c)| c)
                    .collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) if hex.len() == n => out.push(c),
                    _ => return Err(format!("invalid escape \\{e}{hex} at byte {eoff}")),
                }
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.next().and_then(|(_, d)| d.to_digit(8)) {
                        Some(d) => v = v * 8 + d,
                        None => return Err(format!("invalid octal escape at byte {eoff}")),
                    }
                }
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            other => return Err(format!("unknown escape \\{other} at byte {eoff}")),
        }
    }
    Err("unterminated quoted string".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_strings() {
        assert_eq!(
            unquote_prefix(r#""a\"b\n\x41\u00e9" rest"#, &['"']).unwrap(),
            ("a\"b\nAé".into(), 18)
        );
        assert_eq!(
            unquote_prefix("`raw\\n` x", &['`']).unwrap(),
            ("raw\\n".into(), 7)
        );
        assert_eq!(
            unquote_prefix("'single'", &['\'']).unwrap(),
            ("single".into(), 8)
        );
        assert!(unquote_prefix(r#""open"#, &['"']).is_err());
        assert!(unquote_prefix(r#""bad \q""#, &['"']).is_err());
        assert!(unquote_prefix("'x'", &['"']).is_err());
    }
}
