//! A product's SQL script split into statements, so that each runs on its
//! own and a failure names the statement (its number and first line). It
//! knows what WSO2's `dbscripts/` use: quotes ('…', "…", `…`), comments
//! (`--`, `#` for MySQL, `/* … */`), PostgreSQL's dollar quotes
//! (`$$ … $$`, `$body$ … $body$`) and the MySQL client's `DELIMITER`.

/// The engine a script is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL and MariaDB.
    MySql,
    /// PostgreSQL.
    Postgres,
}

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Its text, without the terminating delimiter.
    pub text: String,
    /// The script line it starts on (1-based).
    pub line: usize,
}

impl Statement {
    /// The first line of its text, cut short, for error messages.
    pub fn head(&self) -> String {
        let first = self.text.lines().next().unwrap_or_default().trim();
        if first.chars().count() > 80 {
            format!("{}…", first.chars().take(80).collect::<String>())
        } else {
            first.to_string()
        }
    }
}

/// Splits `script` into statements. An unterminated quote or comment is an
/// error naming the line it opens on.
pub fn split(script: &str, dialect: Dialect) -> Result<Vec<Statement>, String> {
    let chars: Vec<char> = script.chars().collect();
    let mut statements = Vec::new();
    let mut delimiter = String::from(";");
    let mut current = String::new();
    let mut start_line = 1;
    let mut line = 1;
    let mut i = 0;
    let at_line_start = |current: &str| current.trim().is_empty();
    while i < chars.len() {
        let c = chars[i];
        // `DELIMITER xx` (MySQL client syntax) on a line of its own.
        if dialect == Dialect::MySql
            && at_line_start(&current)
            && starts_with_word(&chars, i, "DELIMITER")
        {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            let word: String = chars[i + "DELIMITER".len()..end].iter().collect();
            let word = word.trim();
            if word.is_empty() {
                return Err(format!("line {line}: DELIMITER without a delimiter"));
            }
            delimiter = word.to_string();
            current.clear();
            i = end;
            continue;
        }
        if matches_at(&chars, i, &delimiter) {
            push(&mut statements, &mut current, start_line);
            i += delimiter.chars().count();
            start_line = line;
            continue;
        }
        if current.trim().is_empty() {
            start_line = line;
        }
        match c {
            '\'' | '"' | '`' => {
                let opened = line;
                let end = quoted_end(&chars, i, c, dialect == Dialect::MySql)
                    .ok_or_else(|| format!("line {opened}: a {c} quote is never closed"))?;
                for &q in &chars[i..end] {
                    line += usize::from(q == '\n');
                    current.push(q);
                }
                i = end;
            }
            '-' if chars.get(i + 1) == Some(&'-') => i = skip_line(&chars, i),
            '#' if dialect == Dialect::MySql => i = skip_line(&chars, i),
            '/' if chars.get(i + 1) == Some(&'*') => {
                let opened = line;
                let close = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                    .ok_or_else(|| format!("line {opened}: a /* comment is never closed"))?;
                line += chars[i..close].iter().filter(|&&c| c == '\n').count();
                current.push(' ');
                i = close + 2;
            }
            '$' if dialect == Dialect::Postgres => {
                if let Some(tag) = dollar_tag(&chars, i) {
                    let opened = line;
                    let body_start = i + tag.len();
                    let close = find(&chars, body_start, &tag).ok_or_else(|| {
                        format!("line {opened}: the dollar quote {tag} is never closed")
                    })?;
                    let end = close + tag.len();
                    for &q in &chars[i..end] {
                        line += usize::from(q == '\n');
                        current.push(q);
                    }
                    i = end;
                } else {
                    current.push(c);
                    i += 1;
                }
            }
            _ => {
                line += usize::from(c == '\n');
                current.push(c);
                i += 1;
            }
        }
    }
    push(&mut statements, &mut current, start_line);
    Ok(statements)
}

fn push(statements: &mut Vec<Statement>, current: &mut String, line: usize) {
    let text = current.trim();
    if !text.is_empty() {
        statements.push(Statement {
            text: text.to_string(),
            line,
        });
    }
    current.clear();
}

fn matches_at(chars: &[char], i: usize, word: &str) -> bool {
    word.chars()
        .enumerate()
        .all(|(k, w)| chars.get(i + k) == Some(&w))
}

