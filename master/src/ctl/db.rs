//! `masterctl db init --role ROLE [--dry-run]`.

use rigger_common::proto::InitDatabasesRequest;

use super::{Ctl, Output, status};

/// Runs the role's database scripts on the master (see
/// [`crate::dbinit`]); a failed datasource fails the command.
pub async fn init(ctl: &Ctl, role: &str, dry_run: bool) -> anyhow::Result<Output> {
    let reply = ctl
        .client()
        .init_databases(InitDatabasesRequest {
            role: role.to_string(),
            dry_run,
        })
        .await
        .map_err(status)?
        .into_inner();
    if reply.failed {
        // The report first, then the error (exit 1).
        print!("{}", reply.report);
        anyhow::bail!("db init failed for role {role}: see FAILED above");
    }
    Ok(reply.report.into())
}
