//! The command lines of `rigger-master` and `masterctl`, in the library so
//! that the packaging tool (`xtask`) writes their man pages and shell
//! completions from the same definitions.

pub mod master;
pub mod masterctl;
