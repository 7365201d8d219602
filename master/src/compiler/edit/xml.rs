//! XML edits as splices into the product's own text. roxmltree parses the
//! document and gives every node's and attribute's byte range; an edit
//! replaces exactly the bytes it changes, so the rest of the file (comments,
//! whitespace, attribute order and quotes, the declaration) stays as the
//! product shipped it. Each edit parses the text the previous one left, and
//! the result must parse again.
//!
//! Paths select elements by local name from the root element:
//! `/axisconfig/transportReceiver[@name='http']/parameter[@name='port']`,
//! with predicates `[@attr='value']`, `[child='text']` and `[N]` (1-based
//! among the matches under one parent); a last step `@name` is an attribute.

use std::ops::Range;

use roxmltree::{Document, Node};

use super::{Declared, Edit, EditError, Position, error, scalar_text};

/// Applies every edit in order.
pub fn apply(text: &str, edits: &[Declared]) -> Result<String, EditError> {
    let mut current = text.to_string();
    parse(&current).map_err(|e| EditError {
        number: 0,
        edit: "parse".into(),
        message: format!("the product's file is not well-formed XML: {e}"),
    })?;
    for (index, declared) in edits.iter().enumerate() {
        current = apply_one(&current, declared)
            .map_err(|message| error(index, &declared.edit, message))?;
    }
    Ok(current)
}

fn parse(text: &str) -> Result<Document<'_>, roxmltree::Error> {
    Document::parse_with_options(
        text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        },
    )
}

/// The text of each element (or the value of each attribute, for a path
/// ending in `/@name`) that `path` selects: how checks read what edits wrote.
pub fn values(text: &str, path: &str) -> Result<Vec<String>, String> {
    let doc = parse(text).map_err(|e| e.to_string())?;
    let (path, attribute) = split_attribute(path)?;
    let steps = parse_path(path)?;
    Ok(select(&doc, &steps)
        .into_iter()
        .filter_map(|node| match attribute {
            Some(name) => node.attribute(name).map(str::to_string),
            None => Some(node.text().unwrap_or_default().trim().to_string()),
        })
        .collect())
}

/// Every element's path by local names (`/Server/Ports/Offset`): what a
/// document holds, to compare with what the product knows.
pub fn element_paths(text: &str) -> Result<std::collections::BTreeSet<String>, String> {
    let doc = parse(text).map_err(|e| e.to_string())?;
    let mut paths = std::collections::BTreeSet::new();
    for node in doc.descendants().filter(|n| n.is_element()) {
        let mut names: Vec<&str> = node
            .ancestors()
            .filter(|a| a.is_element())
            .map(|a| a.tag_name().name())
            .collect();
        names.reverse();
        paths.insert(format!("/{}", names.join("/")));
    }
    Ok(paths)
}

/// One edit over `text`, as a list of splices applied back to front.
fn apply_one(text: &str, declared: &Declared) -> Result<String, String> {
    let doc = parse(text).map_err(|e| e.to_string())?;
    let (path, attribute) = match &declared.edit {
        Edit::Merge { .. } | Edit::Append { .. } => {
            return Err("XML files take set, replace, insert and remove".into());
        }
        Edit::Set { path, .. } | Edit::Remove { path } => split_attribute(path)?,
        Edit::Replace { path, .. } | Edit::Insert { path, .. } => (path.as_str(), None),
    };
    let steps = parse_path(path)?;
    let nodes = select(&doc, &steps);
    if let (
        true,
        Edit::Set {
            value,
            create: Some(position),
            ..
        },
        None,
    ) = (nodes.is_empty(), &declared.edit, attribute)
    {
        return create_element(text, &doc, &steps, value, position);
    }
    if nodes.is_empty() {
        return Err(format!("no element matches {path}"));
    }
    if nodes.len() > 1 && !declared.all {
        return Err(format!(
            "{} elements match {path} (make the path select one, or set all = true)",
            nodes.len()
        ));
    }
    let mut splices = Vec::new();
    for node in nodes {
        splices.push(splice_for(text, node, &declared.edit, attribute)?);
    }
    splices.sort_by_key(|(range, _)| std::cmp::Reverse(range.start));
    let mut out = text.to_string();
    for (range, replacement) in splices {
        out.replace_range(range, &replacement);
    }
    parse(&out).map_err(|e| format!("the edited file would not be well-formed XML: {e}"))?;
    Ok(out)
}

