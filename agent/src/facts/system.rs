//! System facts: host name, IP addresses, OS, kernel, CPUs, memory.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::insert;

/// Gathers the system facts. Never fails: a fact that cannot be read is left out.
pub fn gather() -> Map<String, Value> {
    let mut facts = Map::new();
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    insert(&mut facts, "hostname", hostname);
    let ips = addresses();
    let primary = ips
        .iter()
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        .or_else(|| ips.first())
        .map(ToString::to_string)
        .unwrap_or_else(|| "127.0.0.1".into());
    insert(&mut facts, "ip", primary);
    insert(
        &mut facts,
        "ips",
        ips.iter()
            .map(|ip| Value::String(ip.to_string()))
            .collect::<Vec<_>>(),
    );
    if let Ok(uname) = nix::sys::utsname::uname() {
        insert(
            &mut facts,
            "kernel",
            uname.release().to_string_lossy().into_owned(),
        );
        insert(
            &mut facts,
            "architecture",
            uname.machine().to_string_lossy().into_owned(),
        );
    }
    insert(&mut facts, "os", os_release());
    insert(
        &mut facts,
        "cpus",
        std::thread::available_parallelism().map_or(1, |n| n.get()) as u64,
    );
    if let Some(mb) = memory_mb() {
        insert(&mut facts, "memory_mb", mb);
    }
    facts
}

/// Whether DMI says this machine is an EC2 instance.
pub fn is_ec2() -> bool {
    let read =
        |f: &str| std::fs::read_to_string(format!("/sys/class/dmi/id/{f}")).unwrap_or_default();
    read("sys_vendor").contains("Amazon EC2")
        || read("board_asset_tag").trim_start().starts_with("i-")
        || read("product_uuid").to_ascii_lowercase().starts_with("ec2")
}

fn addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|a| a.address)
        .filter_map(|s| {
            if let Some(v4) = s.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect();
    out.dedup();
    out
}

fn os_release() -> Value {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let mut os = Map::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim_matches('"').to_string();
            match key {
                "ID" => insert(&mut os, "id", value),
                "VERSION_ID" => insert(&mut os, "version", value),
                "PRETTY_NAME" => insert(&mut os, "name", value),
                _ => {}
            }
        }
    }
    Value::Object(os)
}

fn memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn system_facts_have_the_basics() {
        let facts = super::gather();
        for key in ["hostname", "ip", "ips", "os", "cpus"] {
            assert!(facts.contains_key(key), "missing {key}: {facts:?}");
        }
    }
}
