//! `EnrollmentService`: hands out the CA certificate and signs node CSRs in
//! exchange for a bootstrap token ([`crate::enrollment`]).

use rigger_common::proto::enrollment_service_server::EnrollmentService;
use rigger_common::proto::{
    EnrollRequest, EnrollResponse, GetCaCertificateRequest, GetCaCertificateResponse, RenewRequest,
};
use tonic::{Request, Response, Status};

use super::SharedState;
use crate::enrollment;

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
            .map(|p| p.remote);
        let req = request.into_inner();
        let proof = enrollment::Proof {
            token: &req.token,
            ec2_identity: &req.ec2_identity,
            role: Some(req.role.as_str()).filter(|r| !r.is_empty()),
        };
        let enrolled = enrollment::enroll(&self.state, &req.csr_pem, proof, remote).await?;
        Ok(Response::new(reply(enrolled)))
    }

    #[tracing::instrument(skip_all)]
    async fn renew(
        &self,
        request: Request<RenewRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let current = super::node_cert(&self.state, &request, "Renew").await?;
        let csr_pem = request.into_inner().csr_pem;
        let renewed = enrollment::renew(&self.state, &current, &csr_pem).await?;
        Ok(Response::new(reply(renewed)))
    }
}

fn reply(enrolled: enrollment::Enrolled) -> EnrollResponse {
    EnrollResponse {
        cert_pem: enrolled.cert_pem,
        ca_cert_pem: enrolled.ca_cert_pem,
        catalog_signing_key: enrolled.catalog_signing_key,
    }
}