/// The bytes to replace and what replaces them, for one matched element.
fn splice_for(
    text: &str,
    node: Node<'_, '_>,
    edit: &Edit,
    attribute: Option<&str>,
) -> Result<(Range<usize>, String), String> {
    match (edit, attribute) {
        (Edit::Set { value, .. }, Some(name)) => {
            let value = scalar_text(value)?;
            Ok(match node.attributes().find(|a| a.name() == name) {
                Some(attr) => {
                    let quote = text[attr.range()].chars().last().unwrap_or('"');
                    (attr.range_value(), escape(&value, Some(quote)))
                }
                None => {
                    let at = start_tag_attributes_end(text, node);
                    (at..at, format!(" {name}=\"{}\"", escape(&value, Some('"'))))
                }
            })
        }
        (Edit::Remove { .. }, Some(name)) => {
            let attr = node
                .attributes()
                .find(|a| a.name() == name)
                .ok_or_else(|| format!("the element has no attribute {name:?}"))?;
            let mut range = attr.range();
            // The space before it goes too.
            while range.start > 0 && text.as_bytes()[range.start - 1].is_ascii_whitespace() {
                range.start -= 1;
            }
            Ok((range, String::new()))
        }
        (Edit::Set { value, .. }, None) => {
            if node.children().any(|c| c.is_element()) {
                return Err(format!(
                    "<{}> has child elements: set an attribute or a child, or replace it",
                    node.tag_name().name()
                ));
            }
            let value = escape(&scalar_text(value)?, None);
            Ok(match content_range(text, node) {
                Some(range) => (range, value),
                None => {
                    // `<a/>` becomes `<a>value</a>`.
                    let tag = &text[node.range()];
                    let open = tag.trim_end_matches("/>").trim_end();
                    let name = qualified_name(tag);
                    (node.range(), format!("{open}>{value}</{name}>"))
                }
            })
        }
        (Edit::Replace { with, .. }, _) => {
            check_fragment(with)?;
            let indent = indentation(text, node.range().start);
            Ok((node.range(), reindent(with.trim(), &indent)))
        }
        (Edit::Remove { .. }, None) => Ok((whole_lines(text, node.range()), String::new())),
        (Edit::Insert { xml, position, .. }, _) => {
            check_fragment(xml)?;
            insert_splice(text, node, xml.trim(), position)
        }
        (Edit::Merge { .. } | Edit::Append { .. }, _) => {
            Err("XML files take set, replace, insert and remove".into())
        }
    }
}

/// `set` with `create`: a new `<name>value</name>` in the one parent the
/// path's other steps select.
fn create_element(
    text: &str,
    doc: &Document<'_>,
    steps: &[Step],
    value: &toml::Value,
    position: &Position,
) -> Result<String, String> {
    let (last, parents) = steps.split_last().ok_or("an empty path")?;
    // The new element carries the attributes its step asks for.
    let mut attributes = String::new();
    for predicate in &last.predicates {
        match predicate {
            Predicate::Attribute(name, value) => {
                attributes.push_str(&format!(" {name}=\"{}\"", escape(value, Some('"'))));
            }
            _ => {
                return Err(format!(
                    "no element matches, and {} selects by child or position, so it cannot be created",
                    last.text
                ));
            }
        }
    }
    let parent = match select(doc, parents).as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "no element matches, nor its parent {}",
                path_text(parents)
            ));
        }
        many => {
            return Err(format!(
                "{} parents match {}",
                many.len(),
                path_text(parents)
            ));
        }
    };
    let element = format!(
        "<{0}{attributes}>{1}</{0}>",
        last.name,
        escape(&scalar_text(value)?, None)
    );
    let (range, replacement) = insert_splice(text, parent, &element, position)?;
    let mut out = text.to_string();
    out.replace_range(range, &replacement);
    parse(&out).map_err(|e| format!("the edited file would not be well-formed XML: {e}"))?;
    Ok(out)
}

fn path_text(steps: &[Step]) -> String {
    steps.iter().map(|s| format!("/{}", s.text)).collect()
}

