//! The CloudFormation templates in deploy/aws: `cfn-lint` passes them with
//! exit 0, no template or user-data carries a secret or a `sleep`, and the
//! master signals only after its database work.

use std::process::Command;

use rigger_tests::repo_root;
use rigger_tests::services::program_or_skip;

fn templates() -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(repo_root().join("deploy/aws"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    found.sort();
    found
}

#[test]
fn the_templates_pass_cfn_lint() {
    let Some(lint) = program_or_skip("the_templates_pass_cfn_lint", "cfn-lint", "pip: cfn-lint")
    else {
        return;
    };
    let templates = templates();
    assert_eq!(templates.len(), 4, "{templates:?}");
    let out = Command::new(lint).args(&templates).output().unwrap();
    assert!(
        out.status.success(),
        "cfn-lint: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_template_or_user_data_holds_a_secret_or_a_sleep() {
    let mut files = templates();
    files.push(repo_root().join("deploy/aws/user-data.sh"));
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.display();
        for forbidden in ["sleep ", "AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"] {
            assert!(!text.contains(forbidden), "{name} has {forbidden:?}");
        }
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("MasterUserPassword:")),
            "{name} sets a database password"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.contains("password = \"") && !l.contains('%')),
            "{name} writes a literal password"
        );
    }
    for pattern in [
        "is-pattern-1.yaml",
        "apim-mi.yaml",
        "apim-ei-analytics.yaml",
    ] {
        let text = std::fs::read_to_string(repo_root().join("deploy/aws").join(pattern)).unwrap();
        assert!(
            text.contains("ManageMasterUserPassword: true"),
            "{pattern}: RDS keeps the password"
        );
        assert!(
            text.contains("Type: AWS::CloudFormation::Stack"),
            "{pattern}: the master is a nested stack"
        );
    }
}

#[test]
fn the_master_signals_after_db_init() {
    let template =
        std::fs::read_to_string(repo_root().join("deploy/aws/rigger-master.yaml")).unwrap();
    let text = &template[template.find("UserData:").expect("the master's user-data")..];
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("rigger-master.yaml has no {needle:?}"))
    };
    assert!(at("systemctl enable --now rigger-master") < at("masterctl db init"));
    assert!(at("masterctl db init") < at("signal 0"));
    assert!(
        text.contains("trap 'signal 1' ERR"),
        "a failed step signals failure"
    );
}
