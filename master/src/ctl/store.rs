//! `masterctl store migrate`: offline, on the master's host
//! ([`crate::store::migrate`]).

use std::path::PathBuf;

/// Moves the SQLite metadata in `data_dir` into the PostgreSQL database at
/// `url`; the text says what moved and what to do next.
pub async fn migrate(
    url: String,
    password_file: Option<PathBuf>,
    data_dir: PathBuf,
) -> anyhow::Result<String> {
    use anyhow::Context;
    let shown = crate::store_config::shown_url(&url);
    let settings =
        crate::store::PostgresSettings::with_password_file(url, password_file.as_deref(), 2)
            .with_context(|| {
                format!(
                    "cannot read the password file {}",
                    password_file.unwrap_or_default().display()
                )
            })?;
    let moved = crate::store::migrate::sqlite_to_postgres(&data_dir.join("master.db"), &settings)
        .await
        .with_context(|| format!("cannot move the metadata into {shown}"))?;
    let mut text = format!(
        "moved {}'s metadata into {shown}:\n",
        data_dir.join("master.db").display()
    );
    for (table, rows) in moved {
        text.push_str(&format!("  {table:<20} {rows} rows\n"));
    }
    text.push_str(
        "now set [store] kind = \"postgres\" with this url in master.toml and start the master; master.db is left as it was\n",
    );
    Ok(text)
}
