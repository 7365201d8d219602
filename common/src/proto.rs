//! The generated gRPC contract (`proto/rigger/v1`). Only this module includes
//! generated code; domain types convert from it at the edges.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("rigger.v1");

impl From<crate::signing::SignedCatalog> for SignedCatalog {
    fn from(signed: crate::signing::SignedCatalog) -> Self {
        Self {
            catalog_json: signed.catalog_json,
            signature: signed.signature,
            held_back: String::new(),
            ca_bundle_pem: String::new(),
        }
    }
}

impl From<SignedCatalog> for crate::signing::SignedCatalog {
    fn from(signed: SignedCatalog) -> Self {
        Self {
            catalog_json: signed.catalog_json,
            signature: signed.signature,
        }
    }
}

impl From<crate::report::RunReport> for Report {
    fn from(report: crate::report::RunReport) -> Self {
        Self {
            catalog_version: report.catalog_version,
            catalog_digest: report.catalog_digest,
            started_at_ms: report.started_at_ms,
            duration_ms: report.duration_ms,
            changed: report.changed,
            failed: report.failed,
            skipped: report.skipped,
            noop: report.noop,
            used_cached_catalog: report.used_cached_catalog,
            resources: report
                .resources
                .into_iter()
                .map(|o| ResourceOutcome {
                    id: o.id,
                    status: o.status,
                    message: o.message,
                    diff: o.diff,
                })
                .collect(),
            services: report.services.into_iter().map(Into::into).collect(),
            trigger: report.trigger,
            timings: report
                .timings
                .into_iter()
                .map(|t| PhaseTiming {
                    phase: t.phase,
                    micros: t.micros,
                })
                .collect(),
        }
    }
}

impl From<crate::report::ServiceHealth> for ServiceHealth {
    fn from(h: crate::report::ServiceHealth) -> Self {
        Self {
            name: h.name,
            running: h.running,
            ready: h.ready,
            detail: h.detail,
            peers_changed: h.peers_changed,
        }
    }
}

impl From<ServiceHealth> for crate::report::ServiceHealth {
    fn from(h: ServiceHealth) -> Self {
        Self {
            name: h.name,
            running: h.running,
            ready: h.ready,
            detail: h.detail,
            peers_changed: h.peers_changed,
        }
    }
}

impl From<Report> for crate::report::RunReport {
    fn from(report: Report) -> Self {
        Self {
            catalog_version: report.catalog_version,
            catalog_digest: report.catalog_digest,
            started_at_ms: report.started_at_ms,
            duration_ms: report.duration_ms,
            changed: report.changed,
            failed: report.failed,
            skipped: report.skipped,
            noop: report.noop,
            used_cached_catalog: report.used_cached_catalog,
            resources: report
                .resources
                .into_iter()
                .map(|o| crate::report::ReportedOutcome {
                    id: o.id,
                    status: o.status,
                    message: o.message,
                    diff: o.diff,
                })
                .collect(),
            services: report.services.into_iter().map(Into::into).collect(),
            trigger: report.trigger,
            timings: report
                .timings
                .into_iter()
                .map(|t| crate::report::PhaseTiming {
                    phase: t.phase,
                    micros: t.micros,
                })
                .collect(),
        }
    }
}
