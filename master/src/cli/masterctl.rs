//! `masterctl`'s command line: nouns and verbs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Administer a Rigger master.
#[derive(Parser, Debug)]
#[command(name = "masterctl", version)]
pub struct Cli {
    /// The master's admin socket.
    #[arg(
        long,
        env = "RIGGER_ADMIN_SOCKET",
        default_value = "/run/rigger/master.sock",
        global = true
    )]
    pub socket: PathBuf,
    /// Administer a master remotely, over its node listener (e.g.
    /// 10.0.1.10:8140), with an admin certificate (`masterctl admin
    /// issue`) instead of the socket. Given before the command (`module
    /// check --master` is another flag).
    #[arg(long, env = "RIGGER_ADMIN_MASTER", requires_all = ["cert", "key", "ca"])]
    pub master: Option<String>,
    /// The admin certificate (with --master).
    #[arg(long, env = "RIGGER_ADMIN_CERT")]
    pub cert: Option<PathBuf>,
    /// Its key (with --master).
    #[arg(long, env = "RIGGER_ADMIN_KEY")]
    pub key: Option<PathBuf>,
    /// The master's CA certificate (with --master).
    #[arg(long, env = "RIGGER_ADMIN_CA")]
    pub ca: Option<PathBuf>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `masterctl`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Encrypted backups of the master's data directory (CA, signing key,
    /// database snapshot, content), and restores: run on the master's host.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// The metadata store: move a SQLite master's data into PostgreSQL
    /// (run on the master's host, the master stopped).
    #[command(subcommand)]
    Store(StoreCommand),
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
    /// The products' databases: their dbscripts, run once.
    #[command(subcommand)]
    Db(DbCommand),
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

/// The verbs of `masterctl rollout`.
#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
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

/// The verbs of `masterctl lease`.
#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
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

/// The verbs of `masterctl module`.
#[derive(Subcommand, Debug)]
pub enum ModuleCommand {
    /// Render every profile of every module against its default data (and
    /// every role of the site, when given); report every error at once.
    /// Without a master, edits apply to the modules' reference files of
    /// each product version; with `--master`, the running master compiles
    /// its site's roles against the packs it imported.
    Check {
        /// Module path (repeatable; default: the site's own modules, then
        /// the packaged ones, as the master searches them).
        #[arg(
            long,
            value_delimiter = ',',
            default_values = ["/etc/rigger/modules", "/usr/share/rigger/modules"]
        )]
        modules: Vec<PathBuf>,
        /// Site data directory to check too.
        #[arg(long)]
        site: Option<PathBuf>,
        /// Ask the running master (its modules, site and imported packs).
        #[arg(long, conflicts_with_all = ["modules", "site"])]
        master: bool,
    },
}

/// The verbs of `masterctl artifact`.
#[derive(Subcommand, Debug)]
pub enum ArtifactCommand {
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

/// The verbs of `masterctl product`.
#[derive(Subcommand, Debug)]
pub enum ProductCommand {
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

/// The verbs of `masterctl update`.
#[derive(Subcommand, Debug)]
pub enum UpdateCommand {
    /// Import an update level: a pack the wso2update tool updated (Updates
    /// 2.0: updates/config.json, updates/product.txt), a WUM update zip
    /// (update-descriptor3.yaml or update-descriptor.yaml, files under
    /// carbon.home/), or a Rigger bundle (rigger-update.toml).
    Import {
        /// NAME@VERSION, e.g. wso2is@5.11.0.
        product: String,
        /// The updated pack, WUM update zip or bundle.
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

/// The verbs of `masterctl token`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
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

/// The verbs of `masterctl admin`.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
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

/// The verbs of `masterctl backup`.
#[derive(Subcommand, Debug)]
pub enum BackupCommand {
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

/// The verbs of `masterctl store`.
#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy every table of the data directory's master.db into an empty
    /// PostgreSQL database, in one transaction; then set `[store] kind =
    /// "postgres"` and start the master (docs/scale-out.md).
    Migrate {
        /// The store to move to: postgres.
        #[arg(long, value_parser = ["postgres"])]
        to: String,
        /// The PostgreSQL database, postgres://USER@HOST:PORT/DATABASE.
        #[arg(long)]
        url: String,
        /// A file holding its password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The master's data directory (its master.db).
        #[arg(long, default_value = "/var/lib/rigger/master")]
        data_dir: PathBuf,
    },
}

/// The verbs of `masterctl ca`.
#[derive(Subcommand, Debug)]
pub enum CaCommand {
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

/// The verbs of `masterctl cert`.
#[derive(Subcommand, Debug)]
pub enum CertCommand {
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

/// The verbs of `masterctl node`.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
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

/// The verbs of `masterctl catalog`.
#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
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

/// The verbs of `masterctl db`.
#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Run the role's pack `dbscripts/` against its datasources (MySQL,
    /// MariaDB, PostgreSQL), each script once: a missing database is
    /// created, what ran is recorded in RIGGER_DBSCRIPTS, a script changed
    /// by an update level is reported and not run.
    Init {
        /// The role whose datasources to initialise.
        #[arg(long)]
        role: String,
        /// Connect and show what would run; create and run nothing.
        #[arg(long)]
        dry_run: bool,
    },
}