/// Where new children go and with what indentation.
fn insert_splice(
    text: &str,
    parent: Node<'_, '_>,
    xml: &str,
    position: &Position,
) -> Result<(Range<usize>, String), String> {
    let parent_indent = indentation(text, parent.range().start);
    let children: Vec<Node<'_, '_>> = parent.children().filter(|c| c.is_element()).collect();
    let child_indent = children
        .first()
        .map(|c| indentation(text, c.range().start))
        .unwrap_or_else(|| format!("{parent_indent}    "));
    let block = reindent(xml, &child_indent);
    let anchor = |step: &str| -> Result<Node<'_, '_>, String> {
        let step = parse_step(step)?;
        let found: Vec<Node<'_, '_>> = matching_children(parent, &step);
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no child matches {}", step.text)),
            _ => Err(format!("{} children match {}", found.len(), step.text)),
        }
    };
    match position {
        Position::Before(step) => {
            let child = anchor(step)?;
            let at = child.range().start;
            Ok((at..at, format!("{block}\n{child_indent}")))
        }
        Position::After(step) => {
            let child = anchor(step)?;
            let at = child.range().end;
            Ok((at..at, format!("\n{child_indent}{block}")))
        }
        Position::Last => match (children.last(), content_range(text, parent)) {
            (Some(last), _) => {
                let at = last.range().end;
                Ok((at..at, format!("\n{child_indent}{block}")))
            }
            (None, Some(range)) if text[range.clone()].trim().is_empty() => {
                Ok((range, format!("\n{child_indent}{block}\n{parent_indent}")))
            }
            (None, Some(range)) => {
                let at = range.end;
                Ok((at..at, format!("\n{child_indent}{block}\n{parent_indent}")))
            }
            (None, None) => {
                let tag = &text[parent.range()];
                let open = tag.trim_end_matches("/>").trim_end();
                let name = qualified_name(tag);
                Ok((
                    parent.range(),
                    format!("{open}>\n{child_indent}{block}\n{parent_indent}</{name}>"),
                ))
            }
        },
    }
}

/// `path/@name` → (`path`, `name`).
fn split_attribute(path: &str) -> Result<(&str, Option<&str>), String> {
    match path.rsplit_once("/@") {
        Some((element, name)) if !name.contains(['/', '[', ']']) && !name.is_empty() => {
            Ok((element, Some(name)))
        }
        Some(_) => Err(format!("{path:?}: an attribute must be the last step")),
        None => Ok((path, None)),
    }
}

/// One step of a path.
#[derive(Debug)]
struct Step {
    text: String,
    name: String,
    predicates: Vec<Predicate>,
}

#[derive(Debug)]
enum Predicate {
    Attribute(String, String),
    Child(String, String),
    Index(usize),
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("{path:?}: a path starts at the root element with '/'"))?;
    split_steps(rest)?.iter().map(|s| parse_step(s)).collect()
}

