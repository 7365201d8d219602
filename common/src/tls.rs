//! TLS 1.3 configuration for both ends (rustls with the ring provider),
//! PEM helpers and certificate fingerprints.
//!
//! The master's listener accepts clients with or without a certificate (so
//! that `Enroll` works); every other RPC checks [`PeerIdentity`] itself.

use std::sync::Arc;

use std::sync::RwLock;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};

use crate::digest::Digest;

/// A TLS configuration that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// PEM input held no certificate.
    #[error("no certificate found in {0}")]
    NoCertificate(String),
    /// PEM input could not be parsed.
    #[error("cannot parse PEM in {what}")]
    Pem {
        /// Which input.
        what: String,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the configuration (bad key, bad certificate).
    #[error("invalid TLS configuration")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built from the CA.
    #[error("invalid client CA")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The crypto provider every Rigger TLS config uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in a PEM string; `what` names the input in errors.
pub fn certs_from_pem(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: what.to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what.to_string()));
    }
    Ok(certs)
}

/// Parses a PEM private key; `what` names the input in errors.
pub fn key_from_pem(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|source| TlsError::Pem {
        what: what.to_string(),
        source,
    })
}

/// The sha256 fingerprint of a certificate's DER (what
/// `openssl x509 -fingerprint -sha256` computes).
pub fn fingerprint(cert: &CertificateDer<'_>) -> Digest {
    Digest::of(cert.as_ref())
}

fn roots(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs_from_pem(ca_pem, "the CA certificate")? {
        store.add(cert)?;
    }
    Ok(store)
}

/// The master's client verifier: certificates are optional (enrollment
/// has none) but, when presented, must chain to the CA and must not be on
/// its revocation list, which [`RevocableClientVerifier::set_crls`]
/// replaces while the listener runs: a revocation refuses the next
/// handshake. The list's next-update time is not enforced (rustls's
/// default), so a list the master failed to re-issue never locks the
/// fleet out.
pub struct RevocableClientVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    hints: Vec<DistinguishedName>,
    current: RwLock<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for RevocableClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocableClientVerifier")
            .finish_non_exhaustive()
    }
}

impl RevocableClientVerifier {
    /// A verifier trusting `ca_pem`, with no certificate revoked yet.
    pub fn new(ca_pem: &str) -> Result<Arc<Self>, TlsError> {
        let roots = Arc::new(roots(ca_pem)?);
        let provider = provider();
        let current = Self::build(&roots, &provider, Vec::new())?;
        Ok(Arc::new(Self {
            hints: current.root_hint_subjects().to_vec(),
            roots,
            provider,
            current: RwLock::new(current),
        }))
    }

    fn build(
        roots: &Arc<RootCertStore>,
        provider: &Arc<CryptoProvider>,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        Ok(
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .allow_unauthenticated()
                .with_crls(crls)
                .only_check_end_entity_revocation()
                .build()?,
        )
    }

    /// Refuses, from the next handshake on, the certificates `crls` list.
    pub fn set_crls(
        &self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<(), TlsError> {
        let verifier = Self::build(&self.roots, &self.provider, crls)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = verifier;
        Ok(())
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ClientCertVerifier for RevocableClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// The master's server config: TLS 1.3 only, HTTP/2, client certificates
/// checked by `verifier`.
pub fn server_config(
    cert_chain_pem: &str,
    key_pem: &str,
    verifier: Arc<RevocableClientVerifier>,
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs_from_pem(cert_chain_pem, "the server certificate")?,
            key_from_pem(key_pem, "the server key")?,
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A client identity: certificate chain and key, both PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    /// Certificate chain PEM.
    pub cert_pem: String,
    /// Private key PEM.
    pub key_pem: String,
}

/// A node's client config: TLS 1.3 only, trusting only `ca_pem`, presenting
/// `identity` when given.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_pem)?);
    let mut config = match identity {
        Some(id) => builder.with_client_auth_cert(
            certs_from_pem(&id.cert_pem, "the node certificate")?,
            key_from_pem(&id.key_pem, "the node key")?,
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A client config that accepts any server certificate. Only for fetching
/// the CA certificate that the caller then checks against a pinned
/// fingerprint before trusting anything (kubeadm's discovery).
pub fn discovery_client_config() -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A client config for readiness probes of a node's own server over HTTPS:
/// WSO2 servers come with a self-signed certificate, and the probe asks
/// whether the server answers, not who it is, so any certificate is taken.
/// TLS 1.2 and 1.3 (older JDKs speak only 1.2); HTTP/1.1.
pub fn health_check_client_config() -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts any certificate but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What the master knows about the other end of a TLS connection; tonic
/// puts it in every request's extensions.
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    /// Remote socket address.
    pub remote: std::net::SocketAddr,
    /// The verified client certificate chain, if the client sent one.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    /// What the connection has done (its RPCs are recorded here).
    pub activity: Option<Arc<crate::connections::Activity>>,
}
