//! `masterctl db init --role ROLE [--dry-run]`: runs the role's product
//! `dbscripts/` against its datasources, exactly once. Each datasource
//! (`databases.<name>` in the role's data: a JDBC URL, a user, a password
//! from the secrets) is mapped to its scripts by `dbscripts.<name>` (the
//! module's defaults: the identity and shared databases to their files),
//! the URL becomes a connection ([`jdbc`]), a missing database is created,
//! and each script is run statement by statement ([`script`]) under a
//! database lock, then recorded in `RIGGER_DBSCRIPTS` ([`engine`]): a
//! second run is a no-op, and a script an update level changed is
//! reported, never run blindly.

pub mod engine;
pub mod jdbc;
pub mod script;

use std::fmt::Write;

use rigger_common::digest::Digest;
use toml::Table;

use crate::compiler::{PackFiles, TreeFile};
use crate::error::{Error, Result};
use crate::state::MasterState;
use engine::{Applied, Db};
use jdbc::{Parsed, Target};
use script::Dialect;

/// What `db init` did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The lines for the operator.
    pub text: String,
    /// Whether a datasource failed.
    pub failed: bool,
}

/// One datasource of the role.
#[derive(Debug, Clone)]
struct Datasource {
    name: String,
    url: String,
    user: String,
    password: String,
    scripts: Vec<String>,
}

/// The role's pack at its update level.
#[derive(Clone)]
struct Pack {
    product: String,
    version: String,
    level: u32,
    tree: Digest,
}

/// Runs (or, with `dry_run`, shows) the role's database scripts.
pub async fn init(state: &MasterState, role: &str, dry_run: bool) -> Result<Report> {
    let products = crate::catalogs::imported_products(state).await?;
    let (spec, data) = state
        .compiler
        .role_data(role, &products)
        .map_err(|e| Error::FailedPrecondition(rigger_common::error_chain(&e)))?;
    let product = data
        .get("product")
        .and_then(toml::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let version = spec.version.clone().unwrap_or_default();
    let level_value =
        serde_json::to_value(data.get("update_level").cloned()).map_err(Error::internal)?;
    let (level, tree) = products
        .resolve(&product, &version, &level_value)
        .map_err(Error::FailedPrecondition)?;
    let pack = Pack {
        product,
        version,
        level,
        tree: tree.digest,
    };
    let datasources = datasources(&data).map_err(Error::FailedPrecondition)?;
    let by = format!(
        "rigger-master@{}",
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().to_string())
            .unwrap_or_else(|_| "unknown".into())
    );
    let mut report = Report::default();
    let _ = writeln!(
        report.text,
        "role {role}: {} {} at update level {}{}",
        pack.product,
        pack.version,
        pack.level,
        if dry_run {
            " (dry run: nothing is changed)"
        } else {
            ""
        }
    );
    for datasource in &datasources {
        let mut lines = String::new();
        if let Err(e) = init_one(state, &pack, datasource, dry_run, &by, &mut lines).await {
            let _ = writeln!(lines, "  FAILED: {e}");
            report.failed = true;
        }
        report.text.push_str(&lines);
    }
    if datasources.is_empty() {
        let _ = writeln!(report.text, "no datasource has scripts (dbscripts.<name>)");
    }
    Ok(report)
}

/// The role's datasources with their scripts, in name order. A datasource
/// without a `dbscripts` entry is left out: the module runs none for it.
fn datasources(data: &Table) -> std::result::Result<Vec<Datasource>, String> {
    let databases = data.get("databases").and_then(toml::Value::as_table);
    let mapping = data.get("dbscripts").and_then(toml::Value::as_table);
    let (Some(databases), Some(mapping)) = (databases, mapping) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for (name, scripts) in mapping {
        let db = databases
            .get(name)
            .and_then(toml::Value::as_table)
            .ok_or_else(|| format!("dbscripts.{name} names no datasource databases.{name}"))?;
        let text = |key: &str| -> std::result::Result<String, String> {
            db.get(key)
                .and_then(toml::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("databases.{name}.{key} is not set"))
        };
        let scripts = scripts
            .as_array()
            .ok_or_else(|| format!("dbscripts.{name} must be a list of script paths"))?
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("dbscripts.{name}: {s} is not a path"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        found.push(Datasource {
            name: name.clone(),
            url: text("url")?,
            user: text("username")?,
            password: text("password")?,
            scripts,
        });
    }
    Ok(found)
}

/// The file name WSO2's packs use for an engine's scripts.
fn engine_file(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::MySql => "mysql",
        Dialect::Postgres => "postgresql",
    }
}

/// A script of the pack: its path, bytes and digest.
struct PackScript {
    path: String,
    text: String,
    digest: String,
}

fn pack_scripts(
    files: &crate::content::pack_files::ImportedPackFiles,
    pack: &Pack,
    datasource: &Datasource,
    dialect: Dialect,
) -> std::result::Result<Vec<PackScript>, String> {
    let mut scripts = Vec::new();
    for pattern in &datasource.scripts {
        let path = format!(
            "dbscripts/{}",
            pattern.replace("{engine}", engine_file(dialect))
        );
        if path.contains("..") {
            return Err(format!(
                "dbscripts.{}: {path} leaves dbscripts/",
                datasource.name
            ));
        }
        let file = TreeFile {
            product: &pack.product,
            version: &pack.version,
            level: pack.level,
            tree: pack.tree,
            path: &path,
        };
        let bytes = files.read(&file)?.ok_or_else(|| {
            format!(
                "the pack has no {path} (dbscripts.{} in the module's data names it)",
                datasource.name
            )
        })?;
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))?;
        scripts.push(PackScript { path, text, digest });
    }
    Ok(scripts)
}

