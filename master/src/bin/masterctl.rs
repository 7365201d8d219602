//! `masterctl`: administers a running master over its root-only socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use rigger_common::exit;
use rigger_common::proto::admin_service_client::AdminServiceClient;
use rigger_common::proto::{
    CreateTokenRequest, ListCertsRequest, ListNodesRequest, ShowCaRequest, ShowCatalogRequest,
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
    /// List enrolled nodes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum CatalogCommand {
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

async fn run(cli: Cli) -> anyhow::Result<()> {
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