/// Splits at '/' outside brackets and quotes.
fn split_steps(path: &str) -> Result<Vec<String>, String> {
    let (mut steps, mut current, mut depth, mut quote) = (Vec::new(), String::new(), 0, None);
    for c in path.chars() {
        match (c, quote) {
            (q, Some(open)) if q == open => quote = None,
            (_, Some(_)) => {}
            ('\'' | '"', None) => quote = Some(c),
            ('[', None) => depth += 1,
            (']', None) => depth -= 1,
            ('/', None) if depth == 0 => {
                steps.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if quote.is_some() || depth != 0 {
        return Err(format!("{path:?}: unbalanced quotes or brackets"));
    }
    steps.push(current);
    if steps.iter().any(String::is_empty) {
        return Err(format!("/{path}: an empty step"));
    }
    Ok(steps)
}

fn parse_step(text: &str) -> Result<Step, String> {
    let bad = || {
        format!("{text:?} is not a step such as name[@attr='value'], name[child='text'] or name[2]")
    };
    let (name, mut rest) = match text.find('[') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    if name.is_empty() || name.contains(['@', '\'', '"', '=', ' ']) {
        return Err(bad());
    }
    let mut predicates = Vec::new();
    while !rest.is_empty() {
        let close = rest.find(']').ok_or_else(bad)?;
        // A quoted value may hold ']': take the closing bracket after the quotes.
        let close = match rest[1..close].find(['\'', '"']) {
            Some(q) => {
                let quote = rest.as_bytes()[1 + q] as char;
                let end = rest[2 + q..].find(quote).ok_or_else(bad)? + 2 + q;
                end + rest[end..].find(']').ok_or_else(bad)?
            }
            None => close,
        };
        let inner = rest[1..close].trim();
        rest = &rest[close + 1..];
        if let Ok(n) = inner.parse::<usize>() {
            if n == 0 {
                return Err(format!("{text:?}: positions start at 1"));
            }
            predicates.push(Predicate::Index(n));
            continue;
        }
        let (key, value) = inner.split_once('=').ok_or_else(bad)?;
        let value = value.trim();
        let unquoted = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
            .ok_or_else(bad)?
            .to_string();
        let key = key.trim();
        predicates.push(match key.strip_prefix('@') {
            Some(attr) => Predicate::Attribute(attr.to_string(), unquoted),
            None => Predicate::Child(key.to_string(), unquoted),
        });
    }
    Ok(Step {
        text: text.to_string(),
        name: name.to_string(),
        predicates,
    })
}

/// The elements `steps` select.
fn select<'a, 'i>(doc: &'a Document<'i>, steps: &[Step]) -> Vec<Node<'a, 'i>> {
    let Some((first, rest)) = steps.split_first() else {
        return Vec::new();
    };
    let root = doc.root_element();
    let mut current: Vec<Node<'a, 'i>> = if matches(root, first) {
        vec![root]
    } else {
        Vec::new()
    };
    if first
        .predicates
        .iter()
        .any(|p| matches!(p, Predicate::Index(n) if *n != 1))
    {
        current.clear();
    }
    for step in rest {
        current = current
            .into_iter()
            .flat_map(|parent| matching_children(parent, step))
            .collect();
    }
    current
}

/// The children of `parent` a step selects (an index predicate counts
/// among the children that pass the others).
fn matching_children<'a, 'i>(parent: Node<'a, 'i>, step: &Step) -> Vec<Node<'a, 'i>> {
    let found: Vec<Node<'a, 'i>> = parent
        .children()
        .filter(|c| c.is_element() && matches(*c, step))
        .collect();
    match step.predicates.iter().find_map(|p| match p {
        Predicate::Index(n) => Some(*n),
        _ => None,
    }) {
        Some(n) => found.get(n - 1).copied().into_iter().collect(),
        None => found,
    }
}

fn matches(node: Node<'_, '_>, step: &Step) -> bool {
    node.tag_name().name() == step.name
        && step.predicates.iter().all(|p| match p {
            Predicate::Attribute(name, value) => node
                .attributes()
                .any(|a| a.name() == name && a.value() == value),
            Predicate::Child(name, value) => node.children().any(|c| {
                c.is_element()
                    && c.tag_name().name() == name
                    && c.text().unwrap_or_default().trim() == value
            }),
            Predicate::Index(_) => true,
        })
}

/// The bytes between an element's start tag and its end tag; `None` for
/// an empty-element tag (`<a/>`).
fn content_range(text: &str, node: Node<'_, '_>) -> Option<Range<usize>> {
    let range = node.range();
    if text[range.clone()].ends_with("/>") {
        return None;
    }
    let start = start_tag_attributes_end(text, node);
    let open_end = start + text[start..].find('>')? + 1;
    let close_start = range.start + text[range.clone()].rfind("</")?;
    Some(open_end..close_start)
}

/// Where the start tag's attributes end (before `>` or `/>`).
fn start_tag_attributes_end(text: &str, node: Node<'_, '_>) -> usize {
    if let Some(last) = node.attributes().next_back() {
        return last.range().end;
    }
    let start = node.range().start;
    let name = qualified_name(&text[start..node.range().end]);
    start + 1 + name.len()
}

/// The tag's name as written (`ns:name` or `name`).
fn qualified_name(tag: &str) -> &str {
    let inner = tag.trim_start_matches('<');
    let end = inner
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(inner.len());
    &inner[..end]
}

/// The whitespace before `at` on its line (empty when other text precedes it).
fn indentation(text: &str, at: usize) -> String {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..at];
    if before.chars().all(|c| c == ' ' || c == '\t') {
        before.to_string()
    } else {
        String::new()
    }
}

/// `range` widened to whole lines when nothing else is on them.
fn whole_lines(text: &str, range: Range<usize>) -> Range<usize> {
    let line_start = text[..range.start].rfind('\n').map_or(0, |i| i + 1);
    let before_blank = text[line_start..range.start].trim().is_empty();
    let after_end = text[range.end..]
        .find('\n')
        .map_or(text.len(), |i| range.end + i + 1);
    let after_blank = text[range.end..after_end].trim().is_empty();
    if before_blank && after_blank && line_start > 0 {
        line_start..after_end
    } else {
        range
    }
}

/// A fragment's lines after the first, indented by `indent` relative to
/// the fragment's own smallest indentation.
fn reindent(fragment: &str, indent: &str) -> String {
    let lines: Vec<&str> = fragment.lines().collect();
    let common = lines
        .iter()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            out.push_str(line.trim());
            continue;
        }
        out.push('\n');
        if !line.trim().is_empty() {
            out.push_str(indent);
            out.push_str(&line[common.min(line.len() - line.trim_start().len())..]);
        }
    }
    out
}

