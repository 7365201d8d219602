//! WSO2's own update formats, built by the test as the tools write them:
//! a pack the `wso2update` tool (Updates 2.0) updated, and WUM update zips
//! (`update-descriptor3.yaml` and the older `update-descriptor.yaml`, files
//! under `carbon.home/`). Each becomes a level with exactly the changed
//! files; one that names another product, or changes what it does not
//! list, is refused and nothing is recorded.

use std::io::Write;
use std::path::Path;

use rigger_tests::pack::SamplePack;
use rigger_tests::{Output, TestMaster};

fn ga() -> SamplePack {
    SamplePack::new(12, 64 << 10)
}

fn levels(master: &TestMaster) -> Vec<u64> {
    let out = master.ctl(&["product", "list", "--json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut levels: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "wso2is")
        .filter_map(|p| p["level"].as_u64())
        .collect();
    levels.sort();
    levels
}

/// The paths an import says differ from the previous level.
fn changed(out: &Output) -> Vec<String> {
    out.stdout
        .lines()
        .skip_while(|l| !l.contains("paths differ from level"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().to_string())
        .collect()
}

/// A pack's files, without its top folder.
fn zip_files(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().split_once('/').unwrap().1.to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(name, bytes);
    }
    files
}

fn write_zip(path: &Path, files: &[(String, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (name, bytes) in files {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

fn import_file(master: &TestMaster, file: &Path) -> Output {
    master.ctl(&["update", "import", "wso2is@5.11.0", file.to_str().unwrap()])
}

#[test]
fn a_pack_updated_by_wso2update_becomes_its_level_and_another_products_pack_is_refused() {
    let master = TestMaster::start_empty();
    assert_eq!(master.import_pack(&ga()).code, 0);
    // What `wso2update` leaves: the level in updates/config.json, the
    // product in updates/product.txt, some files changed.
    let updated = ga()
        .at_level(7, 250)
        .with_file("updates/product.txt", "wso2is-5.11.0\n");
    let out = master.import_update(&updated);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.starts_with("wso2is 5.11.0 level 7: imported"),
        "{}",
        out.all()
    );
    // Exactly the files that differ between the two packs.
    let before = zip_files(&master.write_pack(&ga()));
    let after = zip_files(&master.write_pack(&updated));
    let mut expected: Vec<String> = after
        .iter()
        .filter(|(path, bytes)| before.get(*path) != Some(*bytes))
        .map(|(path, _)| path.clone())
        .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
        .collect();
    expected.sort();
    assert!(expected.len() > 3, "{expected:?}");
    let mut said = changed(&out);
    said.sort();
    assert_eq!(said, expected, "{}", out.all());
    assert_eq!(levels(&master), [0, 7]);

    // product.txt naming another product: refused.
    let lying = ga()
        .at_level(8, 250)
        .with_file("updates/product.txt", "wso2am-4.2.0\n");
    let out = master.import_update(&lying);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all().contains(
            "updates/product.txt names wso2am-4.2.0, but the pack's folder is wso2is-5.11.0"
        ),
        "{}",
        out.all()
    );
    // A whole pack of another product, given as an update: refused.
    let other = master.write_pack(&ga().of("wso2am", "4.2.0").at_level(9, 10));
    let out = import_file(&master, &other);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all()
            .contains("it is wso2am-4.2.0, not an update of wso2is-5.11.0"),
        "{}",
        out.all()
    );
    assert_eq!(levels(&master), [0, 7], "nothing recorded");
}

#[test]
fn wum_update_zips_apply_their_listed_changes_and_nothing_else() {
    let master = TestMaster::start_empty();
    assert_eq!(master.import_pack(&ga()).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let modified = SamplePack::file_path(0);
    let removed = SamplePack::file_path(1);
    let added = "repository/components/patches/patch4242/org.wso2.carbon.fix_1.0.0.jar";
    let descriptor3 = format!(
        "update_number: \"4242\"\nplatform_version: 4.4.0\nplatform_name: wilkes\n\
         description: Fixes the token endpoint.\ninstructions: Restart the server.\n\
         bug_fixes:\n  IDENTITY-1: \"token endpoint\"\n\
         compatible_products:\n\
         - product_name: wso2is\n  product_version: 5.11.0\n  added_files:\n  - {added}\n  modified_files:\n  - {modified}\n  removed_files:\n  - {removed}\n\
         - product_name: wso2am\n  product_version: 4.2.0\n  added_files: []\n  modified_files: []\n  removed_files: []\n"
    );
    let top = "WSO2-CARBON-UPDATE-4.4.0-4242";
    let wum3 = dir.path().join(format!("{top}.zip"));
    write_zip(
        &wum3,
        &[
            (
                format!("{top}/update-descriptor3.yaml"),
                descriptor3.clone().into_bytes(),
            ),
            (
                format!("{top}/instructions.txt"),
                b"Restart the server.\n".to_vec(),
            ),
            (format!("{top}/carbon.home/{added}"), b"new jar".to_vec()),
            (
                format!("{top}/carbon.home/{modified}"),
                b"fixed jar".to_vec(),
            ),
        ],
    );
    let out = import_file(&master, &wum3);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.starts_with("wso2is 5.11.0 level 4242: imported"),
        "{}",
        out.all()
    );
    let mut expected = vec![
        added.to_string(),
        "repository/components/patches".to_string(),
        "repository/components/patches/patch4242".to_string(),
        modified.clone(),
        removed.clone(),
    ];
    expected.sort();
    let mut said = changed(&out);
    said.sort();
    assert_eq!(said, expected, "{}", out.all());

    // The older descriptor, over level 4242.
    let descriptor = format!(
        "update_number: 4243\nplatform_version: 4.4.0\napplies_to: wso2is-5.11.0\n\
         file_changes:\n  added_files: []\n  removed_files: []\n  modified_files:\n  - {modified}\n"
    );
    let wum1 = dir.path().join("WSO2-CARBON-UPDATE-4.4.0-4243.zip");
    write_zip(
        &wum1,
        &[
            (
                "update-descriptor.yaml".to_string(),
                descriptor.into_bytes(),
            ),
            (format!("carbon.home/{modified}"), b"fixed again".to_vec()),
        ],
    );
    let out = import_file(&master, &wum1);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.starts_with("wso2is 5.11.0 level 4243: imported"),
        "{}",
        out.all()
    );
    assert_eq!(changed(&out), vec![modified.as_str()], "{}", out.all());

    // Refused, nothing recorded: an unlisted file, another product only,
    // a listed file the zip lacks.
    let cases = [
        (
            vec![
                ("update-descriptor.yaml".to_string(), format!("update_number: 4244\napplies_to: wso2is-5.11.0\nfile_changes:\n  modified_files:\n  - {modified}\n").into_bytes()),
                (format!("carbon.home/{modified}"), b"x".to_vec()),
                ("carbon.home/bin/wso2server.sh".to_string(), b"#!/bin/sh\nevil\n".to_vec()),
            ],
            "carries carbon.home/bin/wso2server.sh, which its descriptor does not list",
        ),
        (
            vec![(
                "update-descriptor.yaml".to_string(),
                b"update_number: 4245\napplies_to: wso2am-4.2.0\n".to_vec(),
            )],
            "applies to wso2am-4.2.0, not wso2is-5.11.0",
        ),
        (
            vec![(
                "update-descriptor3.yaml".to_string(),
                format!("update_number: 4246\ncompatible_products:\n- product_name: wso2is\n  product_version: 5.11.0\n  added_files:\n  - {added}.v2\n").into_bytes(),
            )],
            "carries no carbon.home/",
        ),
    ];
    for (i, (files, error)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.zip"));
        write_zip(&path, &files);
        let out = import_file(&master, &path);
        assert_eq!(out.code, 1, "{}", out.all());
        assert!(
            out.all().contains(error),
            "expected {error:?}: {}",
            out.all()
        );
    }
    assert_eq!(levels(&master), [0, 4242, 4243]);
}
