//! The generated gRPC contract (`proto/rigger/v1`). Only this module includes
//! generated code; domain types convert from it at the edges.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("rigger.v1");
