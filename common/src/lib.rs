//! Code shared by the Rigger master and agent: the generated gRPC contract
//! ([`proto`]), the catalog model ([`catalog`]), digests, signatures, TLS and
//! channel helpers, atomic file writes and the process conventions (logging,
//! exit codes) both sides follow.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod digest;
pub mod exit;
pub mod fsutil;
pub mod grpc;
pub mod logging;
pub mod manifest;
pub mod proto;
pub mod signing;
pub mod time;
pub mod tls;

/// The port a master listens on unless told otherwise (Puppet's port).
pub const DEFAULT_MASTER_PORT: u16 = 8140;

/// An error and its sources as one line (`a: b: c`), for messages that
/// travel over the wire or into reports.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
