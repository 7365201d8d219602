//! `masterctl db init` against a real MariaDB and a real PostgreSQL: two
//! runs at once apply each script once, the schema is created once and a
//! second run is a no-op, a dry run changes nothing, a wrong password or
//! host fails at once with the server's words, and a script an update
//! level changed is reported, not run.

use std::process::Command;

use rigger_tests::databases::{Database, Engine, PASSWORD, USER};
use rigger_tests::pack::SamplePack;
use rigger_tests::{Output, TestMaster, bin};

/// The pack's scripts for `engine`: WSO2's shapes (a trigger in a
/// DELIMITER block, a dollar-quoted function) and a table counting runs.
fn scripts(engine: Engine) -> [(&'static str, String); 3] {
    match engine {
        Engine::MariaDb => [
            (
                "dbscripts/identity/mysql.sql",
                "-- identity; with a comment\nCREATE TABLE IF NOT EXISTS IDN_OAUTH (ID INTEGER NOT NULL PRIMARY KEY, SCOPE VARCHAR(64) DEFAULT 'a;b');\n\
                 CREATE TABLE IF NOT EXISTS DB_INIT_RUNS (SCRIPT VARCHAR(32));\nINSERT INTO DB_INIT_RUNS VALUES ('identity');\n\
                 DELIMITER //\nCREATE TRIGGER IDN_OAUTH_SCOPE BEFORE INSERT ON IDN_OAUTH FOR EACH ROW BEGIN SET NEW.SCOPE = LOWER(NEW.SCOPE); END//\nDELIMITER ;\n"
                    .to_string(),
            ),
            (
                "dbscripts/identity/uma/mysql.sql",
                "CREATE TABLE IF NOT EXISTS IDN_UMA_RESOURCE (ID INTEGER);\nINSERT INTO DB_INIT_RUNS VALUES ('uma');\n".to_string(),
            ),
            (
                "dbscripts/consent/mysql.sql",
                "CREATE TABLE IF NOT EXISTS CM_PURPOSE (ID INTEGER);\nINSERT INTO DB_INIT_RUNS VALUES ('consent');\n".to_string(),
            ),
        ],
        Engine::Postgres => [
            (
                "dbscripts/identity/postgresql.sql",
                "CREATE TABLE IF NOT EXISTS IDN_OAUTH (ID INTEGER NOT NULL PRIMARY KEY, SCOPE VARCHAR(64) DEFAULT 'a;b');\n\
                 CREATE TABLE IF NOT EXISTS DB_INIT_RUNS (SCRIPT VARCHAR(32));\nINSERT INTO DB_INIT_RUNS VALUES ('identity');\n\
                 CREATE OR REPLACE FUNCTION lower_scope() RETURNS trigger AS $$\nBEGIN NEW.SCOPE := LOWER(NEW.SCOPE); RETURN NEW; END;\n$$ LANGUAGE plpgsql;\n\
                 CREATE TRIGGER IDN_OAUTH_SCOPE BEFORE INSERT ON IDN_OAUTH FOR EACH ROW EXECUTE PROCEDURE lower_scope();\n"
                    .to_string(),
            ),
            (
                "dbscripts/identity/uma/postgresql.sql",
                "CREATE TABLE IF NOT EXISTS IDN_UMA_RESOURCE (ID INTEGER);\nINSERT INTO DB_INIT_RUNS VALUES ('uma');\n".to_string(),
            ),
            (
                "dbscripts/consent/postgresql.sql",
                "CREATE TABLE IF NOT EXISTS CM_PURPOSE (ID INTEGER);\nINSERT INTO DB_INIT_RUNS VALUES ('consent');\n".to_string(),
            ),
        ],
    }
}

fn pack(engine: Engine) -> SamplePack {
    let mut pack = SamplePack::new(4, 16 << 10);
    for (path, text) in scripts(engine) {
        pack = pack.with_file(path, &text);
    }
    if engine == Engine::Postgres {
        pack = pack.with_file(
            "dbscripts/postgresql.sql",
            "CREATE TABLE IF NOT EXISTS REG_CLUSTER_LOCK (REG_LOCK_NAME VARCHAR (20));\n",
        );
    }
    pack
}

/// Points the `is` role's datasources at `db` (identity and shared in
/// databases of their own), with `password`.
fn point_role_at(master: &TestMaster, db: &Database, host_port: &str, password: &str) {
    let scheme = match db.engine() {
        Engine::MariaDb => "mysql",
        Engine::Postgres => "postgresql",
    };
    master.edit_site("roles/is.toml", |text| {
        let mut out = String::new();
        for line in text.lines() {
            if line.starts_with("url = \"jdbc:") {
                let database = if line.contains("IDENTITY") {
                    "WSO2IS_IDENTITY_DB"
                } else {
                    "WSO2IS_SHARED_DB"
                };
                out.push_str(&format!(
                    "url = \"jdbc:{scheme}://{host_port}/{database}?useSSL=false\"\n"
                ));
            } else if line.starts_with("username = ") {
                out.push_str(&format!("username = \"{USER}\"\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    });
    master.write_site(
        "secrets/roles/is.toml",
        &format!(
            "[databases.identity_db]\npassword = \"{password}\"\n\n[databases.shared_db]\npassword = \"{password}\"\n"
        ),
    );
}

fn db_init(master: &TestMaster, extra: &[&str]) -> Output {
    let mut args = vec!["db", "init", "--role", "is"];
    args.extend_from_slice(extra);
    master.ctl(&args)
}

fn db_init_runs_each_script_once(db: Database) {
    let engine = db.engine();
    let master = TestMaster::start_empty();
    let imported = master.import_pack(&pack(engine));
    assert_eq!(imported.code, 0, "{}", imported.all());
    point_role_at(&master, &db, &db.addr(), PASSWORD);

    // A dry run connects, says what it would do, and creates nothing.
    let dry = db_init(&master, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout
            .contains("would create database WSO2IS_IDENTITY_DB"),
        "{}",
        dry.all()
    );
    assert!(
        dry.stdout.contains("would run dbscripts/identity/"),
        "{}",
        dry.all()
    );
    assert!(
        db.sql("WSO2IS_IDENTITY_DB", "SELECT 1").is_err(),
        "a dry run creates no database"
    );

    // Two operators at once: each script runs once.
    let concurrent: Vec<std::process::Child> = (0..2)
        .map(|_| {
            Command::new(bin("masterctl"))
                .arg("--socket")
                .arg(master.socket())
                .args(["db", "init", "--role", "is"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = concurrent
        .into_iter()
        .map(|c| Output::of(c.wait_with_output().unwrap()))
        .collect();
    for out in &outputs {
        assert_eq!(out.code, 0, "{}", out.all());
    }
    let both = format!("{}{}", outputs[0].stdout, outputs[1].stdout);
    assert_eq!(
        both.matches("ran dbscripts/identity/").count(),
        2,
        "identity and uma, once: {both}"
    );
    assert_eq!(both.matches("ran dbscripts/consent/").count(), 1, "{both}");
    let runs = db
        .sql(
            "WSO2IS_IDENTITY_DB",
            "SELECT SCRIPT FROM DB_INIT_RUNS ORDER BY SCRIPT",
        )
        .unwrap();
    assert_eq!(
        runs.lines().collect::<Vec<_>>(),
        ["consent", "identity", "uma"]
    );
    // The shared database's script ran in a database of its own.
    assert!(
        db.sql("WSO2IS_SHARED_DB", "SELECT COUNT(*) FROM REG_CLUSTER_LOCK")
            .is_ok()
    );
    // The trigger (DELIMITER block, dollar-quoted function) works.
    db.sql(
        "WSO2IS_IDENTITY_DB",
        "INSERT INTO IDN_OAUTH (ID, SCOPE) VALUES (1, 'OPENID')",
    )
    .unwrap();
    assert_eq!(
        db.sql("WSO2IS_IDENTITY_DB", "SELECT SCOPE FROM IDN_OAUTH")
            .unwrap(),
        "openid"
    );

    // Again: a no-op.
    let again = db_init(&master, &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(!again.stdout.contains("ran "), "{}", again.all());
    assert_eq!(
        again.stdout.matches("already applied at level 0").count(),
        4,
        "{}",
        again.all()
    );
    assert_eq!(
        db.sql("WSO2IS_IDENTITY_DB", "SELECT COUNT(*) FROM DB_INIT_RUNS")
            .unwrap(),
        "3"
    );

    // An update level changed a script: reported, not run.
    let (path, text) = &scripts(engine)[2];
    let updated = pack(engine).at_level(1, 0).with_file(
        path,
        &format!("{text}INSERT INTO DB_INIT_RUNS VALUES ('consent again');\n"),
    );
    let out = master.import_update(&updated);
    assert_eq!(out.code, 0, "{}", out.all());
    let changed = db_init(&master, &[]);
    assert_eq!(changed.code, 0, "{}", changed.all());
    assert!(
        changed
            .stdout
            .contains(&format!("{path}: CHANGED since it was applied at level 0")),
        "{}",
        changed.all()
    );
    assert_eq!(
        db.sql("WSO2IS_IDENTITY_DB", "SELECT COUNT(*) FROM DB_INIT_RUNS")
            .unwrap(),
        "3",
        "the changed script did not run"
    );

    // A wrong password: the server's refusal, at once.
    point_role_at(&master, &db, &db.addr(), "not-the-password");
    let denied = db_init(&master, &[]);
    assert_eq!(denied.code, 1, "{}", denied.all());
    assert!(denied.all().contains("identity_db"), "{}", denied.all());
    assert!(
        denied.all().contains("Access denied")
            || denied.all().contains("password authentication failed"),
        "{}",
        denied.all()
    );

    // A wrong host (nothing listens there): refused, named.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = closed.local_addr().unwrap().to_string();
    drop(closed);
    point_role_at(&master, &db, &nowhere, PASSWORD);
    let refused = db_init(&master, &[]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.all().contains("cannot connect to") && refused.all().contains(&nowhere),
        "{}",
        refused.all()
    );
}

#[test]
fn db_init_against_mariadb_runs_each_script_once() {
    if let Some(db) = Database::mariadb("db_init_against_mariadb_runs_each_script_once") {
        db_init_runs_each_script_once(db);
    }
}

#[test]
fn db_init_against_postgresql_runs_each_script_once() {
    if let Some(db) = Database::postgres("db_init_against_postgresql_runs_each_script_once") {
        db_init_runs_each_script_once(db);
    }
}

#[test]
fn db_init_names_oracle_as_unsupported() {
    let master = TestMaster::start_empty();
    let imported = master.import_pack(&SamplePack::new(4, 16 << 10));
    assert_eq!(imported.code, 0, "{}", imported.all());
    // Both datasources: the example's shared_db names a host, and a test
    // never resolves one.
    master.edit_site("roles/is.toml", |text| {
        text.replace(
            "jdbc:mysql://wso2-db.demo.internal:3306/WSO2IS_IDENTITY_DB?useSSL=true",
            "jdbc:oracle:thin:@db:1521/ORCL",
        )
        .replace(
            "jdbc:mysql://wso2-db.demo.internal:3306/WSO2IS_SHARED_DB?useSSL=true",
            "jdbc:oracle:thin:@db:1521/ORCL",
        )
    });
    let out = db_init(&master, &["--dry-run"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.all().contains("Oracle is not supported"),
        "{}",
        out.all()
    );
}