/// A fragment must be well-formed elements.
fn check_fragment(xml: &str) -> Result<(), String> {
    let wrapped = format!("<rigger-fragment>{xml}</rigger-fragment>");
    let doc =
        Document::parse(&wrapped).map_err(|e| format!("the new XML is not well-formed: {e}"))?;
    if !doc.root_element().children().any(|c| c.is_element()) {
        return Err("the new XML holds no element".into());
    }
    Ok(())
}

/// Escapes text content (`quote` None) or an attribute value in `quote`s.
pub(super) fn escape(value: &str, quote: Option<char>) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if quote == Some('"') => out.push_str("&quot;"),
            '\'' if quote == Some('\'') => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse as parse_edits;
    use super::*;

    const CARBON: &str = r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- the product's licence header -->
<Server xmlns="http://wso2.org/projects/carbon/carbon.xml">
    <Name>WSO2 Identity Server</Name>
    <!--
       Host name or IP address of the machine hosting this server
    -->
    <HostName>localhost</HostName>
    <Ports>
        <!-- Ports offset -->
        <Offset>0</Offset>
        <JMX>
            <RMIRegistryPort>9999</RMIRegistryPort>
        </JMX>
    </Ports>
    <Axis2Config>
        <Parameter name="a" locked='true'>1</Parameter>
        <Parameter name="b">2</Parameter>
    </Axis2Config>
    <Empty/>
