//! Exit codes every Rigger binary uses, so that no error can read as "changes".

/// Success (for `--detailed-exitcodes`: nothing changed).
pub const OK: u8 = 0;
/// A failure that is not one of the classes below.
pub const FAILURE: u8 = 1;
/// `--detailed-exitcodes`: resources changed (or, with `--noop`, would change).
pub const CHANGES: u8 = 2;
/// `agentctl status`: the agent is disabled (`agentctl disable`).
pub const DISABLED: u8 = 3;
/// `--detailed-exitcodes`: resources failed.
pub const FAILURES: u8 = 4;
/// `--detailed-exitcodes`: some changed and some failed.
pub const CHANGES_AND_FAILURES: u8 = 6;
/// Bad command line (sysexits `EX_USAGE`).
pub const USAGE: u8 = 64;
/// Bad configuration (sysexits `EX_CONFIG`); systemd units stop restarting on it.
pub const CONFIG: u8 = 78;

/// Parses the command line, exiting 0 for `--help`/`--version` and
/// [`USAGE`] for any other error (clap's own default is 2, which would read
/// as "changes" under `--detailed-exitcodes`).
pub fn parse_args<P: clap::Parser>() -> P {
    match P::try_parse() {
        Ok(parsed) => parsed,
        Err(err) => {
            let code = if err.use_stderr() { USAGE } else { OK };
            let _ = err.print();
            std::process::exit(i32::from(code));
        }
    }
}
