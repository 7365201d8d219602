//! The signature AWS puts on an instance identity document, in the form
//! IMDS serves at `/latest/dynamic/instance-identity/rsa2048`: base64 of
//! a DER PKCS#7 (CMS) SignedData that carries the document itself as its
//! content, signed with SHA-256 and RSA by the region's "RSA-2048" AWS
//! public certificate, which is not included (the verifier holds it, as
//! `openssl smime -verify -certfile` does in AWS's documentation).
//!
//! Checked here: the structure, the digest and signature algorithms, the
//! signer (issuer serial of a configured certificate), the message digest
//! attribute against the content, and the RSA signature over the signed
//! attributes (or over the content when there are none).

use base64::Engine;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rustls_pki_types::CertificateDer;
use sha2::Digest;

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// The largest signature accepted (AWS's are about 1.5 KiB).
const MAX_SIGNATURE_BYTES: usize = 16 << 10;

/// A document whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDocument {
    /// The document, as signed.
    pub document: Vec<u8>,
    /// When it was signed (the signing-time attribute), Unix ms, if given.
    pub signed_at_ms: Option<i64>,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not base64 DER PKCS#7 SignedData with content, or too large.
    #[error("not a PKCS#7 signature as IMDS serves it (rsa2048): {0}")]
    Malformed(String),
    /// An algorithm other than SHA-256 with RSA.
    #[error("unexpected algorithm {0}: AWS signs the rsa2048 form with SHA-256 and RSA")]
    Algorithm(String),
    /// No configured certificate is the signer.
    #[error("signed by a certificate this master does not hold for {0} (see aws_certificates)")]
    UnknownSigner(String),
    /// The digest or the signature does not match.
    #[error("the signature does not verify: {0}")]
    Invalid(String),
}

/// Verifies `rsa2048` (base64, line breaks allowed) and returns the
/// document it carries. `trusted` is given that document (not yet
/// verified) and returns the AWS certificates that may have signed it
/// (its region's) with a name for errors; the signature is then checked
/// against those only, which binds the document's region to them.
pub fn verify(
    rsa2048: &str,
    trusted: impl FnOnce(&[u8]) -> Result<(String, Vec<CertificateDer<'static>>), SignatureError>,
) -> Result<SignedDocument, SignatureError> {
    let malformed = |what: &str| SignatureError::Malformed(what.to_string());
    let compact: String = rsa2048
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if compact.len() > MAX_SIGNATURE_BYTES * 4 / 3 + 4 {
        return Err(malformed("too large"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| SignatureError::Malformed(format!("base64: {e}")))?;
    let info = ContentInfo::from_der(&der).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if info.content_type != SIGNED_DATA {
        return Err(malformed("not SignedData"));
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let document = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| malformed("the document is not inside (a detached signature)"))?
        .decode_as::<OctetString>()
        .map_err(|e| SignatureError::Malformed(e.to_string()))?
        .into_bytes();
    let mut signers = signed.signer_infos.0.iter();
    let (Some(signer), None) = (signers.next(), signers.next()) else {
        return Err(malformed("one signer expected"));
    };
    if signer.digest_alg.oid != SHA256 {
        return Err(SignatureError::Algorithm(signer.digest_alg.oid.to_string()));
    }
    if ![RSA, SHA256_WITH_RSA].contains(&signer.signature_algorithm.oid) {
        return Err(SignatureError::Algorithm(
            signer.signature_algorithm.oid.to_string(),
        ));
    }
    let (region, trusted) = trusted(&document)?;
    let SignerIdentifier::IssuerAndSerialNumber(sid) = &signer.sid else {
        return Err(malformed("the signer is not named by issuer and serial"));
    };
    let signer_cert = trusted
        .iter()
        .find(|cert| {
            x509_parser::parse_x509_certificate(cert.as_ref())
                .is_ok_and(|(_, c)| c.raw_serial() == sid.serial_number.as_bytes())
        })
        .ok_or(SignatureError::UnknownSigner(region))?;
    let (_, cert) = x509_parser::parse_x509_certificate(signer_cert.as_ref())
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let public_key = cert.public_key().subject_public_key.data.to_vec();

    let content_digest = sha2::Sha256::digest(&document);
    let mut signed_at_ms = None;
    let message = match &signer.signed_attrs {
        None => document.clone(),
        Some(attrs) => {
            let mut digest_matches = false;
            for attr in attrs.iter() {
                let Some(value) = attr.values.iter().next() else {
                    continue;
                };
                if attr.oid == MESSAGE_DIGEST {
                    let given = value
                        .decode_as::<OctetString>()
                        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
                    digest_matches = given.as_bytes() == content_digest.as_slice();
                } else if attr.oid == SIGNING_TIME {
                    let since_epoch = match value.decode_as::<der::asn1::UtcTime>() {
                        Ok(time) => time.to_unix_duration(),
                        Err(_) => value
                            .decode_as::<der::asn1::GeneralizedTime>()
                            .map_err(|e| SignatureError::Malformed(format!("signing time: {e}")))?
                            .to_unix_duration(),
                    };
                    signed_at_ms = Some(since_epoch.as_millis() as i64);
                }
            }
            if !digest_matches {
                return Err(SignatureError::Invalid(
                    "the document's digest is not the one signed".into(),
                ));
            }
            attrs
                .to_der()
                .map_err(|e| SignatureError::Malformed(e.to_string()))?
        }
    };
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &public_key,
    )
    .verify(&message, signer.signature.as_bytes())
    .map_err(|_| SignatureError::Invalid("RSA signature mismatch".into()))?;
    Ok(SignedDocument {
        document,
        signed_at_ms,
    })
}
