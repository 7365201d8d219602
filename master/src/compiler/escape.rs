//! Auto-escaping by output format, and the check that a rendered file is
//! still a file of its format. A template's name says its format
//! (`deployment.toml.j2`); every value it prints is escaped for that format
//! unless the template marks it safe (`tojson` output is). A node's facts,
//! a peer's address or a site value therefore cannot add a TOML table, an
//! XML element or a shell command to a peer's configuration.

use minijinja::AutoEscape;

/// The formats templates are escaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// XML content and attribute values: the five entities.
    Xml,
    /// TOML and JSON: the content of a basic ("…") string.
    QuotedString,
    /// YAML: plain scalars stay plain, anything else becomes a
    /// double-quoted scalar.
    Yaml,
    /// Java properties values: backslash escapes.
    Properties,
    /// POSIX shell, inside double quotes (also a systemd environment file).
    Shell,
}

impl Format {
    /// The format of a template (or target file) by its name.
    pub fn of(name: &str) -> Option<Self> {
        let name = name.trim_end_matches(".j2");
        let extension = name.rsplit_once('.').map(|(_, e)| e)?;
        Some(match extension {
            "xml" => Self::Xml,
            "toml" | "json" => Self::QuotedString,
            "yaml" | "yml" => Self::Yaml,
            "properties" => Self::Properties,
            "sh" => Self::Shell,
            _ => return None,
        })
    }

    /// The minijinja auto-escape mode standing for this format.
    pub fn auto_escape(self) -> AutoEscape {
        AutoEscape::Custom(self.mode_name())
    }

    fn mode_name(self) -> &'static str {
        match self {
            Self::Xml => "xml",
            Self::QuotedString => "quoted-string",
            Self::Yaml => "yaml",
            Self::Properties => "properties",
            Self::Shell => "shell",
        }
    }

    /// The format an auto-escape mode stands for.
    pub fn from_auto_escape(mode: AutoEscape) -> Option<Self> {
        let AutoEscape::Custom(name) = mode else {
            return None;
        };
        [
            Self::Xml,
            Self::QuotedString,
            Self::Yaml,
            Self::Properties,
            Self::Shell,
        ]
        .into_iter()
        .find(|f| f.mode_name() == name)
    }

    /// `text` escaped for this format; `Err` for text the format cannot
    /// carry at all.
    pub fn escape(self, text: &str) -> Result<String, String> {
        Ok(match self {
            Self::Xml => xml(text),
            Self::QuotedString => quoted(text),
            Self::Yaml => yaml(text),
            Self::Properties => properties(text),
            Self::Shell => shell(text)?,
        })
    }

    /// Checks that `content`, a rendering of a template of this format, is
    /// well-formed; the message says where it is not.
    pub fn check_rendered(self, name: &str, content: &str) -> Result<(), String> {
        let name = name.trim_end_matches(".j2");
        if name.ends_with(".toml") {
            content
                .parse::<toml::Table>()
                .map(drop)
                .map_err(|e| format!("renders invalid TOML: {}", e.message()))
        } else if name.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(content)
                .map(drop)
                .map_err(|e| format!("renders invalid JSON: {e}"))
        } else if self == Self::Yaml {
            serde_saphyr::from_str::<serde_json::Value>(content)
                .map(drop)
                .map_err(|e| format!("renders invalid YAML: {e}"))
        } else if self == Self::Xml {
            roxmltree::Document::parse(content)
                .map(drop)
                .map_err(|e| format!("renders invalid XML: {e}"))
        } else {
            Ok(())
        }
    }
}

fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The content of a TOML basic string or a JSON string.
fn quoted(text: &str) -> String {
    let json = serde_json::to_string(text).expect("a string serialises");
    json[1..json.len() - 1].to_string()
}

/// Text YAML reads back as the same string without quotes.
fn is_plain_yaml(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let special_word = matches!(
        text.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~" | "y" | "n"
    );
    !special_word
        && text.parse::<f64>().is_err()
        && !"-?:,[]{}#&*!|>'\"%@` ".contains(first)
        && !text.ends_with(' ')
        && !text.ends_with(':')
        && !text.contains(": ")
        && !text.contains(" #")
        && text.chars().all(|c| !c.is_control())
}

