//! `masterctl`'s commands, one module per noun. Each command talks to the
//! master's admin socket and returns the text to print; the binary only
//! parses arguments and writes that text (a closed pipe ends it quietly).

pub mod admin;
pub mod artifact;
pub mod backup;
pub mod ca;
pub mod catalog;
pub mod cert;
pub mod db;
pub mod lease;
pub mod lookup;
pub mod module;
pub mod node;
pub mod product;
pub mod rollout;
pub mod status;
pub mod store;
pub mod token;
pub mod update;

use std::path::Path;

use anyhow::{Context, anyhow};
use comfy_table::{CellAlignment, ContentArrangement, Table};
use rigger_common::proto::admin_service_client::AdminServiceClient;
use tonic::transport::Channel;

/// What a command prints: on stdout, and notes on stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// For stdout (what scripts read).
    pub stdout: String,
    /// For stderr (notes for the operator).
    pub stderr: String,
}

impl From<String> for Output {
    fn from(stdout: String) -> Self {
        Self {
            stdout,
            stderr: String::new(),
        }
    }
}

/// A connection to the master's admin API.
pub struct Ctl {
    client: AdminServiceClient<Channel>,
}

impl Ctl {
    /// Connects to the admin socket.
    pub async fn connect(socket: &Path) -> anyhow::Result<Self> {
        let channel = rigger_common::grpc::unix_channel(socket)
            .await
            .with_context(|| format!("cannot reach the master's admin socket {} (is rigger-master running, and are you root?)", socket.display()))?;
        Ok(Self {
            client: AdminServiceClient::new(channel),
        })
    }

    /// Connects to the master at `master` (its node listener) with the
    /// admin certificate `cert` and key `key`, trusting the CA in `ca`.
    pub async fn connect_remote(
        master: &str,
        cert: &Path,
        key: &Path,
        ca: &Path,
    ) -> anyhow::Result<Self> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let identity = rigger_common::tls::ClientIdentity {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        };
        let config = rigger_common::tls::client_config(&read(ca)?, Some(&identity))?;
        let address = rigger_common::grpc::MasterAddress::parse(master)
            .map_err(|e| anyhow!("--master {master:?}: {e}"))?;
        let channel = rigger_common::grpc::tls_channel(
            &address,
            std::sync::Arc::new(config),
            std::time::Duration::from_secs(30),
        )
        .await
        .with_context(|| format!("cannot reach the master at {master}"))?;
        Ok(Self {
            client: AdminServiceClient::new(channel),
        })
    }

    /// The admin client (generated calls take `&mut`).
    fn client(&self) -> AdminServiceClient<Channel> {
        self.client.clone()
    }
}

/// The master's refusal, as the operator reads it.
fn status(e: tonic::Status) -> anyhow::Error {
    anyhow!("{}", e.message())
}

/// A table with a header, columns two spaces apart, never wrapped or cut:
/// long names widen their column instead of breaking the rows.
fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    table
}

/// Right-aligns the columns at `columns` and finishes the table's text.
fn render(mut table: Table, right_aligned: &[usize]) -> String {
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if right_aligned.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut text: String = table
        .trim_fmt()
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    if text.is_empty() {
        text.push('\n');
    }
    text
}

/// The absolute path of a file the master must read (it has another cwd).
/// Where the packaged master cannot see a file: its systemd unit gives it
/// a private /tmp and no /home or /root.
const HIDDEN_FROM_THE_MASTER: [&str; 4] = ["/tmp/", "/var/tmp/", "/home/", "/root/"];

/// A refused import: the master's words, and where the file it could not
/// read is out of its sight, what to do about it.
fn import_status(e: tonic::Status, path: &str) -> anyhow::Error {
    let message = e.message();
    let unreadable = message.contains("No such file") || message.contains("Permission denied");
    if unreadable && HIDDEN_FROM_THE_MASTER.iter().any(|p| path.starts_with(p)) {
        anyhow!(
            "{message}\n(the master opens the file itself, as the rigger user; its systemd unit gives it a private /tmp and no /home or /root: copy the file to /var/lib/rigger/import/ and import it from there)"
        )
    } else {
        anyhow!("{message}")
    }
}

fn absolute(file: &Path) -> anyhow::Result<String> {
    let path =
        std::fs::canonicalize(file).with_context(|| format!("cannot open {}", file.display()))?;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_the_master_cannot_read_under_tmp_says_where_to_put_the_file() {
        let refused = tonic::Status::invalid_argument(
            "/tmp/p.zip: cannot read /tmp/p.zip: No such file or directory (os error 2)",
        );
        let e = import_status(refused.clone(), "/tmp/p.zip").to_string();
        assert!(e.contains("/var/lib/rigger/import/"), "{e}");
        let e = import_status(refused, "/srv/packs/p.zip").to_string();
        assert!(!e.contains("/var/lib/rigger/import/"), "{e}");
        let other = tonic::Status::invalid_argument("/tmp/p.zip: not a zip");
        assert!(
            !import_status(other, "/tmp/p.zip")
                .to_string()
                .contains("rigger/import")
        );
    }

    #[test]
    fn a_long_name_widens_its_column_and_keeps_the_rows_whole() {
        let mut t = table(&["NAME", "SIZE"]);
        let long = "ip-10-0-1-5.eu-west-1.compute.internal-with-a-long-suffix";
        t.add_row(vec![long, "12"]);
        t.add_row(vec!["a", "3456"]);
        let text = render(t, &[1]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[1].starts_with(long) && lines[1].ends_with("  12"),
            "{text}"
        );
        let column = lines[0].find("SIZE").unwrap();
        assert!(column > long.len(), "{text}");
        assert!(lines[2].ends_with("3456"), "{text}");
    }
}
