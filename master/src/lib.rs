//! The Rigger master: runs the CA and enrollment, compiles and signs
//! per-node catalogs from modules and site data, keeps the inventory and
//! catalog history, and serves the admin API `masterctl` uses.
//!
//! Entry points: [`server::Master`] (the daemon), [`catalogs::publish`]
//! (a node's signed catalog), [`compiler::Compiler`], [`config::MasterConfig`].
//! The gRPC handlers in [`rpc`] authenticate, convert and call the domain
//! modules ([`catalogs`], [`enrollment`], [`leases`], [`content`]).

/// `pub const CASES`: each named conformance case of a suite, as its
/// module's `Case` (a function taking the store under test), in the
/// suite's module (`store::conformance`, `content::blobs::conformance`).
#[cfg(any(test, feature = "conformance"))]
macro_rules! conformance_cases {
    ($($case:ident),* $(,)?) => {
        /// Every case, by name.
        pub const CASES: &[(&str, Case)] = &[$((stringify!($case), |store| Box::pin($case(store)))),*];
    };
}

pub mod admins;
pub mod backup;
pub mod ca;
pub mod catalogs;
pub mod cli;
pub mod compile_memo;
pub mod compiler;
pub mod config;
pub mod content;
pub mod ctl;
pub mod dbinit;
pub mod ec2;
pub mod enrollment;
pub mod epoch;
pub mod error;
pub mod facts;
pub mod fleet;
pub mod inventory;
pub mod leases;
pub mod metrics;
pub mod notices;
pub mod overload;
pub mod promotions;
pub mod refresh;
pub mod reload;
pub mod retention;
pub mod revision;
pub mod revocation;
pub mod rollouts;
pub mod rpc;
pub mod server;
pub mod state;
pub mod store;
pub mod store_config;
pub mod throttle;
pub mod tokens;
