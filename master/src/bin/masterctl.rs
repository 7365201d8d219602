//! `masterctl`: administers a running master over its root-only socket.
//! Thin: parses the noun-verb command line and writes what the command
//! modules in `rigger_master::ctl` return.

use std::io::Write;

use rigger_common::text::printable;
use std::process::ExitCode;

use rigger_common::exit;
use rigger_master::ctl::{self, Ctl, Output};

use rigger_master::cli::masterctl::*;

fn command_of(command: BackupCommand) -> ctl::backup::Command {
    match command {
        BackupCommand::Key { file } => ctl::backup::Command::Key { file },
        BackupCommand::Create {
            file,
            key_file,
            data_dir,
            without_blobs,
        } => ctl::backup::Command::Create {
            file,
            key_file,
            data_dir,
            with_blobs: !without_blobs,
        },
        BackupCommand::Restore {
            file,
            key_file,
            data_dir,
        } => ctl::backup::Command::Restore {
            file,
            key_file,
            data_dir,
        },
    }
}

fn main() -> ExitCode {
    let cli: Cli = exit::parse_args();
    rigger_common::cli::run("masterctl", async move {
        let output = run(cli).await?;
        write_out(&output)?;
        Ok(exit::OK)
    })
}

/// Writes a command's output (control characters from data escaped); a reader that went away (`masterctl … |
/// head`) is not an error.
fn write_out(output: &Output) -> anyhow::Result<()> {
    let written = std::io::stdout()
        .lock()
        .write_all(printable(&output.stdout).as_bytes())
        .and_then(|()| std::io::stdout().flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    let _ = std::io::stderr().write_all(printable(&output.stderr).as_bytes());
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<Output> {
    if let Command::Module(ModuleCommand::Check {
        modules,
        site,
        master: false,
    }) = cli.command
    {
        let mut checked = ctl::module::check(modules, site)?;
        write_out(&Output::from(std::mem::take(&mut checked.report)))?;
        checked.into_result()?;
        return Ok(Output::default());
    }
    if let Command::Store(StoreCommand::Migrate {
        to: _,
        url,
        password_file,
        data_dir,
    }) = cli.command
    {
        return ctl::store::migrate(url, password_file, data_dir)
            .await
            .map(Output::from);
    }
    if let Command::Backup(command) = cli.command {
        return ctl::backup::run(command_of(command))
            .await
            .map(Output::from);
    }
    let c = match &cli.master {
        Some(master) => {
            let (Some(cert), Some(key), Some(ca)) = (&cli.cert, &cli.key, &cli.ca) else {
                anyhow::bail!("--master needs --cert, --key and --ca");
            };
            Ctl::connect_remote(master, cert, key, ca).await?
        }
        None => Ctl::connect(&cli.socket).await?,
    };
    let text = match cli.command {
        Command::Admin(AdminCommand::Issue { name, out }) => {
            ctl::admin::issue(&c, &name, &out).await?
        }
        Command::Token(TokenCommand::Create {
            ttl,
            uses,
            role,
            unbound,
        }) => {
            return ctl::token::create(&c, ttl, uses, role, unbound).await;
        }
        Command::Status { json } => ctl::status::show(&c, json).await?,
        Command::Ca(CaCommand::Show) => ctl::ca::show(&c).await?,
        Command::Ca(CaCommand::Rotate { finish }) => ctl::ca::rotate(&c, finish).await?,
        Command::Cert(CertCommand::List { json }) => ctl::cert::list(&c, json).await?,
        Command::Cert(CertCommand::Revoke { name }) => ctl::cert::revoke(&c, &name).await?,
        Command::Cert(CertCommand::Pending { json }) => ctl::cert::pending(&c, json).await?,
        Command::Cert(CertCommand::Sign { name, role }) => {
            ctl::cert::sign(&c, &name, role.as_deref()).await?
        }
        Command::Node(NodeCommand::List { json }) => ctl::node::list(&c, json).await?,
        Command::Node(NodeCommand::Remove { node }) => ctl::node::remove(&c, &node).await?,
        Command::Node(NodeCommand::Show {
            node,
            reports,
            json,
        }) => ctl::node::show(&c, &node, reports, json).await?,
        Command::Product(ProductCommand::Import {
            file,
            name,
            version,
        }) => ctl::product::import(&c, &file, name, version).await?,
        Command::Product(ProductCommand::List { json }) => ctl::product::list(&c, json).await?,
        Command::Update(UpdateCommand::Import {
            product,
            file,
            level,
        }) => ctl::update::import(&c, &product, &file, level).await?,
        Command::Update(UpdateCommand::Promote {
            product,
            level,
            environment,
        }) => ctl::update::promote(&c, &product, level, &environment).await?,
        Command::Catalog(CatalogCommand::Show {
            node,
            version,
            json,
        }) => ctl::catalog::show(&c, &node, version, json).await?,
        Command::Catalog(CatalogCommand::List { node, limit, json }) => {
            ctl::catalog::list(&c, &node, limit, json).await?
        }
        Command::Token(TokenCommand::List { json }) => ctl::token::list(&c, json).await?,
        Command::Token(TokenCommand::Revoke { id }) => ctl::token::revoke(&c, &id).await?,
        Command::Catalog(CatalogCommand::Diff { node, a, b }) => {
            ctl::catalog::diff(&c, &node, a, b).await?
        }
        Command::Catalog(CatalogCommand::Rollback { node, to }) => {
            ctl::catalog::rollback(&c, &node, to).await?
        }
        Command::Catalog(CatalogCommand::Unpin { node }) => ctl::catalog::unpin(&c, &node).await?,
        Command::Artifact(ArtifactCommand::Import { file, name }) => {
            ctl::artifact::import(&c, &file, &name).await?
        }
        Command::Artifact(ArtifactCommand::List { json }) => ctl::artifact::list(&c, json).await?,
        Command::Lease(LeaseCommand::List { json }) => ctl::lease::list(&c, json).await?,
        Command::Lease(LeaseCommand::Free { cluster, node }) => {
            ctl::lease::free(&c, &cluster, &node).await?
        }
        Command::Rollout(RolloutCommand::List { json }) => ctl::rollout::list(&c, json).await?,
        Command::Rollout(RolloutCommand::Status { cluster, json }) => {
            ctl::rollout::show(&c, &cluster, json).await?
        }
        Command::Rollout(RolloutCommand::Pause { cluster }) => {
            ctl::rollout::control(&c, &cluster, "pause").await?
        }
        Command::Rollout(RolloutCommand::Resume { cluster }) => {
            ctl::rollout::control(&c, &cluster, "resume").await?
        }
        Command::Rollout(RolloutCommand::Abort { cluster }) => {
            ctl::rollout::control(&c, &cluster, "abort").await?
        }
        Command::Lookup { node, key } => ctl::lookup::lookup(&c, &node, &key).await?,
        Command::Db(DbCommand::Init { role, dry_run }) => {
            return ctl::db::init(&c, &role, dry_run).await;
        }
        Command::Module(ModuleCommand::Check { master: true, .. }) => {
            let mut checked = ctl::module::check_on_master(&c).await?;
            write_out(&Output::from(std::mem::take(&mut checked.report)))?;
            checked.into_result()?;
            return Ok(Output::default());
        }
        Command::Module(_) | Command::Backup(_) | Command::Store(_) => {
            unreachable!("handled before connecting")
        }
    };
    Ok(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // Two flags of one name where clap would see both (a global one
        // and a subcommand's) fail here rather than at run time.
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
