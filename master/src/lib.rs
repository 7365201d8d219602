//! The Rigger master: runs the CA and enrollment, compiles and signs
//! per-node catalogs from modules and site data, keeps the inventory and
//! catalog history, and serves the admin API `masterctl` uses.
//!
//! Entry points: [`server::Master`] (the daemon), [`compiler::Compiler`]
//! (catalogs), [`config::MasterConfig`].

pub mod ca;
pub mod compiler;
pub mod config;
pub mod content;
pub mod rpc;
pub mod server;
pub mod store;
pub mod tokens;
