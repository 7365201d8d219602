//! `EnrollmentService`: hands out the CA certificate and signs node CSRs in
//! exchange for a bootstrap token.

use rigger_common::proto::enrollment_service_server::EnrollmentService;
use rigger_common::proto::{
    EnrollRequest, EnrollResponse, GetCaCertificateRequest, GetCaCertificateResponse,
};
use rigger_common::time::{format_ms, now_ms};
use tonic::{Request, Response, Status};

use super::SharedState;
use crate::store::CertRecord;
use crate::tokens;

/// The enrollment service.
pub struct Enrollment {
    state: SharedState,
}

impl Enrollment {
    /// A service over the shared state.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

/// Certnames are DNS-like: lower-case letters, digits, `.`, `-`, `_`.
pub fn validate_certname(name: &str) -> Result<(), Status> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "certname {name:?} is not valid: use lower-case letters, digits, '.', '-' and '_'"
        )))
    }
}

#[tonic::async_trait]
impl EnrollmentService for Enrollment {
    async fn get_ca_certificate(
        &self,
        _request: Request<GetCaCertificateRequest>,
    ) -> Result<Response<GetCaCertificateResponse>, Status> {
        Ok(Response::new(GetCaCertificateResponse {
            ca_cert_pem: self.state.ca.cert_pem().to_string(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let remote = request
            .extensions()
            .get::<rigger_common::tls::PeerIdentity>()
            .map(|p| p.remote.to_string())
            .unwrap_or_default();
        let req = request.into_inner();
        let state = &self.state;
        let now = now_ms();
        let hash = tokens::hash(&req.token);
        let token = state.store.token(&hash).await?.ok_or_else(|| {
            tracing::warn!(%remote, "enrollment refused: unknown token");
            Status::unauthenticated("bootstrap token is not valid")
        })?;
        if token.expires_at_ms <= now {
            tracing::warn!(%remote, "enrollment refused: expired token");
            return Err(Status::unauthenticated(format!(
                "bootstrap token expired at {}",
                format_ms(token.expires_at_ms)
            )));
        }
        if token.uses_left <= 0 {
            tracing::warn!(%remote, "enrollment refused: used-up token");
            return Err(Status::unauthenticated(
                "bootstrap token has been used up: create a new one with `masterctl token create`",
            ));
        }
        let certname = crate::ca::csr_common_name(&req.csr_pem)
            .map_err(|e| Status::invalid_argument(format!("invalid CSR: {e}")))?;
        validate_certname(&certname)?;
        if state.store.has_valid_cert(&certname, now).await? {
            return Err(Status::already_exists(format!(
                "node {certname} already holds a valid certificate; remove the node first or enroll under another certname"
            )));
        }
        if !state.store.consume_token(&hash, now).await? {
            return Err(Status::unauthenticated(
                "bootstrap token has been used up: create a new one with `masterctl token create`",
            ));
        }
        let issued = state
            .ca
            .sign_node_csr(&req.csr_pem, &certname)
            .map_err(|e| Status::invalid_argument(super::error_chain(&e)))?;
        state
            .store
            .record_enrollment(
                &CertRecord {
                    serial: issued.serial.clone(),
                    certname: certname.clone(),
                    issued_at_ms: now,
                    not_after_ms: issued.not_after_ms,
                    revoked: false,
                },
                token.role.as_deref(),
            )
            .await?;
        tracing::info!(node = %certname, serial = %issued.serial, role = ?token.role, %remote, "node enrolled");
        Ok(Response::new(EnrollResponse {
            cert_pem: issued.pem,
            ca_cert_pem: state.ca.cert_pem().to_string(),
            catalog_signing_key: state.signing_key.verifying_key().to_bytes().to_vec(),
        }))
    }
}
