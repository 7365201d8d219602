//! The master's certificate authority: created on first start, it signs the
//! master's own server certificate and every enrolled node's certificate.
//!
//! Invariant: the CA key and the node-facing server key are written 0600 and
//! never leave the data directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use rigger_common::fsutil::{Ownership, write_atomic};
use rustls_pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;

/// Certificates are backdated by this much against clock skew between a
/// freshly booted node and the master.
const BACKDATE: Duration = Duration::minutes(10);
/// Lifetime of the CA certificate.
const CA_LIFETIME: Duration = Duration::days(365 * 10);
/// Lifetime of the master's server certificate (issued again at each
/// start).
const SERVER_LIFETIME: Duration = Duration::days(365 * 5);
/// Lifetime of node certificates unless configured (`cert_lifetime`):
/// nodes renew theirs at two thirds of it.
pub const DEFAULT_NODE_CERT_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(90 * 24 * 3600);
/// How long a revocation list is valid (its next-update time). The master
/// issues a new one daily and at each revocation; and its own verifier
/// does not enforce this time, so a list it failed to renew locks no one
/// out.
pub const CRL_LIFETIME: Duration = Duration::days(7);

/// A CA operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A CA file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A CA file could not be written.
    #[error(transparent)]
    Write(#[from] rigger_common::fsutil::WriteError),
    /// rcgen refused to build or sign a certificate.
    #[error("certificate operation failed")]
    Rcgen(#[from] rcgen::Error),
    /// The CSR is not acceptable.
    #[error("invalid certificate signing request: {0}")]
    BadCsr(String),
    /// A rotation step out of order.
    #[error("{0}")]
    Rotation(String),
    /// A recorded serial number is not hex.
    #[error("invalid certificate serial: {0}")]
    BadSerial(String),
}

/// A certificate this CA issued.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// PEM certificate.
    pub pem: String,
    /// Serial number as lower-case hex.
    pub serial: String,
    /// Expiry, Unix ms.
    pub not_after_ms: i64,
}

/// A signed certificate revocation list.
#[derive(Debug, Clone)]
pub struct RevocationList {
    /// DER, what the TLS verifier checks.
    pub der: CertificateRevocationListDer<'static>,
    /// PEM, the file operators and other tools read.
    pub pem: String,
}

/// One certificate authority: its certificate and signing key.
struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// Loads `<name>.crt`/`<name>.key` from `dir`, if both are there.
    fn load(dir: &Path, name: &str) -> Result<Option<Self>, CaError> {
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        if !(cert_path.exists() && key_path.exists()) {
            return Ok(None);
        }
        let cert_pem = read(&cert_path)?;
        let key = KeyPair::from_pem(&read(&key_path)?)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Some(Self { cert_pem, issuer }))
    }

    /// Makes a new authority and writes it as `<name>.crt`/`<name>.key`.
    fn create(dir: &Path, name: &str) -> Result<Self, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        let now = OffsetDateTime::now_utc();
        // A name of its own: during a rotation two CAs are trusted side
        // by side, and revocation lists are matched to certificates by
        // their issuer's name.
        dn.push(
            DnType::CommonName,
            format!(
                "Rigger CA {} {}-{}",
                hostname(),
                now.unix_timestamp(),
                hex::encode(rand::random::<[u8; 4]>())
            ),
        );
        dn.push(DnType::OrganizationName, "Rigger");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        write_atomic(
            &dir.join(format!("{name}.key")),
            key.serialize_pem().as_bytes(),
            0o600,
            Ownership::default(),
        )?;
        write_atomic(
            &dir.join(format!("{name}.crt")),
            cert.pem().as_bytes(),
            0o644,
            Ownership::default(),
        )?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }
}

/// Where a CA rotation stands: a new CA introduced (trusted, announced
/// to the nodes, not yet signing), or the old one retired (still trusted
/// until the certificates it signed are renewed away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// No rotation.
    None,
    /// `ca-next.*` is introduced: the next `ca rotate --finish` (and a
    /// restart) makes it the CA.
    Introduced,
}

/// The master's CA: the one that signs, and during a rotation the one
/// introduced next and the one retired before (both trusted).
pub struct CertificateAuthority {
    current: Authority,
    previous: Option<Authority>,
    dir: PathBuf,
    node_lifetime: Duration,
    /// The PEM bundle nodes and the verifier trust (changes when a new CA
    /// is introduced).
    trusted: std::sync::RwLock<String>,
}

