//! The node's identity: its key and certificate, the CA it trusts and the
//! master's catalog signing key, obtained once by enrollment.
//!
//! Trust in the master comes from `--ca-cert` (a file) or `--ca-fingerprint`
//! (fetch the CA certificate, accept it only if its sha256 matches, as
//! kubeadm's discovery hash does). Keys and certificates are stored 0600.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{CertificateParams, DnType, KeyPair};
use rigger_common::digest::Digest;
use rigger_common::fsutil::{Ownership, write_atomic};
use rigger_common::grpc::MasterAddresses;
use rigger_common::tls::{self, ClientIdentity};

use crate::client::{GrpcMaster, MasterError};

/// Everything the agent needs to talk to its master.
#[derive(Clone)]
pub struct Identity {
    /// The node's certname.
    pub certname: String,
    /// Certificate and key.
    pub client: ClientIdentity,
    /// The trusted CA, PEM.
    pub ca_pem: String,
    /// The master's catalog signing key (raw ed25519).
    pub signing_key: Vec<u8>,
}

/// Whether `a` and `b` connect to the master the same way: the same
/// certname, certificate, key and trusted CA.
pub fn same_credentials(a: &Identity, b: &Identity) -> bool {
    a.certname == b.certname
        && a.client.cert_pem == b.client.cert_pem
        && a.client.key_pem == b.client.key_pem
        && a.ca_pem == b.ca_pem
}

/// How to establish trust and enroll.
#[derive(Debug, Clone)]
pub struct EnrollSettings {
    /// The master.
    pub master: MasterAddresses,
    /// The node's certname.
    pub certname: String,
    /// Trust the CA in this file.
    pub ca_cert: Option<PathBuf>,
    /// Or trust the CA whose certificate has this sha256.
    pub ca_fingerprint: Option<Digest>,
    /// Bootstrap token (needed only without a certificate); wins over
    /// the EC2 identity.
    pub token: Option<String>,
    /// The EC2 instance's identity from IMDS, when this is one: it
    /// enrolls without a token, and an identity stored for another
    /// instance (baked into an image) is discarded.
    pub ec2: Option<crate::facts::imds::InstanceIdentity>,
    /// The role the node asks for (an EC2 policy may let it choose).
    pub role: Option<String>,
    /// Network timeout.
    pub timeout: Duration,
}

/// What a node shows the master to enroll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proof {
    /// A bootstrap token ("" for none).
    pub token: String,
    /// The EC2 identity document's signature ("" for none).
    pub ec2_identity: String,
    /// The role asked for ("" for none).
    pub role: String,
}

/// Enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] rigger_common::fsutil::WriteError),
    /// Not enrolled and no token to enroll with.
    #[error(
        "this node has no certificate yet, no bootstrap token was given and it has no EC2 identity to enroll with: pass --token (create one with `masterctl token create`)"
    )]
    NoToken,
    /// Not enrolled and no way to trust the master.
    #[error(
        "cannot trust the master: give --ca-cert FILE or --ca-fingerprint sha256:HEX (see `masterctl ca show`)"
    )]
    NoTrust,
    /// The fetched CA does not match the pinned fingerprint.
    #[error(
        "the master's CA certificate has fingerprint {actual}, not the expected {expected}: refusing to trust it"
    )]
    FingerprintMismatch {
        /// Pinned.
        expected: String,
        /// Presented.
        actual: String,
    },
    /// The master returned a CA other than the trusted one.
    #[error(
        "the master answered enrollment with a CA certificate other than the one this node trusts"
    )]
    CaChanged,
    /// The master could not be reached.
    #[error(transparent)]
    Connect(MasterError),
    /// The master refused.
    #[error("the master refused enrollment: {0}")]
    Refused(MasterError),
    /// Key or CSR generation failed.
    #[error("cannot generate the node key or CSR")]
    Key(#[from] rcgen::Error),
    /// A TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The stored identity is damaged.
    #[error("stored identity in {} is damaged: {message}", dir.display())]
    Damaged {
        /// The ssl directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
}

struct Files {
    key: PathBuf,
    cert: PathBuf,
    ca: PathBuf,
    signing_key: PathBuf,
    /// A renewal's new key and certificate, until both are in place.
    next_key: PathBuf,
    next_cert: PathBuf,
    /// The EC2 instance the identity was enrolled on.
    instance_id: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Self {
        Self {
            key: dir.join("node.key"),
            cert: dir.join("node.crt"),
            ca: dir.join("ca.crt"),
            signing_key: dir.join("catalog-signing.pub"),
            next_key: dir.join("node.key.next"),
            next_cert: dir.join("node.crt.next"),
            instance_id: dir.join("instance-id"),
        }
    }
}

/// Whether the PEM bundles `a` and `b` hold a certificate in common.
fn shares_a_ca(a: &str, b: &str) -> bool {
    let fingerprints = |pem: &str| -> Vec<Digest> {
        tls::certs_from_pem(pem, "a CA bundle")
            .map(|certs| certs.iter().map(tls::fingerprint).collect())
            .unwrap_or_default()
    };
    let b = fingerprints(b);
    fingerprints(a).iter().any(|f| b.contains(f))
}

/// Trusts `bundle` (every CA the master trusts now, as it said over a
/// connection this node verified with a CA in `trusted`) from now on: a
/// CA rotation's new CA reaches the nodes this way. A bundle sharing no
/// CA with `trusted`, or not parsing, is ignored. Returns whether the
/// stored CA changed.
pub fn adopt_ca_bundle(ssl_dir: &Path, trusted: &str, bundle: &str) -> Result<bool, IdentityError> {
    let normalized = |pem: &str| pem.split_whitespace().collect::<String>();
    if bundle.trim().is_empty() || normalized(bundle) == normalized(trusted) {
        return Ok(false);
    }
    if !shares_a_ca(bundle, trusted) {
        tracing::warn!(
            "the master's CA bundle shares no CA with the one this node trusts: ignored"
        );
        return Ok(false);
    }
    write_atomic(
        &Files::in_dir(ssl_dir).ca,
        bundle.as_bytes(),
        0o644,
        Ownership::default(),
    )?;
    tracing::info!(
        cas = tls::certs_from_pem(bundle, "the CA bundle").map_or(0, |c| c.len()),
        "the master's CAs changed (a CA rotation): this node trusts them from now on"
    );
    Ok(true)
}

/// Why a stored identity cannot be used and must be replaced by a new
/// enrollment: it belongs to another EC2 instance (baked into the image
/// this one was launched from), or its certificate has expired and the
/// node has a way to enroll again. `None`: use it.
fn unusable(ssl_dir: &Path, identity: &Identity, settings: &EnrollSettings) -> Option<String> {
    let files = Files::in_dir(ssl_dir);
    if let Some(ec2) = &settings.ec2 {
        let recorded = std::fs::read_to_string(&files.instance_id)
            .ok()
            .map(|id| id.trim().to_string())
            .or_else(|| {
                identity
                    .certname
                    .starts_with("i-")
                    .then(|| identity.certname.clone())
            });
        if let Some(recorded) = recorded.filter(|r| !r.eq_ignore_ascii_case(&ec2.instance_id)) {
            return Some(format!(
                "the stored identity belongs to instance {recorded}, this is {} (an identity baked into the image?)",
                ec2.instance_id
            ));
        }
    }
    let expired = validity(&identity.client.cert_pem)
        .is_some_and(|(_, not_after)| not_after <= rigger_common::time::now_ms());
    if expired && (settings.token.is_some() || settings.ec2.is_some()) {
        return Some("its certificate has expired".to_string());
    }
    None
}

/// Moves a stored identity aside (kept for inspection, never used again)
/// so that the node enrolls anew.
fn discard(ssl_dir: &Path, why: &str) -> Result<(), IdentityError> {
    let aside = ssl_dir.with_file_name(format!("ssl.discarded-{}", rigger_common::time::now_ms()));
    let io = |source| IdentityError::Read {
        path: ssl_dir.to_path_buf(),
        source,
    };
    std::fs::rename(ssl_dir, &aside).map_err(io)?;
    // The CA it trusted stays trusted: the master is the same one.
    let ca = Files::in_dir(&aside).ca;
    if let Ok(pem) = std::fs::read(&ca) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(ssl_dir).map_err(io)?;
        std::fs::set_permissions(ssl_dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        write_atomic(
            &Files::in_dir(ssl_dir).ca,
            &pem,
            0o644,
            Ownership::default(),
        )?;
    }
    tracing::warn!(why, kept = %aside.display(), "the stored identity is not used: enrolling anew");
    Ok(())
}

/// A certificate is renewed once this share of its life has passed.
const RENEW_AT: f64 = 2.0 / 3.0;

/// A certificate's validity, Unix ms: (not before, not after).
pub fn validity(cert_pem: &str) -> Option<(i64, i64)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let validity = cert.validity();
    Some((
        validity.not_before.timestamp() * 1000,
        validity.not_after.timestamp() * 1000,
    ))
}