fn starts_with_word(chars: &[char], i: usize, word: &str) -> bool {
    word.chars()
        .enumerate()
        .all(|(k, w)| chars.get(i + k).is_some_and(|c| c.eq_ignore_ascii_case(&w)))
        && chars.get(i + word.len()).is_some_and(|c| c.is_whitespace())
}

fn skip_line(chars: &[char], i: usize) -> usize {
    chars[i..]
        .iter()
        .position(|&c| c == '\n')
        .map_or(chars.len(), |p| i + p)
}

/// The index just past the closing quote; a doubled quote (and, in MySQL,
/// a backslash) escapes it.
fn quoted_end(chars: &[char], open: usize, quote: char, backslash: bool) -> Option<usize> {
    let mut j = open + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' if backslash && quote != '`' => j += 2,
            c if c == quote && chars.get(j + 1) == Some(&quote) => j += 2,
            c if c == quote => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// `$tag$` (or `$$`) opening at `i`.
fn dollar_tag(chars: &[char], i: usize) -> Option<String> {
    let mut j = i + 1;
    while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
        j += 1;
    }
    if chars.get(j) != Some(&'$') {
        return None;
    }
    // `$1` is a parameter, not a tag.
    if chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(chars[i..=j].iter().collect())
}

fn find(chars: &[char], from: usize, word: &str) -> Option<usize> {
    (from..chars.len()).find(|&j| matches_at(chars, j, word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str, dialect: Dialect) -> Vec<String> {
        split(script, dialect)
            .unwrap()
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn statements_end_at_semicolons_outside_quotes_and_comments() {
        let script = "-- a comment; not a statement\nCREATE TABLE A (X VARCHAR(5) DEFAULT ';');\n\n/* block; */ INSERT INTO A VALUES ('it''s;');\nINSERT INTO A VALUES (\"x;\")";
        assert_eq!(
            texts(script, Dialect::MySql),
            [
                "CREATE TABLE A (X VARCHAR(5) DEFAULT ';')",
                "INSERT INTO A VALUES ('it''s;')",
                "INSERT INTO A VALUES (\"x;\")"
            ]
        );
        let lines: Vec<usize> = split(script, Dialect::MySql)
            .unwrap()
            .iter()
            .map(|s| s.line)
            .collect();
        assert_eq!(lines, [2, 4, 5]);
    }

    #[test]
    fn mysql_delimiter_blocks_keep_their_inner_semicolons() {
        let script = "CREATE TABLE T (A INT);\nDELIMITER //\nCREATE TRIGGER X BEFORE INSERT ON T FOR EACH ROW BEGIN SET NEW.A = 1; END//\nDELIMITER ;\nINSERT INTO T VALUES (1);\n";
        assert_eq!(
            texts(script, Dialect::MySql),
            [
                "CREATE TABLE T (A INT)",
                "CREATE TRIGGER X BEFORE INSERT ON T FOR EACH ROW BEGIN SET NEW.A = 1; END",
                "INSERT INTO T VALUES (1)"
            ]
        );
    }

    #[test]
    fn postgres_dollar_quoted_bodies_keep_their_semicolons() {
        let script = "CREATE OR REPLACE FUNCTION f() RETURNS trigger AS $body$\nBEGIN NEW.a := 1; RETURN NEW; END;\n$body$ LANGUAGE plpgsql;\nSELECT $$a;b$$, $1;";
        assert_eq!(
            texts(script, Dialect::Postgres),
            [
                "CREATE OR REPLACE FUNCTION f() RETURNS trigger AS $body$\nBEGIN NEW.a := 1; RETURN NEW; END;\n$body$ LANGUAGE plpgsql",
                "SELECT $$a;b$$, $1"
            ]
        );
    }

    #[test]
    fn an_unterminated_quote_or_comment_names_its_line() {
        let e = split("SELECT 1;\nSELECT 'oops;\n", Dialect::MySql).unwrap_err();
        assert!(e.contains("line 2") && e.contains("never closed"), "{e}");
        let e = split("/* never\nclosed", Dialect::Postgres).unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = split("SELECT $x$ abc", Dialect::Postgres).unwrap_err();
        assert!(e.contains("$x$"), "{e}");
    }

    #[test]
    fn a_mysql_hash_comment_is_a_comment_but_not_in_postgres() {
        assert_eq!(texts("# note;\nSELECT 1;", Dialect::MySql), ["SELECT 1"]);
        assert_eq!(
            split("SELECT 1 # 2;", Dialect::Postgres).unwrap()[0].text,
            "SELECT 1 # 2"
        );
    }
}
