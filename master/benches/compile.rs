//! Benchmark: the master's catalog compile rate for the example site's
//! `is` role (module load, data hierarchy, template rendering, the edits
//! to the product's deployment.toml, validation), and the full path that
//! also reads the product's file from the blob store, signs and stores a
//! new version.
//! Run with `cargo bench -p rigger-master --bench compile`; prints figures.

use std::path::Path;
use std::time::{Duration, Instant};

use rigger_common::manifest::{Entry, EntryKind, Manifest};
use rigger_master::compiler::{Compiler, NodeContext, Products, ReferenceFiles};

const COMPILES: usize = 300;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let compiler = Compiler::new(vec![root.join("modules")], root.join("examples/site"));
    let products = sample_products(&root);
    let warm = compiler
        .compile(&node(0), &products)
        .expect("example site compiles");
    let started = Instant::now();
    for i in 0..COMPILES {
        let content = compiler
            .compile(&node(i), &products)
            .expect("example site compiles");
        assert_eq!(content.resources.len(), warm.resources.len());
    }
    let elapsed = started.elapsed();
    report("compile only", elapsed);

    // Compile + digest + sign + store, through the same code the RPC uses.
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let elapsed = rt.block_on(async {
        let config = rigger_master::config::MasterConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            modules: vec![root.join("modules")],
            site: root.join("examples/site"),
            admin_socket: dir.path().join("admin.sock"),
            sans: vec![],
            peer_timeout: std::time::Duration::from_secs(5400),
            import_limits: Default::default(),
            max_connections: None,
            max_connections_per_address: None,
            retention: Default::default(),
            max_catalog_requests: 4,
            max_blob_streams: 64,
            metrics_listen: None,
            cert_lifetime: rigger_master::ca::DEFAULT_NODE_CERT_LIFETIME,
            ec2: Default::default(),
            catalog_ttl: std::time::Duration::from_secs(14 * 86_400),
            store: Default::default(),
            blobs: Default::default(),
        };
        let master = rigger_master::server::Master::open(config)
            .await
            .expect("master opens");
        let state = master.state().clone();
        // As a serving master does: the site watch lets the site revision's
        // file hash be reused until a file changes.
        let _site_watch = rigger_master::refresh::watch_site(state.clone()).expect("site watch");
        // A tree holding the product's deployment.toml, which the edits apply to.
        let config = std::fs::read(
            root.join("modules/wso2is/reference/wso2is-5.11.0/repository/conf/deployment.toml"),
        )
        .expect("reference deployment.toml");
        let file = state.blobs.put(config).await.expect("blob");
        let path = "repository/conf/deployment.toml".to_string();
        let manifest = Manifest::from_entries(
            [(
                path.clone(),
                Entry {
                    path,
                    mode: 0o644,
                    kind: EntryKind::File {
                        size: file.size,
                        digest: file.digest,
                    },
                },
            )]
            .into(),
        )
        .expect("manifest");
        let tree = state
            .blobs
            .put(manifest.to_json())
            .await
            .expect("manifest blob");
        let mut record = bench_tree();
        record.digest = tree.digest;
        state.store.insert_tree(&record, 0).await.expect("store");
        let started = Instant::now();
        for i in 0..COMPILES {
            let n = node(i);
            rigger_master::catalogs::publish(&state, &n.certname, "is", n.facts)
                .await
                .expect("catalog");
        }
        let one_at_a_time = started.elapsed();
        // As a master serves its nodes: requests from two nodes at a time
        // (one per core), then as many as the master compiles at once
        // (`max_catalog_requests`: twice the cores, at least 4); other
        // nodes than above.
        let two_at_a_time = publish_in_groups(&state, COMPILES..3 * COMPILES, 2).await;
        let at_once = rigger_master::config::MasterConfig::default_max_catalog_requests();
        let many_at_a_time = publish_in_groups(&state, 3 * COMPILES..5 * COMPILES, at_once).await;
        (one_at_a_time, two_at_a_time, (at_once, many_at_a_time))
    });
    report("compile + sign + store a new version", elapsed.0);
    report_count("the same, two nodes at a time", 2 * COMPILES, elapsed.1);
    let (at_once, many) = elapsed.2;
    report_count(
        &format!("the same, {at_once} nodes at a time"),
        2 * COMPILES,
        many,
    );
}

fn node(i: usize) -> NodeContext {
    NodeContext {
        certname: format!("bench-{i}"),
        role: "is".into(),
        inventory: vec![],
        facts: serde_json::json!({"hostname": format!("bench-{i}"), "ip": format!("10.0.{}.{}", i / 250, i % 250 + 1)}),
    }
}

/// Publishes a catalog for each node of `nodes`, `group` nodes at a time.
async fn publish_in_groups(
    state: &rigger_master::state::SharedState,
    nodes: std::ops::Range<usize>,
    group: usize,
) -> Duration {
    let started = Instant::now();
    for chunk in nodes.collect::<Vec<_>>().chunks(group) {
        let publishes = chunk.iter().map(|&i| {
            let state = state.clone();
            tokio::spawn(async move {
                let n = node(i);
                rigger_master::catalogs::publish(&state, &n.certname, "is", n.facts)
                    .await
                    .expect("catalog");
            })
        });
        for publish in publishes.collect::<Vec<_>>() {
            publish.await.expect("publish task");
        }
    }
    started.elapsed()
}

/// The wso2is 5.11.0 tree the example site's `is` role needs.
fn bench_tree() -> rigger_master::store::TreeRecord {
    rigger_master::store::TreeRecord {
        name: "wso2is".into(),
        version: "5.11.0".into(),
        level: 0,
        digest: rigger_common::digest::Digest::of(b"bench"),
        files: 3000,
        size: 200 << 20,
        imported_at_ms: 0,
    }
}

/// The imported tree, with the product's files from the reference files.
fn sample_products(root: &Path) -> Products {
    Products::from_records(&[bench_tree()]).with_pack_files(std::sync::Arc::new(
        ReferenceFiles::new(vec![root.join("modules")]),
    ))
}

fn report(what: &str, elapsed: Duration) {
    report_count(what, COMPILES, elapsed);
}

fn report_count(what: &str, count: usize, elapsed: Duration) {
    println!(
        "{what:<40} {count} catalogs in {:>7.1} ms: {:>7.0} catalogs/s ({:.2} ms each)",
        elapsed.as_secs_f64() * 1e3,
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / count as f64
    );
}
