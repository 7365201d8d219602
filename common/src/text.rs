//! Text from data on an operator's screen: control characters (terminal
//! escape sequences in a server's output, say) are shown escaped, never
//! sent to the terminal raw. Newlines and tabs stay.

use std::borrow::Cow;

/// `text` with every control character but newline and tab escaped
/// (`\u{1b}`).
pub fn printable(text: &str) -> Cow<'_, str> {
    let raw = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(raw) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if raw(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_sent() {
        assert_eq!(
            printable("ok\n\tnext \u{1b}[2J\rgone\u{7}"),
            "ok\n\tnext \\u{1b}[2J\\u{d}gone\\u{7}"
        );
        assert!(matches!(printable("plain text\n"), Cow::Borrowed(_)));
    }
}
