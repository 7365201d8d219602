//! Benchmark: decoding a WSO2-sized tree manifest (3000 files), which a
//! node's converged run reads to check its release.
//! Run with `cargo bench -p rigger-common --bench manifest`; prints figures.

use std::collections::BTreeMap;
use std::time::Instant;

use rigger_common::digest::Digest;
use rigger_common::manifest::{Entry, EntryKind, Manifest};

const FILES: usize = 3000;
const ROUNDS: usize = 200;

fn main() {
    let mut entries = BTreeMap::new();
    for i in 0..FILES {
        // A quarter of a WSO2 pack's files are webapps' jars, each webapp
        // in folders of its own.
        let webapp = format!("repository/deployment/server/webapps/app{i}/WEB-INF/lib");
        let dir = [
            "repository/components/plugins",
            "repository/components/lib",
            "lib/runtimes/cxf3/lib",
            webapp.as_str(),
        ][i % 4];
        for (path, kind) in [
            (dir.to_string(), EntryKind::Dir),
            (
                format!("{dir}/org.wso2.sample.p{i}_1.0.{i}.jar"),
                EntryKind::File {
                    size: 70_000 + i as u64,
                    digest: Digest::of(format!("file {i}").as_bytes()),
                },
            ),
        ] {
            let mode = if matches!(kind, EntryKind::Dir) {
                0o755
            } else {
                0o644
            };
            entries.insert(path.clone(), Entry { path, mode, kind });
        }
    }
    // The parent folders of the three.
    let mut parents = vec![
        "repository".to_string(),
        "repository/components".to_string(),
        "lib".to_string(),
        "lib/runtimes".to_string(),
        "lib/runtimes/cxf3".to_string(),
        "repository/deployment".to_string(),
        "repository/deployment/server".to_string(),
        "repository/deployment/server/webapps".to_string(),
    ];
    for i in (3..FILES).step_by(4) {
        parents.push(format!("repository/deployment/server/webapps/app{i}"));
        parents.push(format!(
            "repository/deployment/server/webapps/app{i}/WEB-INF"
        ));
    }
    for dir in parents {
        entries.insert(
            dir.clone(),
            Entry {
                path: dir,
                mode: 0o755,
                kind: EntryKind::Dir,
            },
        );
    }
    let json = Manifest::from_entries(entries).expect("manifest").to_json();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let manifest = Manifest::from_json(&json).expect("decodes");
        assert!(manifest.entries.len() > FILES);
    }
    let each = started.elapsed() / ROUNDS as u32;
    println!(
        "decode a {FILES}-file manifest ({} bytes): {:.2} ms each ({:.0} MB/s)",
        json.len(),
        each.as_secs_f64() * 1e3,
        json.len() as f64 / each.as_secs_f64() / 1e6
    );
    // The JSON alone, without the paths' and links' checks.
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let manifest: Manifest = serde_json::from_slice(&json).expect("parses");
        assert!(manifest.entries.len() > FILES);
    }
    let parse = started.elapsed() / ROUNDS as u32;
    println!(
        "    of which parsing the JSON {:.2} ms, checking paths and links {:.2} ms",
        parse.as_secs_f64() * 1e3,
        each.saturating_sub(parse).as_secs_f64() * 1e3
    );
}
