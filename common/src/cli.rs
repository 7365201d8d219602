//! What every binary's `main` shares: a runtime whose errors print as a
//! chain and exit 1, and shutdown on SIGTERM/SIGINT.

use std::future::Future;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::exit;

/// Runs `future` on a new runtime. `Ok(code)` exits with `code`; an error is
/// printed as `name: outer: inner: …` and exits [`exit::FAILURE`].
pub fn run<F>(name: &str, future: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<u8>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(future) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// The loaded configuration, or the exit code to end with: [`exit::CONFIG`]
/// (after printing the problems) when it is invalid, success (after saying
/// so) when the command only checks it (`--check-config`).
pub fn checked_config<T>(
    name: &str,
    loaded: anyhow::Result<T>,
    check_only: bool,
) -> Result<T, ExitCode> {
    match loaded {
        Err(e) => {
            eprintln!("{name}: {e:#}");
            Err(ExitCode::from(exit::CONFIG))
        }
        Ok(_) if check_only => {
            println!("configuration ok");
            Err(ExitCode::SUCCESS)
        }
        Ok(config) => Ok(config),
    }
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
