//! Facts are checked where they enter the master, before anything stores
//! or renders them: the facts a node sends are data a compromised node
//! controls. Every string is bounded and free of control characters; the
//! facts that name addresses parse as IP addresses, host names as host
//! names; the whole document is bounded in size and depth.

use std::net::IpAddr;

use serde_json::Value;

use crate::error::{Error, Result};

/// The longest fact string.
const MAX_STRING: usize = 1024;
/// The largest facts document, as JSON.
pub const MAX_FACTS_BYTES: usize = 64 * 1024;
/// How deep facts may nest.
const MAX_DEPTH: usize = 8;

/// Facts whose value must be an IP address.
const ADDRESSES: [&str; 2] = ["/ip", "/ec2/private_ip"];
/// Facts whose value must be a host name.
const HOST_NAMES: [&str; 2] = ["/hostname", "/ec2/local_hostname"];

/// Parses and checks a node's facts (a JSON object; empty text is `{}`).
pub fn parse(facts_json: &str) -> Result<Value> {
    if facts_json.len() > MAX_FACTS_BYTES {
        return Err(Error::InvalidArgument(format!(
            "facts are {} bytes, more than {MAX_FACTS_BYTES}",
            facts_json.len()
        )));
    }
    let facts: Value = if facts_json.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(facts_json)
            .map_err(|e| Error::InvalidArgument(format!("facts are not valid JSON: {e}")))?
    };
    if !facts.is_object() {
        return Err(Error::InvalidArgument("facts must be a JSON object".into()));
    }
    for pointer in ADDRESSES {
        if let Some(value) = facts.pointer(pointer) {
            let text = value.as_str().unwrap_or_default();
            if text.parse::<IpAddr>().is_err() {
                return Err(bad(pointer, value, "is not an IP address"));
            }
        }
    }
    for pointer in HOST_NAMES {
        if let Some(value) = facts.pointer(pointer) {
            if !value.as_str().is_some_and(is_host_name) {
                return Err(bad(pointer, value, "is not a host name"));
            }
        }
    }
    check_value("", &facts, 0)?;
    Ok(facts)
}

fn bad(pointer: &str, value: &Value, why: &str) -> Error {
    let shown: String = value.to_string().chars().take(80).collect();
    Error::InvalidArgument(format!(
        "fact {} = {shown} {why}",
        pointer.trim_start_matches('/').replace('/', ".")
    ))
}

fn check_value(path: &str, value: &Value, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::InvalidArgument(format!(
            "fact {path} nests deeper than {MAX_DEPTH} levels"
        )));
    }
    let check_text = |what: &str, text: &str| -> Result<()> {
        if text.len() > MAX_STRING {
            return Err(Error::InvalidArgument(format!(
                "fact {what} is longer than {MAX_STRING} bytes"
            )));
        }
        if text.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(format!(
                "fact {what} holds control characters"
            )));
        }
        Ok(())
    };
    match value {
        Value::String(text) => check_text(path, text),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_value(&format!("{path}[{i}]"), item, depth + 1)),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let here = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            check_text(&format!("name {here:?}"), key)?;
            check_value(&here, item, depth + 1)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// A host name: dot-separated labels of letters, digits, `-` and `_` (seen
/// in the wild), each 1 to 63 long, not starting or ending with `-`; 253
/// at most in all.
pub fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_facts_a_node_really_sends_pass() {
        let facts = r#"{"hostname": "ip-10-0-1-5.ec2.internal", "ip": "10.0.1.5",
            "ips": ["10.0.1.5", "fe80::1"], "cpus": 2, "os": {"id": "amzn", "name": "Amazon Linux 2023"},
            "ec2": {"instance_id": "i-0abc", "private_ip": "10.0.1.5",
                    "tags": {"rigger:role": "is", "Name": "IS node 1"}}}"#;
        let parsed = parse(facts).unwrap();
        assert_eq!(parsed["ip"], "10.0.1.5");
        assert!(parse("").unwrap().as_object().unwrap().is_empty());
    }

    #[test]
    fn injected_or_oversized_facts_are_refused_naming_the_fact() {
        let injected = r#"{"ip": "10.9.9.9:4000\"]\n\n[super_admin.injected]"}"#;
        let err = parse(injected).unwrap_err().to_string();
        assert!(err.contains("fact ip"), "{err}");
        let cases = [
            (
                r#"{"ip": "10.9.9.9:4000"}"#,
                "fact ip = \"10.9.9.9:4000\" is not an IP address",
            ),
            (
                r#"{"ec2": {"private_ip": "localhost"}}"#,
                "fact ec2.private_ip",
            ),
            (
                r#"{"ec2": {"local_hostname": "a b"}}"#,
                "fact ec2.local_hostname",
            ),
            (r#"{"hostname": "evil\"host"}"#, "fact hostname"),
            (
                r#"{"os": {"name": "a\u0007b"}}"#,
                "fact os.name holds control characters",
            ),
            (
                r#"{"ec2": {"tags": {"x\ny": "v"}}}"#,
                "holds control characters",
            ),
            (r#"[1, 2]"#, "must be a JSON object"),
        ];
        for (facts, expected) in cases {
            let err = parse(facts).unwrap_err().to_string();
            assert!(err.contains(expected), "{facts}: {err}");
        }
        let long = format!(r#"{{"os": {{"name": "{}"}}}}"#, "x".repeat(2000));
        assert!(
            parse(&long)
                .unwrap_err()
                .to_string()
                .contains("longer than 1024")
        );
        let deep = format!("{}1{}", "[".repeat(20), "]".repeat(20));
        assert!(parse(&format!(r#"{{"x": {deep}}}"#)).is_err());
        let huge = format!(r#"{{"x": "{}"}}"#, "y".repeat(MAX_FACTS_BYTES));
        assert!(
            parse(&huge)
                .unwrap_err()
                .to_string()
                .contains("bytes, more than")
        );
    }
}
