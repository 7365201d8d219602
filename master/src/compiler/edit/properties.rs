//! Java properties edits (`identity-event.properties`), line by line: a
//! key's value is replaced where the key is (continuation lines included),
//! a new key is appended, comments and blank lines stay.

use super::{Declared, Edit, EditError, error, scalar_text};

/// Applies every edit in order.
pub fn apply(text: &str, edits: &[Declared]) -> Result<String, EditError> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (index, declared) in edits.iter().enumerate() {
        apply_one(&mut lines, &declared.edit)
            .map_err(|message| error(index, &declared.edit, message))?;
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

fn apply_one(lines: &mut Vec<String>, edit: &Edit) -> Result<(), String> {
    match edit {
        Edit::Set { path, value, .. } => set(lines, path, &scalar_text(value)?),
        Edit::Merge { table } => {
            let mut flat = Vec::new();
            flatten("", table, &mut flat)?;
            for (key, value) in flat {
                set(lines, &key, &value);
            }
        }
        Edit::Remove { path } => {
            let span = find(lines, path).ok_or_else(|| format!("no key {path:?} to remove"))?;
            lines.drain(span);
        }
        Edit::Replace { .. } | Edit::Insert { .. } | Edit::Append { .. } => {
            return Err("properties files take set, merge and remove".into());
        }
    }
    Ok(())
}

fn set(lines: &mut Vec<String>, key: &str, value: &str) {
    let line = format!("{}={}", escape(key, true), escape(value, false));
    match find(lines, key) {
        Some(span) => {
            lines.splice(span, [line]);
        }
        None => lines.push(line),
    }
}

/// `a.b = …` for nested tables.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&full, inner, out)?,
            other => out.push((full, scalar_text(other)?)),
        }
    }
    Ok(())
}

/// The lines (with continuations) holding `key`.
fn find(lines: &[String], key: &str) -> Option<std::ops::Range<usize>> {
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let mut end = i + 1;
        while continues(&lines[end - 1]) && end < lines.len() {
            end += 1;
        }
        if key_of(&lines[start]).as_deref() == Some(key) {
            return Some(start..end);
        }
        i = end;
    }
    None
}

/// A line ending in an odd number of backslashes continues on the next.
fn continues(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// The (unescaped) key of a logical line; `None` for comments and blanks.
fn key_of(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
        return None;
    }
    let mut key = String::new();
    let mut chars = trimmed.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => key.extend(chars.next()),
            '=' | ':' => break,
            c if c.is_whitespace() => break,
            c => key.push(c),
        }
    }
    Some(key)
}

fn escape(text: &str, is_key: bool) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '=' | ':' | ' ' if is_key => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 => out.push_str("\\ "),
            '#' | '!' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_edits;
    use super::*;

    const EVENTS: &str = "# Identity event handlers\nmodule.name.1=analyticsLoginDataPublisher\nanalyticsLoginDataPublisher.enable=false\nlong.value=a,\\\n  b\n\n! other comment\nx : y\n";

    #[test]
    fn keys_are_set_in_place_and_new_ones_appended() {
        let out = apply(
            EVENTS,
            &parse_edits("[[edit]]\nset = \"analyticsLoginDataPublisher.enable\"\nvalue = true\n[[edit]]\nset = \"long.value\"\nvalue = \"c\"\n[[edit]]\n[edit.merge.analyticsSessionDataPublisher]\nenable = true\n").unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            "# Identity event handlers\nmodule.name.1=analyticsLoginDataPublisher\nanalyticsLoginDataPublisher.enable=true\nlong.value=c\n\n! other comment\nx : y\nanalyticsSessionDataPublisher.enable=true\n"
        );
    }

    #[test]
    fn removing_a_missing_key_is_an_error() {
        let out = apply(EVENTS, &parse_edits("[[edit]]\nremove = \"x\"\n").unwrap()).unwrap();
        assert!(!out.contains("x : y"));
        let err = apply(
            EVENTS,
            &parse_edits("[[edit]]\nremove = \"nope\"\n").unwrap(),
        )
        .unwrap_err();
        assert!(err.message.contains("no key"), "{err}");
    }
}
