//! The Rigger agent: enrolls with the master, pulls its signed catalog,
//! converges the node to it and keeps it converged; `agentctl` asks it what
//! is going on over a local socket.
//!
//! Entry points: [`run::Agent`] (one run), [`daemon::run`] (the loop),
//! [`apply::apply_catalog`] (the engine), [`config::AgentConfig`].

pub mod apply;
pub mod cli;
pub mod client;
pub mod config;
pub mod content;
pub mod control;
pub mod daemon;
pub mod drift;
pub mod exits;
pub mod facts;
pub mod file_meta;
pub mod halves;
pub mod identity;
pub mod inspect;
pub mod lease;
pub mod metrics;
pub mod paths;
pub mod release;
pub mod release_index;
pub mod resources;
pub mod run;
pub mod state;
pub mod status;
