//! `masterctl`: administers a running master over its root-only socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use rigger_common::exit;
use rigger_common::proto::admin_service_client::AdminServiceClient;
use rigger_common::proto::{
    CreateTokenRequest, ImportProductRequest, ImportResponse, ImportUpdateRequest,
    ListCertsRequest, ListNodesRequest, ListProductsRequest, ShowCaRequest, ShowCatalogRequest,
};
use rigger_common::proto::{
    FreeLeaseRequest, ImportArtifactRequest, ListArtifactsRequest, ListLeasesRequest,
    LookupRequest, RemoveNodeRequest, RollbackCatalogRequest, UnpinCatalogRequest,
};
use rigger_common::time::format_ms;
use tonic::transport::Channel;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
}

#[derive(Subcommand, Debug)]
enum LeaseCommand {
    /// List the leases nodes hold now.
    List,
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
    Check {
        /// Module path (repeatable).
        #[arg(long, default_value = "/etc/rigger/modules")]
        modules: Vec<PathBuf>,
        /// Site data directory to check too.
        #[arg(long)]
        site: Option<PathBuf>,
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
    List,
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
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token and print it alone on stdout.
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
    },
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Print the CA certificate and its sha256 fingerprint.
    Show,
}

#[derive(Subcommand, Debug)]
enum CertCommand {
    /// List issued certificates.
    List,
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Remove a node from the inventory and revoke its certificate (e.g. an
    /// instance an autoscaling group replaced); its peers drop it on their next run.
    Remove {
        /// The node's certname.
        node: String,
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

fn main() -> ExitCode {
    let cli: Cli = exit::parse_args();
    rigger_common::cli::run("masterctl", async move {
        run(cli).await?;
        Ok(exit::OK)
    })
}

async fn connect(socket: &std::path::Path) -> anyhow::Result<AdminServiceClient<Channel>> {
    let channel = rigger_common::grpc::unix_channel(socket)
        .await
        .with_context(|| format!("cannot reach the master's admin socket {} (is rigger-master running, and are you root?)", socket.display()))?;
    Ok(AdminServiceClient::new(channel))
}

fn status(e: tonic::Status) -> anyhow::Error {
    anyhow!("{}", e.message())
}

/// `masterctl module check`: every profile, then every site role; all
/// errors at once, exit 1 if any.
fn check_modules(modules: Vec<PathBuf>, site: Option<PathBuf>) -> anyhow::Result<()> {
    let site_dir = site
        .clone()
        .unwrap_or_else(|| PathBuf::from("/nonexistent-site"));
    let compiler = rigger_master::compiler::Compiler::new(modules, site_dir);
    let mut errors = Vec::new();
    let mut checked = 0;
    for module in compiler.modules() {
        let module = match module {
            Ok(m) => m,
            Err(e) => {
                errors.push(rigger_common::error_chain(&e));
                continue;
            }
        };
        for profile in module.concrete_profiles() {
            checked += 1;
            match compiler.check_profile(&module, profile) {
                Ok(content) => println!(
                    "ok    {}/{profile}: {} resources",
                    module.name,
                    content.resources.len()
                ),
                Err(e) => {
                    println!("FAIL  {}/{profile}", module.name);
                    errors.push(format!(
                        "{}/{profile}: {}",
                        module.name,
                        rigger_common::error_chain(&e)
                    ));
                }
            }
        }
    }
    if site.is_some() {
        for role in compiler.site_roles() {
            checked += 1;
            match compiler.check_role(&role) {
                Ok(content) => println!("ok    role {role}: {} resources", content.resources.len()),
                Err(e) => {
                    println!("FAIL  role {role}");
                    errors.push(format!("role {role}: {}", rigger_common::error_chain(&e)));
                }
            }
        }
    }
    if checked == 0 {
        anyhow::bail!("no module found on the module paths");
    }
    if errors.is_empty() {
        return Ok(());
    }
    anyhow::bail!("{} problem(s):\n{}", errors.len(), errors.join("\n"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Module(ModuleCommand::Check { modules, site }) = cli.command {
        return check_modules(modules, site);
    }
    let mut client = connect(&cli.socket).await?;
    match cli.command {
        Command::Token(TokenCommand::Create { ttl, uses, role }) => {
            let reply = client
                .create_token(CreateTokenRequest {
                    ttl_seconds: ttl.as_secs().max(1),
                    uses,
                    role: role.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            println!("{}", reply.token);
            eprintln!(
                "token expires at {}, {} use(s)",
                format_ms(reply.expires_at_ms),
                uses
            );
        }
        Command::Ca(CaCommand::Show) => {
            let reply = client
                .show_ca(ShowCaRequest {})
                .await
                .map_err(status)?
                .into_inner();
            print!("{}", reply.ca_cert_pem);
            println!("fingerprint: {}", reply.fingerprint);
        }
        Command::Cert(CertCommand::List) => {
            let reply = client
                .list_certs(ListCertsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "{:<32} {:<34} {:<22} {:<22} STATE",
                "CERTNAME", "SERIAL", "ISSUED", "EXPIRES"
            );
            for c in reply.certs {
                let state = if c.revoked { "revoked" } else { "valid" };
                println!(
                    "{:<32} {:<34} {:<22} {:<22} {state}",
                    c.certname,
                    c.serial,
                    format_ms(c.issued_at_ms),
                    format_ms(c.not_after_ms)
                );
            }
        }
        Command::Node(NodeCommand::List { json }) => {
            let reply = client
                .list_nodes(ListNodesRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if json {
                let nodes: Vec<_> = reply
                    .nodes
                    .iter()
                    .map(|n| {
                        serde_json::json!({
                            "certname": n.certname,
                            "role": n.role,
                            "ip": n.ip,
                            "enrolled_at_ms": n.enrolled_at_ms,
                            "last_seen_ms": n.last_seen_ms,
                            "catalog_version": n.catalog_version,
                            "last_run_status": n.last_run_status,
                            "last_report_ms": n.last_report_ms,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&nodes)?);
            } else {
                println!(
                    "{:<32} {:<16} {:<16} {:>7} {:<10} LAST SEEN",
                    "CERTNAME", "ROLE", "IP", "CATALOG", "LAST RUN"
                );
                for n in reply.nodes {
                    println!(
                        "{:<32} {:<16} {:<16} {:>7} {:<10} {}",
                        n.certname,
                        n.role,
                        n.ip,
                        n.catalog_version,
                        if n.last_run_status.is_empty() {
                            "-"
                        } else {
                            &n.last_run_status
                        },
                        format_ms(n.last_seen_ms)
                    );
                }
            }
        }
        Command::Product(ProductCommand::Import {
            file,
            name,
            version,
        }) => {
            let reply = client
                .import_product(ImportProductRequest {
                    path: absolute(&file)?,
                    name: name.unwrap_or_default(),
                    version: version.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            print_import(&reply);
        }
        Command::Product(ProductCommand::List { json }) => {
            let reply = client
                .list_products(ListProductsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if json {
                let levels: Vec<_> = reply
                    .levels
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "name": l.name, "version": l.version, "level": l.level,
                            "tree": l.tree_digest, "files": l.files, "size": l.size,
                            "imported_at_ms": l.imported_at_ms,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&levels)?);
            } else {
                println!(
                    "{:<16} {:<10} {:>6} {:>7} {:>12}  {:<22} TREE",
                    "PRODUCT", "VERSION", "LEVEL", "FILES", "BYTES", "IMPORTED"
                );
                for l in reply.levels {
                    println!(
                        "{:<16} {:<10} {:>6} {:>7} {:>12}  {:<22} {}",
                        l.name,
                        l.version,
                        l.level,
                        l.files,
                        l.size,
                        format_ms(l.imported_at_ms),
                        l.tree_digest
                    );
                }
            }
        }
        Command::Update(UpdateCommand::Import {
            product,
            file,
            level,
        }) => {
            let reply = client
                .import_update(ImportUpdateRequest {
                    product,
                    path: absolute(&file)?,
                    level: level.unwrap_or(0),
                })
                .await
                .map_err(status)?
                .into_inner();
            print_import(&reply);
        }
        Command::Catalog(CatalogCommand::Rollback { node, to }) => {
            let reply = client
                .rollback_catalog(RollbackCatalogRequest {
                    certname: node.clone(),
                    to_version: to,
                })
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "{node} is pinned to the content of version {to}: new catalog version {} ({}); `masterctl catalog unpin {node}` to follow the site again",
                reply.version, reply.digest
            );
        }
        Command::Catalog(CatalogCommand::Unpin { node }) => {
            let reply = client
                .unpin_catalog(UnpinCatalogRequest {
                    certname: node.clone(),
                })
                .await
                .map_err(status)?
                .into_inner();
            if reply.was_pinned {
                println!("{node} follows the site again from its next run");
            } else {
                println!("{node} was not pinned");
            }
        }
        Command::Artifact(ArtifactCommand::Import { file, name }) => {
            let reply = client
                .import_artifact(ImportArtifactRequest {
                    path: absolute(&file)?,
                    name,
                })
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "artifact {}: {} ({} bytes)",
                reply.name, reply.digest, reply.size
            );
        }
        Command::Artifact(ArtifactCommand::List) => {
            let reply = client
                .list_artifacts(ListArtifactsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            println!("{:<32} {:>12}  {:<22} DIGEST", "NAME", "BYTES", "IMPORTED");
            for a in reply.artifacts {
                println!(
                    "{:<32} {:>12}  {:<22} {}",
                    a.name,
                    a.size,
                    format_ms(a.imported_at_ms),
                    a.digest
                );
            }
        }
        Command::Node(NodeCommand::Remove { node }) => {
            client
                .remove_node(RemoveNodeRequest {
                    certname: node.clone(),
                })
                .await
                .map_err(status)?;
            println!("{node} removed from the inventory; its certificate is revoked");
        }
        Command::Lease(LeaseCommand::List) => {
            let reply = client
                .list_leases(ListLeasesRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if reply.leases.is_empty() {
                println!("no node holds a restart lease");
            } else {
                println!(
                    "{:<24} {:<32} {:<16} {:<20} EXPIRES",
                    "CLUSTER", "NODE", "SERVICE", "SINCE"
                );
                for l in reply.leases {
                    println!(
                        "{:<24} {:<32} {:<16} {:<20} {}",
                        l.group,
                        l.certname,
                        l.service,
                        format_ms(l.acquired_at_ms),
                        format_ms(l.expires_at_ms)
                    );
                }
            }
        }
        Command::Lease(LeaseCommand::Free { cluster, node }) => {
            client
                .free_lease(FreeLeaseRequest {
                    group: cluster.clone(),
                    certname: node.clone(),
                })
                .await
                .map_err(status)?;
            println!("the restart lease of {node} in cluster {cluster} is free");
        }
        Command::Lookup { node, key } => {
            let reply = client
                .lookup(LookupRequest {
                    certname: node.clone(),
                    key: key.clone(),
                })
                .await
                .map_err(status)?
                .into_inner();
            if !reply.found {
                println!("{key} is not set for {node} (role {})", reply.role);
            } else {
                println!("{key} = {}", reply.value);
                for (i, source) in reply.sources.iter().enumerate() {
                    let how = if i == 0 { "from" } else { "under it" };
                    println!(
                        "  {how:<9} {}: {}",
                        source.file,
                        source.value.replace('\n', "; ")
                    );
                }
            }
        }
        Command::Module(_) => unreachable!("handled before connecting"),
        Command::Catalog(CatalogCommand::Diff { node, a, b }) => {
            let mut fetch =
                async |version: u64| -> anyhow::Result<rigger_common::catalog::Catalog> {
                    let reply = client
                        .show_catalog(ShowCatalogRequest {
                            certname: node.clone(),
                            version,
                        })
                        .await
                        .map_err(status)?
                        .into_inner();
                    Ok(serde_json::from_str(&reply.catalog_json)?)
                };
            let (old, new) = (fetch(a).await?, fetch(b).await?);
            print!("{}", catalog_diff(&old, &new));
        }
        Command::Catalog(CatalogCommand::Show {
            node,
            version,
            json,
        }) => {
            let reply = client
                .show_catalog(ShowCatalogRequest {
                    certname: node,
                    version: version.unwrap_or(0),
                })
                .await
                .map_err(status)?
                .into_inner();
            if json {
                println!("{}", reply.catalog_json);
            } else {
                print_catalog(&reply.catalog_json)?;
            }
        }
    }
    Ok(())
}

fn absolute(file: &std::path::Path) -> anyhow::Result<String> {
    let path =
        std::fs::canonicalize(file).with_context(|| format!("cannot open {}", file.display()))?;
    Ok(path.display().to_string())
}

fn print_import(reply: &ImportResponse) {
    let verb = if reply.created {
        "imported"
    } else {
        "already imported (nothing to do)"
    };
    println!(
        "{} {} level {}: {verb}; tree {}",
        reply.name, reply.version, reply.level, reply.tree_digest
    );
    println!(
        "  {} files, {} bytes; {} bytes of new content stored",
        reply.files, reply.size, reply.new_bytes
    );
    if !reply.changed_paths.is_empty() {
        println!(
            "  {} paths differ from level {}:",
            reply.changed_paths.len(),
            reply.previous_level
        );
        for path in reply.changed_paths.iter().take(50) {
            println!("    {path}");
        }
        if reply.changed_paths.len() > 50 {
            println!("    … and {} more", reply.changed_paths.len() - 50);
        }
    }
    for review in &reply.reviews {
        println!(
            "REVIEW {}: module {} renders it from {}; the pack's own version changed:",
            review.path, review.module, review.template
        );
        print!("{}", review.diff);
    }
}

/// A per-resource diff of two (already redacted) catalogs.
fn catalog_diff(
    old: &rigger_common::catalog::Catalog,
    new: &rigger_common::catalog::Catalog,
) -> String {
    use rigger_common::catalog::{Resource, ResourceSpec};
    use std::collections::BTreeMap;
    use std::fmt::Write;
    let index = |c: &rigger_common::catalog::Catalog| -> BTreeMap<String, Resource> {
        c.content
            .resources
            .iter()
            .map(|r| (r.id.clone(), r.clone()))
            .collect()
    };
    let (before, after) = (index(old), index(new));
    let mut out = format!(
        "catalog {} → {} of {} ({} → {})\n",
        old.version, new.version, new.node, old.digest, new.digest
    );
    let text = |r: &Resource| -> String {
        match &r.spec {
            ResourceSpec::File(f) if f.source.is_none() => {
                let mut header = f.clone();
                header.content = String::new();
                format!(
                    "{}\n{}",
                    serde_json::to_string_pretty(&header).unwrap_or_default(),
                    f.content
                )
            }
            _ => serde_json::to_string_pretty(r).unwrap_or_default() + "\n",
        }
    };
    let mut changed = 0;
    for (id, r) in &after {
        match before.get(id) {
            None => {
                changed += 1;
                let _ = writeln!(out, "+ added {} {id}", r.spec.kind());
            }
            Some(o) if o != r => {
                changed += 1;
                let _ = writeln!(out, "~ changed {} {id}:", r.spec.kind());
                let diff = similar::TextDiff::from_lines(&text(o), &text(r))
                    .unified_diff()
                    .context_radius(2)
                    .to_string();
                out.push_str(&diff);
            }
            Some(_) => {}
        }
    }
    for (id, r) in &before {
        if !after.contains_key(id) {
            changed += 1;
            let _ = writeln!(out, "- removed {} {id}", r.spec.kind());
        }
    }
    if changed == 0 {
        out.push_str("no resource changed\n");
    }
    out
}

fn print_catalog(json: &str) -> anyhow::Result<()> {
    let catalog: rigger_common::catalog::Catalog = serde_json::from_str(json)?;
    println!("node:     {}", catalog.node);
    println!("version:  {}", catalog.version);
    println!("digest:   {}", catalog.digest);
    println!("compiled: {}", format_ms(catalog.compiled_at_ms));
    println!(
        "role:     {} ({})",
        catalog.content.role, catalog.content.profile
    );
    println!("resources:");
    for r in &catalog.content.resources {
        let what = r
            .paths()
            .first()
            .map(|p| p.to_string())
            .unwrap_or_else(|| match &r.spec {
                rigger_common::catalog::ResourceSpec::Exec(e) => e.command.clone(),
                _ => String::new(),
            });
        println!("  {:<10} {:<32} {}", r.spec.kind(), r.id, what);
    }
    Ok(())
}
