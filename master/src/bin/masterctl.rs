//! `masterctl`: administers a running master over its root-only socket.
//! Thin: parses the noun-verb command line and writes what the command
//! modules in `rigger_master::ctl` return.

use std::io::Write;

use rigger_common::text::printable;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rigger_common::exit;
use rigger_master::ctl::{self, Ctl, Output};

/// Administer a Rigger master.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The master's admin socket.
    #[arg(
        long,
        env = "RIGGER_ADMIN_SOCKET",
        default_value = "/run/rigger/master.sock",
        global = true
    )]
    socket: PathBuf,
    /// Administer a master remotely, over its node listener (e.g.
    /// 10.0.1.10:8140), with an admin certificate (`masterctl admin
    /// issue`) instead of the socket. Given before the command (`module
    /// check --master` is another flag).
    #[arg(long, env = "RIGGER_ADMIN_MASTER", requires_all = ["cert", "key", "ca"])]
    master: Option<String>,
    /// The admin certificate (with --master).
    #[arg(long, env = "RIGGER_ADMIN_CERT")]
    cert: Option<PathBuf>,
    /// Its key (with --master).
    #[arg(long, env = "RIGGER_ADMIN_KEY")]
    key: Option<PathBuf>,
    /// The master's CA certificate (with --master).
    #[arg(long, env = "RIGGER_ADMIN_CA")]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encrypted backups of the master's data directory (CA, signing key,
    /// database snapshot, content), and restores: run on the master's host.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Remote administrators' certificates.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The master at a glance: version, the CA's expiry (warned 90 days
    /// ahead), the revocation list in force, node certificates by state.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bootstrap tokens for enrolling nodes.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The master's certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issued node certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// The node inventory.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Compiled catalogs.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Product distributions (GA packs, JDKs).
    #[command(subcommand)]
    Product(ProductCommand),
    /// Update levels of imported products.
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Modules and site data, checked without a running master.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Show a data key's value for a node and the files that set it.
    Lookup {
        /// The node's certname.
        node: String,
        /// Dotted key, e.g. databases.identity_db.url.
        key: String,
    },
    /// Single files modules need beside the pack (JDBC drivers, …).
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Restart leases: which nodes of a cluster have their server down for a restart.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Rollouts: how a change reaches each cluster (canary, waves, halts).
    #[command(subcommand)]
    Rollout(RolloutCommand),
}