impl CertificateAuthority {
    /// Loads `ca.crt`/`ca.key` from `dir`, creating them on first start,
    /// and the CAs of a rotation in progress (`ca-next.*`, `ca-previous.*`).
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let current = match Authority::load(dir, "ca")? {
            Some(current) => current,
            None => {
                let created = Authority::create(dir, "ca")?;
                tracing::info!(path = %dir.join("ca.crt").display(), "created a new certificate authority");
                created
            }
        };
        let previous = Authority::load(dir, "ca-previous")?;
        let next = Authority::load(dir, "ca-next")?;
        let trusted = [Some(&current), next.as_ref(), previous.as_ref()]
            .into_iter()
            .flatten()
            .map(|a| a.cert_pem.trim_end().to_string() + "\n")
            .collect::<String>();
        Ok(Self {
            current,
            previous,
            dir: dir.to_path_buf(),
            node_lifetime: node_lifetime(DEFAULT_NODE_CERT_LIFETIME),
            trusted: std::sync::RwLock::new(trusted),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.current.cert_pem
    }

    /// Every CA certificate nodes and the TLS verifier trust now (the
    /// current one, and during a rotation the next and the previous), PEM.
    pub fn trusted_pem(&self) -> String {
        self.trusted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where a rotation stands.
    pub fn rotation(&self) -> Rotation {
        if self.dir.join("ca-next.crt").exists() {
            Rotation::Introduced
        } else {
            Rotation::None
        }
    }

    /// Introduces a new CA: it is trusted and announced to every node (in
    /// each catalog reply) from now on; `finish_rotation` makes it the CA.
    /// Returns its certificate, PEM.
    pub fn introduce_next(&self) -> Result<String, CaError> {
        if self.rotation() == Rotation::Introduced {
            return Err(CaError::Rotation(
                "a new CA is introduced already: finish that rotation first (`masterctl ca rotate --finish`)".into(),
            ));
        }
        let next = Authority::create(&self.dir, "ca-next")?;
        let mut trusted = self.trusted.write().unwrap_or_else(|e| e.into_inner());
        let mut bundle = self.current.cert_pem.trim_end().to_string() + "\n";
        bundle.push_str(next.cert_pem.trim_end());
        bundle.push('\n');
        *trusted = bundle;
        Ok(next.cert_pem)
    }

    /// Makes the introduced CA the CA, the current one the previous
    /// (still trusted, for the certificates it signed), on disk: it takes
    /// effect when the master starts again.
    pub fn finish_rotation(&self) -> Result<(), CaError> {
        if self.rotation() != Rotation::Introduced {
            return Err(CaError::Rotation(
                "no new CA is introduced: `masterctl ca rotate` first, then let the nodes pick it up".into(),
            ));
        }
        let io = |path: PathBuf| move |source| CaError::Read { path, source };
        for ext in ["crt", "key"] {
            let (current, previous, next) = (
                self.dir.join(format!("ca.{ext}")),
                self.dir.join(format!("ca-previous.{ext}")),
                self.dir.join(format!("ca-next.{ext}")),
            );
            std::fs::copy(&current, &previous).map_err(io(previous.clone()))?;
            std::fs::rename(&next, &current).map_err(io(current.clone()))?;
        }
        Ok(())
    }

    /// The sha256 fingerprints of every CA it trusts (the current one, and
    /// during a rotation the next and the previous).
    pub fn trusted_fingerprints(&self) -> Vec<rigger_common::digest::Digest> {
        rigger_common::tls::certs_from_pem(&self.trusted_pem(), "the trusted CAs")
            .map(|certs| certs.iter().map(rigger_common::tls::fingerprint).collect())
            .unwrap_or_default()
    }

    /// The retired CA's fingerprint, if a rotation kept one.
    pub fn previous_fingerprint(&self) -> Option<String> {
        let der =
            rigger_common::tls::certs_from_pem(self.previous_pem()?, "the previous CA").ok()?;
        Some(rigger_common::tls::fingerprint(der.first()?).to_string())
    }

    /// The retired CA's certificate, if a rotation kept one.
    pub fn previous_pem(&self) -> Option<&str> {
        self.previous.as_ref().map(|p| p.cert_pem.as_str())
    }

    /// Node certificates it signs from now on are valid for `lifetime`.
    pub fn set_node_lifetime(&mut self, lifetime: std::time::Duration) {
        self.node_lifetime = node_lifetime(lifetime);
    }

    /// The CA certificate's subject and expiry (Unix ms).
    pub fn subject_and_expiry(&self) -> Option<(String, i64)> {
        let der = rigger_common::tls::certs_from_pem(&self.current.cert_pem, "the CA certificate")
            .ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).ok()?;
        Some((
            cert.subject().to_string(),
            cert.validity().not_after.timestamp() * 1000,
        ))
    }

    /// How long the node certificates it signs are valid.
    pub fn node_lifetime(&self) -> std::time::Duration {
        std::time::Duration::try_from(self.node_lifetime).unwrap_or_default()
    }

    /// The sha256 fingerprint nodes pin the CA by (`--ca-fingerprint`).
    pub fn fingerprint(
        &self,
    ) -> Result<rigger_common::digest::Digest, rigger_common::tls::TlsError> {
        let der = rigger_common::tls::certs_from_pem(&self.current.cert_pem, "the CA certificate")?;
        Ok(rigger_common::tls::fingerprint(&der[0]))
    }

    /// Issues the master's TLS server certificate for `names` (DNS names or
    /// IP addresses). Returns the certificate and its new key, both PEM.
    pub fn issue_server_cert(&self, names: &[String]) -> Result<(IssuedCert, String), CaError> {
        let key = KeyPair::generate()?;
        let mut params = leaf_params("rigger-master", SERVER_LIFETIME);
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.current.issuer)?;
        Ok((issued(&params, cert.pem()), key.serialize_pem()))
    }

