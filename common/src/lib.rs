//! Code shared by the Rigger master and agent: the generated gRPC contract
//! ([`proto`]), the catalog model ([`catalog`]), digests, signatures, TLS and
//! channel helpers, atomic file writes and the process conventions (logging,
//! exit codes) both sides follow.

pub mod catalog;
pub mod digest;
pub mod exit;
pub mod fsutil;
pub mod grpc;
pub mod logging;
pub mod proto;
pub mod signing;
pub mod time;
pub mod tls;

/// The port a master listens on unless told otherwise (Puppet's port).
pub const DEFAULT_MASTER_PORT: u16 = 8140;
