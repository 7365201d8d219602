//! The site-data loader: the bytes as a site data file (the environment
//! layer of the example site), checked against the module's schema,
//! merged and rendered for the example role, as `masterctl module check`
//! does. Must refuse with a named problem, never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rigger_master::compiler::Compiler;

struct Fixture {
    _dir: tempfile::TempDir,
    layer: PathBuf,
    compiler: Compiler,
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        copy_dir(&repo.join("examples/site"), &site);
        let compiler = Compiler::new(vec![repo.join("modules")], site.clone());
        Fixture {
            layer: site.join("environments/demo.toml"),
            _dir: dir,
            compiler,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    std::fs::write(&f.layer, data).unwrap();
    let _ = f.compiler.check_role("is");
});
