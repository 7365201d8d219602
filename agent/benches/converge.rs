//! Benchmark: a converged run of a catalog with 500 file resources (plus
//! their directories) through the real apply engine on real files.
//! Run with `cargo bench -p rigger-agent --bench converge`; prints figures.

use std::time::{Duration, Instant};

use rigger_agent::apply::apply_catalog;
use rigger_agent::paths::Paths;
use rigger_agent::resources::ApplyContext;
use rigger_common::catalog::{CatalogContent, DirectorySpec, FileSpec, Resource, ResourceSpec};

const FILES: usize = 500;
const DIRS: usize = 20;
const RUNS: usize = 30;

fn catalog() -> CatalogContent {
    let mut resources = Vec::new();
    for d in 0..DIRS {
        resources.push(Resource {
            id: format!("dir{d}"),
            requires: vec![],
            notifies: vec![],
            spec: ResourceSpec::Directory(DirectorySpec {
                path: format!("/opt/bench/d{d}"),
                mode: Some(0o755),
                owner: None,
                group: None,
            }),
        });
    }
    for f in 0..FILES {
        let d = f % DIRS;
        resources.push(Resource {
            id: format!("file{f}"),
            requires: vec![format!("dir{d}")],
            notifies: vec![],
            spec: ResourceSpec::File(FileSpec {
                path: format!("/opt/bench/d{d}/f{f}.xml"),
                content: format!(
                    "<config id=\"{f}\">\n{}</config>\n",
                    "  <property name=\"x\">value</property>\n".repeat(60)
                ),
                source: None,
                mode: Some(0o644),
                owner: None,
                group: None,
                secret: false,
                restart_key: None,
                redacted_content: None,
            }),
        });
    }
    CatalogContent {
        role: "bench".into(),
        profile: "bench/bench".into(),
        resources,
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = ApplyContext::new(Paths::new(dir.path()));
    let content = catalog();
    let started = Instant::now();
    let first = apply_catalog(&content, &ctx, false, |_| {}).expect("valid catalog");
    let first_time = started.elapsed();
    assert_eq!(first.failed(), 0);
    assert_eq!(first.changed() as usize, FILES + DIRS);

    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let report = apply_catalog(&content, &ctx, false, |_| {}).expect("valid catalog");
        times.push(started.elapsed());
        assert_eq!(report.changed(), 0, "a converged run changed something");
    }
    times.sort();
    let median = times[RUNS / 2];
    let mean = times.iter().sum::<Duration>() / RUNS as u32;
    println!("catalog: {FILES} files (~2.4 KiB each) in {DIRS} directories");
    println!(
        "first (converging) run:       {:>8.2} ms",
        first_time.as_secs_f64() * 1e3
    );
    println!(
        "converged run, {RUNS} runs:      median {:>6.2} ms, mean {:>6.2} ms, min {:>6.2} ms, max {:>6.2} ms",
        median.as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3
    );
}
