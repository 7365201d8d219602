//! The generated gRPC contract (`proto/rigger/v1`). Only this module includes
//! generated code; domain types convert from it at the edges.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("rigger.v1");

impl From<crate::signing::SignedCatalog> for SignedCatalog {
    fn from(signed: crate::signing::SignedCatalog) -> Self {
        Self {
            catalog_json: signed.catalog_json,
            signature: signed.signature,
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
