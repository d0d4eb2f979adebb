//! Text from models and servers is untrusted. Two rules, used wherever mica writes such text:
//!
//! - [`terminal_safe`]: control characters (C0 except newline and tab, DEL, C1) are shown as
//!   `\x..` escapes, so an answer cannot retitle the terminal (`ESC ]0;…`), move the cursor or
//!   hide what was printed;
//! - [`csv_safe`]: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
//!   leading `'` (OWASP's rule against CSV/formula injection), so a spreadsheet shows it as text
//!   instead of evaluating `=HYPERLINK(...)`.

use std::borrow::Cow;

/// `s` with every control character except `\n` and `\t` written as `\xNN` (`\u{NNNN}` for C1).
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    let bad = |c: char| (c.is_control() && c != '\n' && c != '\t') || c == '\u{7f}';
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            let n = c as u32;
            if n < 0x100 {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:04x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` made safe as a CSV cell for spreadsheets: a leading `'` when it starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return.
pub fn csv_safe(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_formulas_are_neutralised() {
        let hostile = "Count: 3\u{1b}]0;pwned\u{7}\u{1b}[2J done\n";
        let t = terminal_safe(hostile);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t}");
        assert_eq!(t, "Count: 3\\x1b]0;pwned\\x07\\x1b[2J done\n");
        assert_eq!(terminal_safe("plain\ttext"), "plain\ttext");
        assert_eq!(terminal_safe("c1 \u{9b}31m"), "c1 \\x9b31m");
        assert_eq!(
            csv_safe("=HYPERLINK(\"http://x\",\"3\")"),
            "'=HYPERLINK(\"http://x\",\"3\")"
        );
        for s in ["+1", "-4", "@SUM(A1)", "\tx"] {
            assert!(csv_safe(s).starts_with('\''), "{s}");
        }
        assert_eq!(csv_safe("Count: 3"), "Count: 3");
        assert_eq!(csv_safe(""), "");
    }
}