async fn init_one(
    state: &MasterState,
    pack: &Pack,
    datasource: &Datasource,
    dry_run: bool,
    by: &str,
    out: &mut String,
) -> std::result::Result<(), String> {
    let target: Target = match jdbc::parse(&datasource.url)
        .map_err(|e| format!("databases.{}.url: {e}", datasource.name))?
    {
        Parsed::Server(target) => target,
        Parsed::Embedded => {
            let _ = writeln!(
                out,
                "{}: the product's embedded H2 database: nothing to initialise",
                datasource.name
            );
            return Ok(());
        }
    };
    let _ = writeln!(
        out,
        "{} → {} (as {})",
        datasource.name,
        target.describe(),
        datasource.user
    );
    // The pack's files are in the blob store (blocking reads).
    let scripts = pack_scripts_blocking(state, pack, datasource, target.dialect).await?;
    let parsed: Vec<Vec<script::Statement>> = scripts
        .iter()
        .map(|s| script::split(&s.text, target.dialect).map_err(|e| format!("{}: {e}", s.path)))
        .collect::<std::result::Result<_, _>>()?;

    // One connection to the server: is the database there, create it if not.
    let mut server = engine::connect(&target, &datasource.user, &datasource.password, None).await?;
    let created = ensure_database(&mut server, &target.database, dry_run).await;
    server.close().await;
    match created? {
        Presence::Existed => {}
        Presence::Created => {
            let _ = writeln!(out, "  created database {}", target.database);
        }
        Presence::Missing => {
            let _ = writeln!(out, "  would create database {}", target.database);
            for (s, statements) in scripts.iter().zip(&parsed) {
                let _ = writeln!(
                    out,
                    "  would run {} ({} statements)",
                    s.path,
                    statements.len()
                );
            }
            return Ok(());
        }
    }
    let mut db = engine::connect(
        &target,
        &datasource.user,
        &datasource.password,
        Some(&target.database),
    )
    .await?;
    let result = run_scripts(&mut db, pack, &scripts, &parsed, dry_run, by, out).await;
    db.close().await;
    result
}

/// Whether the database was there, is now, or (in a dry run) is missing.
enum Presence {
    Existed,
    Created,
    Missing,
}

/// Creates `database` when it is missing, unless `dry_run`.
async fn ensure_database(
    server: &mut Db,
    database: &str,
    dry_run: bool,
) -> std::result::Result<Presence, String> {
    if server.database_exists(database).await? {
        Ok(Presence::Existed)
    } else if dry_run {
        Ok(Presence::Missing)
    } else if server.create_database(database).await? {
        Ok(Presence::Created)
    } else {
        // Another run created it meanwhile.
        Ok(Presence::Existed)
    }
}

/// [`pack_scripts`] on a blocking thread (the blob store reads files).
async fn pack_scripts_blocking(
    state: &MasterState,
    pack: &Pack,
    datasource: &Datasource,
    dialect: Dialect,
) -> std::result::Result<Vec<PackScript>, String> {
    let files = state.pack_files.clone();
    let (pack, datasource) = (pack.clone(), datasource.clone());
    tokio::task::spawn_blocking(move || pack_scripts(&files, &pack, &datasource, dialect))
        .await
        .map_err(|e| format!("reading the scripts stopped: {e}"))?
}

async fn run_scripts(
    db: &mut Db,
    pack: &Pack,
    scripts: &[PackScript],
    parsed: &[Vec<script::Statement>],
    dry_run: bool,
    by: &str,
    out: &mut String,
) -> std::result::Result<(), String> {
    if !dry_run {
        db.lock(&pack.product).await?;
        db.ensure_record_table().await?;
    }
    // Read after the lock: what another run applied meanwhile counts.
    let applied = db.applied().await?;
    for (script, statements) in scripts.iter().zip(parsed) {
        match applied.iter().find(|a| a.script == script.path) {
            Some(a) if a.digest == script.digest => {
                let _ = writeln!(
                    out,
                    "  {}: already applied at level {} ({} by {})",
                    script.path, a.level, a.at, a.by
                );
            }
            Some(a) => {
                let _ = writeln!(
                    out,
                    "  {}: CHANGED since it was applied at level {} ({} by {}): not run — compare it with the pack of level {} and apply the difference by hand",
                    script.path, a.level, a.at, a.by, a.level
                );
            }
            None if dry_run => {
                let _ = writeln!(
                    out,
                    "  would run {} ({} statements)",
                    script.path,
                    statements.len()
                );
            }
            None => {
                let record = Applied {
                    script: script.path.clone(),
                    digest: script.digest.clone(),
                    level: pack.level,
                    at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                    by: by.to_string(),
                };
                db.apply(statements, &record)
                    .await
                    .map_err(|e| format!("{}: {e}", script.path))?;
                let _ = writeln!(
                    out,
                    "  ran {} ({} statements)",
                    script.path,
                    statements.len()
                );
            }
        }
    }
    Ok(())
}