/// When the certificate is due for renewal: two thirds through its life.
pub fn renewal_due_at_ms(cert_pem: &str) -> Option<i64> {
    let (not_before, not_after) = validity(cert_pem)?;
    Some(not_before + ((not_after - not_before) as f64 * RENEW_AT) as i64)
}

/// Renews the node's certificate over `master` (a connection made with the
/// current one): a new key is made and kept beside the old one
/// (`node.key.next`), the master signs it, the new certificate is stored
/// beside (`node.crt.next`), and only then do both replace the old pair.
/// A crash at any point leaves a pair that works: the old one, or the new
/// one completed by [`finish_renewal`] at the next start.
pub async fn renew(
    ssl_dir: &Path,
    current: &Identity,
    master: &dyn crate::client::MasterClient,
) -> Result<Identity, IdentityError> {
    let files = Files::in_dir(ssl_dir);
    let own = Ownership::default();
    let key = KeyPair::generate()?;
    write_atomic(&files.next_key, key.serialize_pem().as_bytes(), 0o600, own)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, current.certname.as_str());
    let csr_pem = params.serialize_request(&key)?.pem()?;
    let reply = master
        .renew(csr_pem)
        .await
        .map_err(IdentityError::Refused)?;
    if !shares_a_ca(&reply.ca_cert_pem, &current.ca_pem) {
        return Err(IdentityError::CaChanged);
    }
    let der = tls::certs_from_pem(&reply.cert_pem, "the renewed certificate")?;
    if common_name(&der[0]).as_deref() != Some(current.certname.as_str()) {
        return Err(IdentityError::Damaged {
            dir: ssl_dir.to_path_buf(),
            message: "the master renewed the certificate for another name".into(),
        });
    }
    write_atomic(&files.next_cert, reply.cert_pem.as_bytes(), 0o600, own)?;
    finish_renewal(ssl_dir)?;
    adopt_ca_bundle(ssl_dir, &current.ca_pem, &reply.ca_cert_pem)?;
    load(ssl_dir)?.ok_or_else(|| IdentityError::Damaged {
        dir: ssl_dir.to_path_buf(),
        message: "identity missing right after renewal".into(),
    })
}

