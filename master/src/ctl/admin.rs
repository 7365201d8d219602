//! `masterctl admin issue`: an administrator's key, made here, and its
//! certificate, signed by the master ([`crate::admins`]).

use std::path::Path;

use anyhow::Context;
use rigger_common::fsutil::{Ownership, write_atomic};
use rigger_common::proto::IssueAdminCertRequest;

use super::{Ctl, status};

/// Makes a key, has the master sign it for `name`, and writes
/// `name.key`, `name.crt` and `ca.crt` into `out`.
pub async fn issue(ctl: &Ctl, name: &str, out: &Path) -> anyhow::Result<String> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("admin/{name}"));
    let csr_pem = params.serialize_request(&key)?.pem()?;
    let reply = ctl
        .client()
        .issue_admin_cert(IssueAdminCertRequest {
            name: name.to_string(),
            csr_pem,
        })
        .await
        .map_err(status)?
        .into_inner();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let own = Ownership::default();
    write_atomic(
        &out.join(format!("{name}.key")),
        key.serialize_pem().as_bytes(),
        0o600,
        own,
    )?;
    write_atomic(
        &out.join(format!("{name}.crt")),
        reply.cert_pem.as_bytes(),
        0o644,
        own,
    )?;
    write_atomic(
        &out.join("ca.crt"),
        reply.ca_cert_pem.as_bytes(),
        0o644,
        own,
    )?;
    Ok(format!(
        "admin certificate for {name} written to {}: use it with `masterctl --master HOST:8140 --cert {name}.crt --key {name}.key --ca ca.crt …`; revoke it with `masterctl cert revoke admin/{name}`\n",
        out.display()
    ))
}
