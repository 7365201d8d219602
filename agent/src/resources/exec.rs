//! `exec`: a shell command guarded by `creates` / `unless` (or run only
//! when notified), killed with its whole process group after a timeout.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rigger_common::catalog::ExecSpec;

use super::{ApplyContext, Change, ResourceError};

/// How much of a failed command's output goes into the error.
const OUTPUT_TAIL: usize = 2000;

/// What would change: whether the command would run now.
pub fn check(spec: &ExecSpec, ctx: &ApplyContext) -> Result<Vec<Change>, ResourceError> {
    if spec.refresh_only || guard_satisfied(spec, ctx)? {
        return Ok(vec![]);
    }
    Ok(vec![Change::new(format!("run `{}`", spec.command))])
}

/// Whether `creates` exists or `unless` succeeds.
pub fn guard_satisfied(spec: &ExecSpec, ctx: &ApplyContext) -> Result<bool, ResourceError> {
    if let Some(creates) = &spec.creates {
        if ctx.paths.resolve(creates).exists() {
            return Ok(true);
        }
    }
    if let Some(unless) = &spec.unless {
        return Ok(run_shell(unless, spec, ctx)?.success);
    }
    Ok(false)
}

/// Runs the command (re-checking the guard first); a non-zero exit fails.
pub fn apply(spec: &ExecSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    if guard_satisfied(spec, ctx)? {
        return Ok(());
    }
    run(spec, ctx)
}

/// Runs the command unconditionally (a notification).
pub fn run(spec: &ExecSpec, ctx: &ApplyContext) -> Result<(), ResourceError> {
    let outcome = run_shell(&spec.command, spec, ctx)?;
    if outcome.success {
        Ok(())
    } else {
        Err(ResourceError::Other(format!(
            "`{}` {}; output: {}",
            spec.command,
            outcome.status,
            tail(&outcome.output)
        )))
    }
}

struct Outcome {
    success: bool,
    status: String,
    output: String,
}

fn run_shell(command: &str, spec: &ExecSpec, ctx: &ApplyContext) -> Result<Outcome, ResourceError> {
    let cwd = spec
        .cwd
        .as_deref()
        .map(|c| ctx.paths.resolve(c))
        .unwrap_or_else(|| ctx.paths.root().to_path_buf());
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .current_dir(&cwd)
        .env("RIGGER_ROOT", ctx.paths.root())
        .envs(&spec.environment)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            ResourceError::Other(format!(
                "cannot start `{command}` in {}: {e}",
                cwd.display()
            ))
        })?;
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut stream| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            buf
        })
    })
    .collect();
    let timeout = Duration::from_secs(spec.timeout_secs.max(1));
    let started = Instant::now();
    // Our own child, not reaped yet: its pid is its own until we wait. The
    // wait returns as it exits; without a pidfd, it is polled.
    let exit = crate::exits::ExitHandle::open(child.id()).ok();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let pgid = Pid::from_raw(child.id() as i32);
                let _ = killpg(pgid, Signal::SIGKILL);
                let _ = child.wait();
                return Err(ResourceError::Other(format!(
                    "`{command}` timed out after {}s and was killed",
                    timeout.as_secs()
                )));
            }
            Ok(None) => {
                let left = timeout.saturating_sub(started.elapsed());
                if !matches!(exit.as_ref().map(|exit| exit.wait(left)), Some(Ok(_))) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Err(e) => {
                return Err(ResourceError::Other(format!(
                    "cannot wait for `{command}`: {e}"
                )));
            }
        }
    };
    let output: Vec<u8> = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap_or_default())
        .collect();
    Ok(Outcome {
        success: status.success(),
        status: status.to_string(),
        output: String::from_utf8_lossy(&output).into_owned(),
    })
}

fn tail(output: &str) -> String {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        return "(none)".to_string();
    }
    let start = trimmed.len().saturating_sub(OUTPUT_TAIL);
    let start = (start..=trimmed.len())
        .find(|i| trimmed.is_char_boundary(*i))
        .unwrap_or(0);
    trimmed[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Paths;

    fn spec(command: &str) -> ExecSpec {
        ExecSpec {
            command: command.into(),
            cwd: None,
            creates: None,
            unless: None,
            refresh_only: false,
            timeout_secs: 5,
            environment: Default::default(),
        }
    }

    #[test]
    fn creates_guard_makes_the_second_run_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let mut s = spec("echo x >> \"$RIGGER_ROOT/ran\"; touch \"$RIGGER_ROOT/done\"");
        s.creates = Some("/done".into());
        assert_eq!(check(&s, &ctx).unwrap().len(), 1);
        apply(&s, &ctx).unwrap();
        assert!(check(&s, &ctx).unwrap().is_empty());
        apply(&s, &ctx).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ran")).unwrap(),
            "x\n"
        );
    }

    #[test]
    fn unless_guard_and_failures_report_output() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let mut s = spec("echo boom; exit 3");
        s.unless = Some("true".into());
        assert!(check(&s, &ctx).unwrap().is_empty());
        s.unless = Some("false".into());
        let err = apply(&s, &ctx).unwrap_err().to_string();
        assert!(err.contains("boom") && err.contains("3"), "{err}");
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(dir.path()));
        let mut s = spec("sleep 30 & echo $! > \"$RIGGER_ROOT/bg.pid\"; wait");
        s.timeout_secs = 1;
        let err = apply(&s, &ctx).unwrap_err().to_string();
        assert!(err.contains("timed out"), "{err}");
        let pid = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        // The background child was in the group: it must be gone (or a zombie).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let alive = std::fs::read_to_string(&stat)
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false);
            if !alive {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "background process survived the timeout"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
