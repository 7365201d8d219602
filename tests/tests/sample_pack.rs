//! The sample pack generator's command line: real argument parsing (help
//! writes no file), the other products and versions, usage errors exit 64.

use std::process::Command;

fn sample_pack(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(rigger_tests::bin("sample-pack"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_is_help_and_writes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = sample_pack(dir.path(), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--product"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn another_product_and_version_name_the_top_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = sample_pack(
        dir.path(),
        &[
            "am.zip",
            "20",
            "1",
            "--product",
            "wso2am",
            "--version",
            "4.2.0",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let file = std::fs::File::open(dir.path().join("am.zip")).unwrap();
    let zip = zip::ZipArchive::new(file).unwrap();
    assert!(zip.file_names().all(|n| n.starts_with("wso2am-4.2.0/")));
}

#[test]
fn a_bad_argument_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["x.zip", "many"][..],
        &["x.zip", "--product", "wso2xx"],
        &[],
    ] {
        let out = sample_pack(dir.path(), args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