    /// Signs a revocation list naming `revoked` (serial as lower-case
    /// hex, revocation time in Unix ms), numbered `number` (which must
    /// grow from one list to the next), valid for [`CRL_LIFETIME`]: one
    /// by the CA, and one by the previous CA while a rotation keeps it
    /// (the verifier needs a list from each issuer it trusts).
    pub fn revocation_lists(
        &self,
        revoked: &[(String, i64)],
        number: u64,
    ) -> Result<Vec<RevocationList>, CaError> {
        [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .map(|authority| revocation_list(authority, revoked, number))
            .collect()
    }
}

fn revocation_list(
    authority: &Authority,
    revoked: &[(String, i64)],
    number: u64,
) -> Result<RevocationList, CaError> {
    {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = revoked
            .iter()
            .map(|(serial, at_ms)| {
                let bytes = hex::decode(serial)
                    .map_err(|e| CaError::BadSerial(format!("{serial:?}: {e}")))?;
                let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(*at_ms) * 1_000_000)
                    .unwrap_or(now)
                    .min(now);
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&bytes),
                    revocation_time: at,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + CRL_LIFETIME,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&authority.issuer)?;
        Ok(RevocationList {
            der: crl.der().clone(),
            pem: crl.pem()?,
        })
    }
}

impl CertificateAuthority {
    /// Signs a node's CSR. The certificate's only name is `certname` (the
    /// CSR's requested extensions are ignored); it is valid for client
    /// authentication only.
    pub fn sign_node_csr(&self, csr_pem: &str, certname: &str) -> Result<IssuedCert, CaError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::BadCsr(e.to_string()))?;
        let mut params = leaf_params(certname, self.node_lifetime);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&csr.public_key, &self.current.issuer)?;
        Ok(issued(&params, cert.pem()))
    }
}

fn node_lifetime(lifetime: std::time::Duration) -> Duration {
    Duration::try_from(lifetime).unwrap_or(Duration::days(365))
}

/// Certificates are backdated against clock skew, by at most a tenth of
/// their lifetime (a short-lived certificate is not mostly in the past).
fn leaf_params(common_name: &str, lifetime: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE.min(lifetime / 10);
    params.not_after = now + lifetime;
    params.serial_number = Some(random_serial());
    params
}

fn issued(params: &CertificateParams, pem: String) -> IssuedCert {
    let serial = params
        .serial_number
        .as_ref()
        .map(|s| hex::encode(s.as_ref()))
        .unwrap_or_default();
    IssuedCert {
        pem,
        serial,
        not_after_ms: (params.not_after.unix_timestamp_nanos() / 1_000_000) as i64,
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte
    SerialNumber::from_slice(&bytes)
}

fn read(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// This machine's host name, or `localhost`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The common name of a certificate (DER), which is the node's certname.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The common name a CSR asks for.
pub fn csr_common_name(csr_pem: &str) -> Result<String, String> {
    let der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|e| e.to_string())?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| e.to_string())?;
    let cn = csr
        .certification_request_info
        .subject
        .iter_common_name()
        .next()
        .ok_or("the CSR has no common name")?;
    cn.as_str().map(str::to_string).map_err(|e| e.to_string())
}

/// Whether the CSR asks for the same public key the certificate (PEM)
/// carries: a node repeating an enrollment whose reply it lost.
pub fn csr_has_key_of(csr_pem: &str, cert_pem: &str) -> Result<bool, String> {
    let der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|e| e.to_string())?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| e.to_string())?;
    let Ok(cert_der) = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
        return Ok(false);
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der.as_ref()) else {
        return Ok(false);
    };
    Ok(csr.certification_request_info.subject_pki.raw == cert.public_key().raw)
}

/// The serial number of a certificate (DER), lower-case hex.
pub fn serial_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(hex::encode(cert.raw_serial()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(name: &str) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn ca_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let second = CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert_eq!(first.cert_pem(), second.cert_pem());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn node_certificate_carries_certname_and_serial() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let issued = ca.sign_node_csr(&csr("ignored-cn"), "node-1").unwrap();
        let der = rigger_common::tls::certs_from_pem(&issued.pem, "test").unwrap();
        assert_eq!(common_name(&der[0]).as_deref(), Some("node-1"));
        assert_eq!(serial_of(&der[0]).unwrap(), issued.serial);
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        let not_before = cert.validity().not_before.timestamp();
        assert!(
            not_before < OffsetDateTime::now_utc().unix_timestamp() - 60,
            "not backdated"
        );
    }

    #[test]
    fn garbage_csr_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert!(matches!(
            ca.sign_node_csr("not a csr", "n"),
            Err(CaError::BadCsr(_))
        ));
    }
}
