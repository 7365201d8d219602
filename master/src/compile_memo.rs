//! What each node's last compile was made from, so that a node asking
//! again with nothing changed gets its stored catalog without a compile:
//! a converged fleet asks every few minutes, and compiling the same
//! inputs again gives the same content (a compile is a pure function of
//! them — the invariant "same content, same digest, same version").
//!
//! The inputs are the node (certname, role, facts), its live peers, the
//! imported levels, artifacts and promotions, and the site's and modules'
//! files — the last named by how many changes the site watch has seen, so
//! there is no memo while the master does not watch the site.

use std::collections::HashMap;
use std::sync::Mutex;

use rigger_common::digest::Digest;
use sha2::{Digest as _, Sha256};

use crate::compiler::Peer;
use crate::revision::Imported;

/// The most nodes remembered; past it the memo starts again.
const MAX_NODES: usize = 100_000;

/// The inputs of one compile, hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs([u8; 32]);

impl Inputs {
    /// The inputs of compiling `certname` as `role` with these facts,
    /// peers and records, the site watch having seen `site_changes`.
    pub fn of(
        site_changes: u64,
        (certname, role, facts): (&str, &str, &serde_json::Value),
        inventory: &[Peer],
        imported: &Imported,
    ) -> Self {
        let mut hash = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            // Length-prefixed: no two different inputs hash the same text.
            hash.update(name.as_bytes());
            hash.update((value.len() as u64).to_le_bytes());
            hash.update(value);
        };
        field("site", &site_changes.to_le_bytes());
        field("certname", certname.as_bytes());
        field("role", role.as_bytes());
        field("facts", facts.to_string().as_bytes());
        for peer in inventory {
            field("peer", peer.certname.as_bytes());
            field("peer-role", peer.role.as_bytes());
            field("peer-ip", peer.ip.as_bytes());
        }
        for line in imported.lines() {
            field("imported", line.as_bytes());
        }
        Self(hash.finalize().into())
    }
}

/// Each node's last compile: its inputs and the content digest they gave.
#[derive(Default)]
pub struct CompileMemo {
    nodes: Mutex<HashMap<String, (Inputs, Digest)>>,
}

impl CompileMemo {
    /// The content digest `inputs` gave the node's last compile, if those
    /// were its inputs.
    pub fn get(&self, certname: &str, inputs: Inputs) -> Option<Digest> {
        self.nodes
            .lock()
            .expect("compile memo")
            .get(certname)
            .filter(|(kept, _)| *kept == inputs)
            .map(|(_, digest)| *digest)
    }

    /// Remembers that `inputs` compiled to content with `digest`.
    pub fn put(&self, certname: &str, inputs: Inputs, digest: Digest) {
        let mut nodes = self.nodes.lock().expect("compile memo");
        if nodes.len() >= MAX_NODES && !nodes.contains_key(certname) {
            nodes.clear();
        }
        nodes.insert(certname.to_string(), (inputs, digest));
    }
}

impl std::fmt::Debug for CompileMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileMemo").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imported() -> Imported {
        Imported {
            trees: vec![],
            artifacts: vec![],
            promotions: vec![],
        }
    }

    #[test]
    fn any_changed_input_misses() {
        let facts = serde_json::json!({"ip": "10.0.0.1"});
        let peer = |ip: &str| Peer {
            certname: "is-2".into(),
            role: "is".into(),
            ip: ip.into(),
        };
        let base = Inputs::of(3, ("is-1", "is", &facts), &[peer("10.0.0.2")], &imported());
        let memo = CompileMemo::default();
        let digest = Digest::of(b"content");
        memo.put("is-1", base, digest);
        assert_eq!(memo.get("is-1", base), Some(digest));
        assert_eq!(memo.get("is-2", base), None);
        let other_facts = serde_json::json!({"ip": "10.0.0.9"});
        for changed in [
            Inputs::of(4, ("is-1", "is", &facts), &[peer("10.0.0.2")], &imported()),
            Inputs::of(
                3,
                ("is-1", "is", &other_facts),
                &[peer("10.0.0.2")],
                &imported(),
            ),
            Inputs::of(3, ("is-1", "is", &facts), &[peer("10.0.0.3")], &imported()),
            Inputs::of(3, ("is-1", "is", &facts), &[], &imported()),
            Inputs::of(
                3,
                ("is-1", "apim", &facts),
                &[peer("10.0.0.2")],
                &imported(),
            ),
        ] {
            assert_ne!(changed, base);
            assert_eq!(memo.get("is-1", changed), None);
        }
        let mut with_level = imported();
        with_level.promotions.push(crate::store::PromotionRecord {
            name: "wso2is".into(),
            version: "5.11.0".into(),
            environment: "prod".into(),
            level: 2,
            promoted_at_ms: 0,
        });
        assert_ne!(
            Inputs::of(3, ("is-1", "is", &facts), &[peer("10.0.0.2")], &with_level),
            base
        );
    }
}
