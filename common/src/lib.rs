//! Code shared by the Rigger master and agent: the generated gRPC contract
//! ([`proto`]), the catalog model ([`catalog`]), digests, signatures, TLS and
//! channel helpers, atomic file writes and the process conventions (logging,
//! exit codes) both sides follow.

pub mod beneath;
pub mod blob_encoding;
pub mod blob_layout;
pub mod catalog;
pub mod cli;
pub mod codec;
pub mod config;
pub mod connections;
pub mod digest;
pub mod exit;
pub mod fsutil;
pub mod fswatch;
pub mod grpc;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod packed_manifest;
pub mod proto;
pub mod report;
pub mod service_manager;
pub mod signing;
pub mod text;
pub mod time;
pub mod tls;

/// The port a master listens on unless told otherwise (Puppet's port).
pub const DEFAULT_MASTER_PORT: u16 = 8140;

/// An error and its sources as one line (`a: b: c`), for messages that
/// travel over the wire or into reports. A source whose text its error
/// already shows (errors that format their source into their own message)
/// is not repeated.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let message = inner.to_string();
        if !message.is_empty() && !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect: {0}")]
    struct Echoing(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect")]
    struct Wrapping(#[source] std::io::Error);

    #[test]
    fn error_chain_shows_each_cause_once() {
        let refused = || std::io::Error::from_raw_os_error(111);
        let echoed = error_chain(&Echoing(refused()));
        assert_eq!(echoed.matches("os error 111").count(), 1, "{echoed}");
        let wrapped = error_chain(&Wrapping(refused()));
        assert!(wrapped.starts_with("cannot connect: "), "{wrapped}");
        assert_eq!(wrapped.matches("os error 111").count(), 1, "{wrapped}");
    }
}