/// Completes or discards a renewal a crash interrupted: a new certificate
/// beside its key replaces the pair (key first: the certificate's arrival
/// marks it complete); a new key without its certificate is dropped (the
/// old pair still works).
pub fn finish_renewal(ssl_dir: &Path) -> Result<(), IdentityError> {
    let files = Files::in_dir(ssl_dir);
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|source| IdentityError::Read {
            path: from.to_path_buf(),
            source,
        })
    };
    let Ok(next_cert) = std::fs::read_to_string(&files.next_cert) else {
        let _ = std::fs::remove_file(&files.next_key);
        return Ok(());
    };
    let holds = |key: &Path| {
        std::fs::read_to_string(key)
            .ok()
            .and_then(|pem| KeyPair::from_pem(&pem).ok())
            .is_some_and(|key| cert_has_key(&next_cert, &key))
    };
    if holds(&files.next_key) {
        rename(&files.next_key, &files.key)?;
    }
    if holds(&files.key) {
        rename(&files.next_cert, &files.cert)?;
        tracing::info!(dir = %ssl_dir.display(), "renewed certificate in place");
    } else {
        let _ = std::fs::remove_file(&files.next_cert);
    }
    let _ = std::fs::remove_file(&files.next_key);
    Ok(())
}

/// Whether the certificate (PEM) carries `key`'s public key.
fn cert_has_key(cert_pem: &str, key: &KeyPair) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
        return false;
    };
    pem.parse_x509().is_ok_and(|cert| {
        cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
    })
}