#[derive(Subcommand, Debug)]
enum RolloutCommand {
    /// Every cluster's rollout.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One cluster's rollout: its steps, its nodes, why it halted.
    Status {
        /// The cluster.
        cluster: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Admit no further node (those admitted keep the change).
    Pause {
        /// The cluster.
        cluster: String,
    },
    /// Go on admitting nodes; after a halt, try the failed nodes again.
    Resume {
        /// The cluster.
        cluster: String,
    },
    /// Give every admitted node its content from before the change, and
    /// admit no further node until a newer change.
    Abort {
        /// The cluster.
        cluster: String,
    },
}

#[derive(Subcommand, Debug)]
enum LeaseCommand {
    /// List the leases nodes hold now.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Free a node's lease (a node that died mid-restart, say) so that the
    /// next node of its cluster may restart before the lease lapses.
    Free {
        /// The cluster.
        cluster: String,
        /// The node's certname.
        node: String,
    },
}

#[derive(Subcommand, Debug)]
enum ModuleCommand {
    /// Render every profile of every module against its default data (and
    /// every role of the site, when given); report every error at once.
    /// Without a master, edits apply to the modules' reference files of
    /// each product version; with `--master`, the running master compiles
    /// its site's roles against the packs it imported.
    Check {
        /// Module path (repeatable).
        #[arg(long, default_value = "/etc/rigger/modules")]
        modules: Vec<PathBuf>,
        /// Site data directory to check too.
        #[arg(long)]
        site: Option<PathBuf>,
        /// Ask the running master (its modules, site and imported packs).
        #[arg(long, conflicts_with_all = ["modules", "site"])]
        master: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ArtifactCommand {
    /// Import a file under a name modules refer to (`artifact = "NAME"`).
    Import {
        /// The file.
        file: PathBuf,
        /// Its name; importing another file under the same name replaces it.
        #[arg(long)]
        name: String,
    },
    /// List imported artifacts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ProductCommand {
    /// Import a product pack (zip or tar.gz); re-importing the same pack is a no-op.
    Import {
        /// The pack.
        file: PathBuf,
        /// Product name (default: from the pack's top folder, e.g. wso2is-5.11.0).
        #[arg(long, requires = "version")]
        name: Option<String>,
        /// Product version (default: from the pack's top folder).
        #[arg(long, requires = "name")]
        version: Option<String>,
    },
    /// List imported products, versions and update levels.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum UpdateCommand {
    /// Import an update level: a full updated pack or an update bundle.
    Import {
        /// NAME@VERSION, e.g. wso2is@5.11.0.
        product: String,
        /// The updated pack or bundle.
        file: PathBuf,
        /// The level, when the archive does not say.
        #[arg(long)]
        level: Option<u32>,
    },
    /// Promote an imported level to an environment: its roles that follow
    /// `update_level = "latest"` run it from their next run (a development
    /// environment always runs the highest level).
    Promote {
        /// NAME@VERSION, e.g. wso2is@5.11.0.
        product: String,
        /// The level.
        #[arg(long)]
        level: u32,
        /// The environment (`environments/<env>.toml`).
        #[arg(long = "to", value_name = "ENV")]
        environment: String,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token and print it alone on stdout.
    #[command(group(clap::ArgGroup::new("binding").required(true).args(["role", "unbound"])))]
    Create {
        /// Lifetime, e.g. 30m, 1h, 2d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// How many nodes may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Role bound to every node enrolled with it.
        #[arg(long)]
        role: Option<String>,
        /// Bind no role: nodes enrolled with it pick theirs (`--role`, or the
        /// EC2 tag rigger:role), and with it that role's secrets.
        #[arg(long)]
        unbound: bool,
    },
    /// List tokens (by id; a token itself is shown only when created).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: no node enrolls with it any more.
    Revoke {
        /// Its id, as `token list` shows it.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Issue an admin certificate for NAME (on the master, as root): a key
    /// made here and its certificate, with the CA, are written to --out;
    /// whoever holds them may administer the master remotely until the
    /// certificate expires or `masterctl cert revoke admin/NAME`.
    Issue {
        /// The administrator's name (letters, digits, '.', '-', '_').
        name: String,
        /// The directory to write NAME.key (0600), NAME.crt and ca.crt to.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Write a new random backup key to FILE (0600). Keep it away from the
    /// backups: a backup is only as safe as its key.
    Key {
        /// Where to write the key.
        file: PathBuf,
    },
    /// Back up the data directory into FILE, encrypted with the key in
    /// --key-file; safe while the master runs (SQLite snapshots itself).
    Create {
        /// The backup to write.
        file: PathBuf,
        /// The key (from `masterctl backup key`).
        #[arg(long)]
        key_file: PathBuf,
        /// The master's data directory.
        #[arg(long, default_value = "/var/lib/rigger/master")]
        data_dir: PathBuf,
        /// Leave the content store (imported packs) out: smaller, and the
        /// packs are imported again after a restore.
        #[arg(long)]
        without_blobs: bool,
    },
    /// Restore FILE into an empty data directory (the master stopped); the
    /// restored master starts a new epoch and continues above every
    /// catalog version its nodes have seen.
    Restore {
        /// The backup.
        file: PathBuf,
        /// The key it was made with.
        #[arg(long)]
        key_file: PathBuf,
        /// The (empty or absent) data directory to restore into.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Print the CA certificate and its sha256 fingerprint.
    Show,
    /// Rotate the CA in two steps. First: a new CA is introduced, trusted
    /// and announced to every node at its next run. Then, once every node
    /// has run (`masterctl status` names the new CA), `--finish`: the new
    /// CA signs from the master's next start, and the old one stays
    /// trusted for the certificates it signed until they are renewed.
    Rotate {
        /// Make the introduced CA the CA (takes effect at the next start).
        #[arg(long)]
        finish: bool,
    },
}

#[derive(Subcommand, Debug)]
enum CertCommand {
    /// List issued certificates: state (valid, revoked, expired), serial,
    /// expiry.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a node's certificates now: the master refuses them at the
    /// next TLS handshake and closes their open connections. The node
    /// stays in the inventory (`node remove` also takes it out).
    Revoke {
        /// A certname (all its certificates) or one certificate's serial.
        name: String,
    },
    /// EC2 enrollments no rule of the site's enrollment.toml accepted,
    /// waiting for an operator: the instance, its account, image and
    /// address, and why.
    Pending {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a waiting enrollment: its node gets the certificate when it
    /// next asks.
    Sign {
        /// The instance id it enrolls as.
        name: String,
        /// The role to bind (default: the one it asked for).
        #[arg(long)]
        role: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Remove a node from the inventory and revoke its certificate (e.g. an
    /// instance an autoscaling group replaced); its peers drop it on their next run.
    Remove {
        /// The node's certname.
        node: String,
    },
    /// One node: its state, facts and last reports (each resource's
    /// outcome and diff, secrets masked; why each run happened).
    Show {
        /// The node's certname.
        node: String,
        /// How many of its last reports.
        #[arg(long, default_value_t = 5)]
        reports: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List enrolled nodes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum CatalogCommand {
    /// What changed between two catalog versions of a node (secrets redacted).
    Diff {
        /// The node's certname.
        node: String,
        /// The older version.
        a: u64,
        /// The newer version.
        b: u64,
    },
    /// Pin a node to an earlier catalog's content (as a new, higher version).
    Rollback {
        /// The node's certname.
        node: String,
        /// The version whose content to go back to.
        #[arg(long)]
        to: u64,
    },
    /// Let a pinned node's catalog follow the site again.
    Unpin {
        /// The node's certname.
        node: String,
    },
    /// A node's catalog versions, newest first: when each was made, the
    /// site revision it was compiled from, which one the node applied.
    List {
        /// The node's certname.
        node: String,
        /// How many versions.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a node's catalog (secrets redacted).
    Show {
        /// The node's certname.
        node: String,
        /// Version (default: the latest).
        #[arg(long)]
        version: Option<u64>,
        /// Print the catalog JSON as is.
        #[arg(long)]
        json: bool,
    },
}

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
        Command::Module(ModuleCommand::Check { master: true, .. }) => {
            let mut checked = ctl::module::check_on_master(&c).await?;
            write_out(&Output::from(std::mem::take(&mut checked.report)))?;
            checked.into_result()?;
            return Ok(Output::default());
        }
        Command::Module(_) | Command::Backup(_) => unreachable!("handled before connecting"),
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