fn yaml(text: &str) -> String {
    if is_plain_yaml(text) {
        text.to_string()
    } else {
        serde_json::to_string(text).expect("a string serialises")
    }
}

fn properties(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn shell(text: &str) -> Result<String, String> {
    if text.chars().any(char::is_control) {
        return Err(format!(
            "{text:?} holds a control character, which a shell or environment file cannot carry"
        ));
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INJECTED: &str = "10.9.9.9:4000\"]\n\n[super_admin.injected]\nusername = \"x\"";

    #[test]
    fn formats_come_from_the_template_name() {
        assert_eq!(Format::of("deployment.toml.j2"), Some(Format::QuotedString));
        assert_eq!(Format::of("xml/carbon.xml.j2"), Some(Format::Xml));
        assert_eq!(
            Format::of("a/worker-deployment.yaml.j2"),
            Some(Format::Yaml)
        );
        assert_eq!(Format::of("rigger-env.sh.j2"), Some(Format::Shell));
        assert_eq!(Format::of("notes.txt.j2"), None);
        assert_eq!(Format::of("README"), None);
    }

    #[test]
    fn an_injected_fact_stays_one_toml_string() {
        let escaped = Format::QuotedString.escape(INJECTED).unwrap();
        let toml_text = format!("members = [\"{escaped}\"]\n");
        let parsed: toml::Table = toml_text.parse().unwrap();
        assert_eq!(parsed.len(), 1, "no table was added: {toml_text}");
        assert_eq!(parsed["members"][0].as_str(), Some(INJECTED));
        let json: serde_json::Value =
            serde_json::from_str(&format!("{{\"ip\": \"{escaped}\"}}")).unwrap();
        assert_eq!(json["ip"], INJECTED);
    }

    #[test]
    fn yaml_values_stay_plain_unless_they_would_change_the_document() {
        assert_eq!(
            Format::Yaml.escape("jdbc:mysql://db:3306/X").unwrap(),
            "jdbc:mysql://db:3306/X"
        );
        assert_eq!(
            Format::Yaml.escape("WSO2 Analytics").unwrap(),
            "WSO2 Analytics"
        );
        for tricky in ["s3cret #1", "a: b", "yes", "0123", "", "*alias", INJECTED] {
            let escaped = Format::Yaml.escape(tricky).unwrap();
            let doc: serde_json::Value =
                serde_saphyr::from_str(&format!("password: {escaped}\n")).unwrap();
            assert_eq!(doc["password"], tricky, "{tricky:?} as {escaped}");
        }
    }

    #[test]
    fn shell_values_cannot_run_commands_or_end_the_line() {
        assert_eq!(
            Format::Shell
                .escape("-Xmx1g \"$(reboot)\" `id` \\")
                .unwrap(),
            "-Xmx1g \\\"\\$(reboot)\\\" \\`id\\` \\\\"
        );
        assert!(Format::Shell.escape("1g\nrm -rf /").is_err());
        assert_eq!(Format::Properties.escape("a\\b\nc").unwrap(), "a\\\\b\\nc");
        assert_eq!(
            Format::Xml.escape("<a href=\"x\">&</a>").unwrap(),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_rendering_that_is_not_its_format_is_refused() {
        assert!(
            Format::QuotedString
                .check_rendered("deployment.toml.j2", "[a]\nb = 1\n")
                .is_ok()
        );
        let bad = Format::QuotedString
            .check_rendered("deployment.toml.j2", "[a]\nb = \n")
            .unwrap_err();
        assert!(bad.starts_with("renders invalid TOML"), "{bad}");
        assert!(
            Format::Xml
                .check_rendered("carbon.xml.j2", "<a><b></a>")
                .is_err()
        );
        assert!(Format::Yaml.check_rendered("w.yaml.j2", "a: [\n").is_err());
    }
}