</Server>
"#;

    fn edit(text: &str, edits: &str) -> Result<String, EditError> {
        apply(text, &parse_edits(edits).unwrap())
    }

    #[test]
    fn setting_text_changes_only_those_bytes() {
        let out = edit(
            CARBON,
            "[[edit]]\nset = \"/Server/HostName\"\nvalue = \"is.example.com\"\n[[edit]]\nset = \"/Server/Ports/Offset\"\nvalue = 1\n",
        )
        .unwrap();
        let expected = CARBON
            .replace("<HostName>localhost<", "<HostName>is.example.com<")
            .replace("<Offset>0<", "<Offset>1<");
        assert_eq!(out, expected);
    }

    #[test]
    fn values_are_escaped_for_xml() {
        let out = edit(
            CARBON,
            "[[edit]]\nset = \"/Server/Name\"\nvalue = \"a<b>&c\"\n[[edit]]\nset = \"/Server/Axis2Config/Parameter[@name='a']/@locked\"\nvalue = \"it's\"\n",
        )
        .unwrap();
        assert!(out.contains("<Name>a&lt;b&gt;&amp;c</Name>"), "{out}");
        assert!(out.contains("locked='it&apos;s'"), "{out}");
        roxmltree::Document::parse(&out).unwrap();
    }

    #[test]
    fn attributes_are_set_added_and_removed() {
        let out = edit(
            CARBON,
            "[[edit]]\nset = \"/Server/Axis2Config/Parameter[@name='b']/@locked\"\nvalue = false\n[[edit]]\nremove = \"/Server/Axis2Config/Parameter[@name='a']/@locked\"\n",
        )
        .unwrap();
        assert!(
            out.contains("<Parameter name=\"b\" locked=\"false\">2</Parameter>"),
            "{out}"
        );
        assert!(out.contains("<Parameter name=\"a\">1</Parameter>"), "{out}");
    }

    #[test]
    fn elements_are_inserted_with_their_siblings_indentation() {
        let out = edit(
            CARBON,
            "[[edit]]\ninsert = \"/Server/Ports\"\nxml = \"<EmbeddedLDAP>\\n    <LDAPServerPort>10389</LDAPServerPort>\\n</EmbeddedLDAP>\"\n[[edit]]\ninsert = \"/Server/Axis2Config\"\nbefore = \"Parameter[@name='b']\"\nxml = \"<Parameter name='c'>3</Parameter>\"\n[[edit]]\ninsert = \"/Server/Empty\"\nxml = \"<X/>\"\n",
        )
        .unwrap();
        assert!(
            out.contains("        </JMX>\n        <EmbeddedLDAP>\n            <LDAPServerPort>10389</LDAPServerPort>\n        </EmbeddedLDAP>\n    </Ports>"),
            "{out}"
        );
        assert!(
            out.contains("<Parameter name='c'>3</Parameter>\n        <Parameter name=\"b\">"),
            "{out}"
        );
        assert!(out.contains("<Empty>\n        <X/>\n    </Empty>"), "{out}");
    }

    #[test]
    fn elements_are_replaced_and_removed_with_their_lines() {
        let out = edit(
            CARBON,
            "[[edit]]\nreplace = \"/Server/Ports/JMX\"\nwith = \"<JMX>\\n    <RMIRegistryPort>11111</RMIRegistryPort>\\n</JMX>\"\n[[edit]]\nremove = \"/Server/Empty\"\n",
        )
        .unwrap();
        assert!(
            out.contains("        <JMX>\n            <RMIRegistryPort>11111</RMIRegistryPort>\n        </JMX>"),
            "{out}"
        );
        assert!(!out.contains("Empty"), "{out}");
        assert!(out.contains("    </Axis2Config>\n</Server>\n"), "{out}");
        // Comments and the declaration are untouched.
        assert!(out.starts_with(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<!-- the product's licence header -->"
        ));
        assert!(out.contains("Host name or IP address of the machine"));
    }

    #[test]
    fn a_missing_or_ambiguous_target_is_an_error_naming_the_edit() {
        let err = edit(CARBON, "[[edit]]\nset = \"/Server/Ports/Offset\"\nvalue = 1\n[[edit]]\nset = \"/Server/HostNme\"\nvalue = \"x\"\n").unwrap_err();
        assert_eq!(err.number, 2);
        assert_eq!(err.edit, "set /Server/HostNme");
        assert!(err.message.contains("no element matches"), "{err}");
        let err = edit(
            CARBON,
            "[[edit]]\nset = \"/Server/Axis2Config/Parameter\"\nvalue = 1\n",
        )
        .unwrap_err();
        assert!(err.message.contains("2 elements match"), "{err}");
        let out = edit(
            CARBON,
            "[[edit]]\nset = \"/Server/Axis2Config/Parameter\"\nvalue = 9\nall = true\n",
        )
        .unwrap();
        assert_eq!(out.matches(">9</Parameter>").count(), 2);
        let err = edit(CARBON, "[[edit]]\nset = \"/Server/Ports\"\nvalue = 1\n").unwrap_err();
        assert!(err.message.contains("child elements"), "{err}");
        let err = edit(CARBON, "[[edit]]\ninsert = \"/Server\"\nxml = \"<a>\"\n").unwrap_err();
        assert!(err.message.contains("not well-formed"), "{err}");
    }

    #[test]
    fn set_with_create_adds_an_element_the_file_lacks() {
        let out = edit(
            CARBON,
            "[[edit]]\nset = \"/Server/MgtHostName\"\nvalue = \"mgt\"\ncreate = true\nafter = \"HostName\"\n[[edit]]\nset = \"/Server/HostName\"\nvalue = \"h\"\ncreate = true\n",
        )
        .unwrap();
        assert!(
            out.contains(
                "    <HostName>h</HostName>\n    <MgtHostName>mgt</MgtHostName>\n    <Ports>"
            ),
            "{out}"
        );
        let err = edit(
            CARBON,
            "[[edit]]\nset = \"/Server/Nope/X\"\nvalue = 1\ncreate = true\n",
        )
        .unwrap_err();
        assert!(err.message.contains("nor its parent /Server/Nope"), "{err}");
    }

    #[test]
    fn predicates_select_by_attribute_child_text_and_position() {
        let out = edit(
            CARBON,
            "[[edit]]\nset = \"/Server/Axis2Config/Parameter[2]\"\nvalue = \"two\"\n[[edit]]\nset = \"/Server/Ports[Offset='0']/JMX/RMIRegistryPort\"\nvalue = 1\n",
        )
        .unwrap();
        assert!(
            out.contains("<Parameter name=\"b\">two</Parameter>"),
            "{out}"
        );
        assert!(
            out.contains("<RMIRegistryPort>1</RMIRegistryPort>"),
            "{out}"
        );
        assert!(parse_path("Server").is_err());
        assert!(parse_path("/Server/[x").is_err());
        assert!(parse_path("/Server/a[0]").is_err());
    }
}