fn read(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads the stored identity, if the node has enrolled before.
pub fn load(ssl_dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let files = Files::in_dir(ssl_dir);
    if !(files.key.exists()
        && files.cert.exists()
        && files.ca.exists()
        && files.signing_key.exists())
    {
        return Ok(None);
    }
    let cert_pem = read(&files.cert)?;
    let damaged = |message: String| IdentityError::Damaged {
        dir: ssl_dir.to_path_buf(),
        message,
    };
    let der = tls::certs_from_pem(&cert_pem, "node.crt").map_err(|e| damaged(e.to_string()))?;
    let certname =
        common_name(&der[0]).ok_or_else(|| damaged("node.crt has no common name".into()))?;
    let signing_key = hex::decode(read(&files.signing_key)?.trim())
        .map_err(|e| damaged(format!("catalog-signing.pub: {e}")))?;
    Ok(Some(Identity {
        certname,
        client: ClientIdentity {
            cert_pem,
            key_pem: read(&files.key)?,
        },
        ca_pem: read(&files.ca)?,
        signing_key,
    }))
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// Returns the stored identity, enrolling first if there is none. The
/// token is ignored once the node holds a certificate.
pub async fn ensure(ssl_dir: &Path, settings: &EnrollSettings) -> Result<Identity, IdentityError> {
    finish_renewal(ssl_dir)?;
    let mut certname = settings.certname.clone();
    if let Some(identity) = load(ssl_dir)? {
        match unusable(ssl_dir, &identity, settings) {
            None => {
                if settings.token.is_some() {
                    tracing::debug!("already enrolled; ignoring --token");
                }
                return Ok(identity);
            }
            Some(why) => {
                discard(ssl_dir, &why)?;
                // An instance enrolls under its own id, not the one the
                // discarded identity named.
                if let Some(ec2) = &settings.ec2 {
                    certname = ec2.instance_id.to_ascii_lowercase();
                }
            }
        }
    }
    let files = Files::in_dir(ssl_dir);
    // A key without a certificate is an enrollment whose reply was lost:
    // asking again with that key gets the same certificate, without a token.
    let pending = match std::fs::read_to_string(&files.key) {
        Ok(pem) => Some(KeyPair::from_pem(&pem).map_err(|e| IdentityError::Damaged {
            dir: ssl_dir.to_path_buf(),
            message: format!("node.key: {e}"),
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(IdentityError::Read {
                path: files.key.clone(),
                source,
            });
        }
    };
    let ec2_identity = settings
        .ec2
        .as_ref()
        .map(|ec2| ec2.rsa2048.clone())
        .unwrap_or_default();
    let token = match (&settings.token, &pending) {
        (Some(token), _) => token.clone(),
        (None, _) if !ec2_identity.is_empty() => String::new(),
        (None, Some(_)) => String::new(),
        (None, None) => return Err(IdentityError::NoToken),
    };
    let proof = Proof {
        token,
        ec2_identity,
        role: settings.role.clone().unwrap_or_default(),
    };
    let ca_pem = trusted_ca(ssl_dir, settings).await?;
    let create = || -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(ssl_dir)?;
        std::fs::set_permissions(ssl_dir, std::fs::Permissions::from_mode(0o700))
    };
    create().map_err(|source| IdentityError::Read {
        path: ssl_dir.to_path_buf(),
        source,
    })?;
    let own = Ownership::default();
    let key = match pending {
        Some(key) => {
            tracing::info!(%certname, "resuming an enrollment with the key it made");
            key
        }
        None => {
            let key = KeyPair::generate()?;
            // The key is on disk before the CSR leaves: a lost reply never
            // leaves a certificate without its key.
            write_atomic(&files.key, key.serialize_pem().as_bytes(), 0o600, own)?;
            key
        }
    };
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, certname.as_str());
    let csr_pem = params.serialize_request(&key)?.pem()?;

    let reply = enrollment_client(settings, tls::client_config(&ca_pem, None)?)
        .await?
        .enroll(csr_pem, proof)
        .await
        .map_err(IdentityError::Refused)?;
    // The master answers with every CA it trusts (two during a
    // rotation): one of them must be the one this node trusted.
    if !shares_a_ca(&reply.ca_cert_pem, &ca_pem) {
        return Err(IdentityError::CaChanged);
    }
    write_atomic(&files.ca, reply.ca_cert_pem.as_bytes(), 0o644, own)?;
    write_atomic(
        &files.signing_key,
        hex::encode(&reply.catalog_signing_key).as_bytes(),
        0o644,
        own,
    )?;
    match &settings.ec2 {
        Some(ec2) => write_atomic(&files.instance_id, ec2.instance_id.as_bytes(), 0o644, own)?,
        None => {
            let _ = std::fs::remove_file(&files.instance_id);
        }
    }
    // The certificate last: its presence marks a complete enrollment.
    write_atomic(&files.cert, reply.cert_pem.as_bytes(), 0o600, own)?;
    tracing::info!(%certname, master = %settings.master, "enrolled");
    load(ssl_dir)?.ok_or_else(|| IdentityError::Damaged {
        dir: ssl_dir.to_path_buf(),
        message: "identity missing right after enrollment".into(),
    })
}

async fn enrollment_client(
    settings: &EnrollSettings,
    config: rustls::ClientConfig,
) -> Result<GrpcMaster, IdentityError> {
    let start = crate::client::node_place(&settings.certname, settings.master.all().len());
    GrpcMaster::connect_any(&settings.master, start, config, settings.timeout)
        .await
        .map_err(IdentityError::Connect)
}

async fn trusted_ca(ssl_dir: &Path, settings: &EnrollSettings) -> Result<String, IdentityError> {
    if let Some(path) = &settings.ca_cert {
        let pem = read(path)?;
        tls::certs_from_pem(&pem, &path.display().to_string())?;
        return Ok(pem);
    }
    if let Some(expected) = &settings.ca_fingerprint {
        return discover_ca(settings, expected).await;
    }
    let stored = ssl_dir.join("ca.crt");
    if stored.exists() {
        return read(&stored);
    }
    Err(IdentityError::NoTrust)
}

/// Fetches the master's CA over an unauthenticated TLS connection and
/// accepts it only if its fingerprint is the pinned one.
async fn discover_ca(
    settings: &EnrollSettings,
    expected: &Digest,
) -> Result<String, IdentityError> {
    let pem = enrollment_client(settings, tls::discovery_client_config()?)
        .await?
        .ca_certificate()
        .await
        .map_err(IdentityError::Refused)?;
    let der = tls::certs_from_pem(&pem, "the master's CA certificate")?;
    let actual = tls::fingerprint(&der[0]);
    if &actual != expected || der.len() != 1 {
        return Err(IdentityError::FingerprintMismatch {
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key and a self-signed certificate for it named `name`.
    fn pair(name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (key.serialize_pem(), cert.pem())
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn read_in(dir: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(name)).ok()
    }

    #[test]
    fn credentials_are_the_same_only_when_everything_a_connection_uses_is() {
        let (key, cert) = pair("n1");
        let (other_key, other_cert) = pair("n1");
        let identity = Identity {
            certname: "n1".into(),
            client: ClientIdentity {
                cert_pem: cert,
                key_pem: key,
            },
            ca_pem: "ca".into(),
            signing_key: vec![1],
        };
        assert!(same_credentials(&identity, &identity.clone()));
        let changes: [fn(&mut Identity, &str, &str); 4] = [
            |i, _, _| i.certname = "n2".into(),
            |i, cert, _| i.client.cert_pem = cert.into(),
            |i, _, key| i.client.key_pem = key.into(),
            |i, _, _| i.ca_pem = "another ca".into(),
        ];
        for change in changes {
            let mut changed = identity.clone();
            change(&mut changed, &other_cert, &other_key);
            assert!(!same_credentials(&identity, &changed));
        }
    }

    #[test]
    fn a_renewal_interrupted_anywhere_leaves_a_matching_pair() {
        let (old_key, old_cert) = pair("n1");
        let (new_key, new_cert) = pair("n1");
        let (_, foreign_cert) = pair("n1");
        // (files before, the pair after)
        type Files<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Files, (&str, &str)); 5] = [
            // The new pair is complete beside the old one.
            (
                &[
                    ("node.key", &old_key),
                    ("node.crt", &old_cert),
                    ("node.key.next", &new_key),
                    ("node.crt.next", &new_cert),
                ],
                (&new_key, &new_cert),
            ),
            // The key was moved, the certificate not yet.
            (
                &[
                    ("node.key", &new_key),
                    ("node.crt", &old_cert),
                    ("node.crt.next", &new_cert),
                ],
                (&new_key, &new_cert),
            ),
            // The master never answered: the new key is dropped.
            (
                &[
                    ("node.key", &old_key),
                    ("node.crt", &old_cert),
                    ("node.key.next", &new_key),
                ],
                (&old_key, &old_cert),
            ),
            // A certificate for neither key is dropped.
            (
                &[
                    ("node.key", &old_key),
                    ("node.crt", &old_cert),
                    ("node.crt.next", &foreign_cert),
                ],
                (&old_key, &old_cert),
            ),
            // Nothing to do.
            (
                &[("node.key", &old_key), ("node.crt", &old_cert)],
                (&old_key, &old_cert),
            ),
        ];
        for (i, (files, (key, cert))) in cases.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            for (name, text) in *files {
                write(dir.path(), name, text);
            }
            finish_renewal(dir.path()).unwrap();
            assert_eq!(
                read_in(dir.path(), "node.key").as_deref(),
                Some(*key),
                "case {i}"
            );
            assert_eq!(
                read_in(dir.path(), "node.crt").as_deref(),
                Some(*cert),
                "case {i}"
            );
            assert!(read_in(dir.path(), "node.key.next").is_none(), "case {i}");
            assert!(read_in(dir.path(), "node.crt.next").is_none(), "case {i}");
        }
    }

    #[test]
    fn renewal_is_due_two_thirds_through_the_life() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // 1970-01-12 to 1970-04-12: 90 days.
        params.not_before = rcgen::date_time_ymd(1970, 1, 12);
        params.not_after = rcgen::date_time_ymd(1970, 4, 12);
        let cert = params.self_signed(&key).unwrap().pem();
        let start: i64 = 11 * 86_400_000;
        assert_eq!(validity(&cert), Some((start, start + 90 * 86_400_000)));
        assert_eq!(renewal_due_at_ms(&cert), Some(start + 60 * 86_400_000));
        assert_eq!(renewal_due_at_ms("not a certificate"), None);
    }
}
