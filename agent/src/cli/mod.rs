//! The command lines of `rigger-agent` and `agentctl`, in the library so
//! that the packaging tool (`xtask`) writes their man pages and shell
//! completions from the same definitions.

pub mod agent;
pub mod agentctl;
