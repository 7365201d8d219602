//! `agentctl`: asks the local agent what is going on, or makes it run now.

// `status --json` is one large `json!` literal.
#![recursion_limit = "256"]

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use rigger_agent::paths::Paths;
use rigger_common::exit;
use rigger_common::proto::agent_control_service_client::AgentControlServiceClient;
use rigger_common::proto::{AgentStatus, GetStatusRequest, TriggerRunRequest, run_event};
use rigger_common::text::printable;
use rigger_common::time::{format_ms, now_ms};

use rigger_agent::cli::agentctl::*;

fn main() -> ExitCode {
    let cli: Cli = exit::parse_args();
    rigger_common::cli::run("agentctl", run(cli))
}

/// Writes the disable marker in the agent's state directory (the daemon
/// need not run: it reads the marker before each run of its own).
fn disable(root: &std::path::Path, reason: &str) -> anyhow::Result<u8> {
    let reason = reason.trim();
    if reason.is_empty() {
        anyhow::bail!("say why with --reason (agentctl status shows it to the next operator)");
    }
    let by = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| format!("uid {}", nix::unistd::geteuid()));
    let disabled = rigger_agent::state::Disabled {
        reason: printable(reason).chars().take(500).collect(),
        by,
        at_ms: now_ms(),
    };
    rigger_agent::state::StateDir::new(Paths::new(root).state_dir())
        .disable(&disabled)
        .context("cannot disable the agent")?;
    println!(
        "agent disabled: scheduled and pushed runs are skipped until `agentctl enable` (a run asked for by hand still happens)"
    );
    Ok(exit::OK)
}

/// Removes the disable marker.
fn enable(root: &std::path::Path) -> anyhow::Result<u8> {
    let was = rigger_agent::state::StateDir::new(Paths::new(root).state_dir())
        .enable()
        .context("cannot enable the agent")?;
    println!(
        "{}",
        if was {
            "agent enabled: it runs on its own again"
        } else {
            "the agent was not disabled"
        }
    );
    Ok(exit::OK)
}

/// Polls the agent's status until a run applied a catalog cleanly.
async fn wait_ready(socket: &std::path::Path, timeout: std::time::Duration) -> anyhow::Result<u8> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("the agent's socket is not there yet");
    loop {
        if let Ok(channel) = rigger_common::grpc::unix_channel(socket).await {
            match AgentControlServiceClient::new(channel)
                .get_status(GetStatusRequest {})
                .await
            {
                Ok(status) => {
                    let s = status.into_inner();
                    let clean = s.catalog_version > 0
                        && s.last_error.is_empty()
                        && s.failed == 0
                        && matches!(s.last_run_result.as_str(), "changed" | "unchanged");
                    if clean && !s.running {
                        println!(
                            "ready: catalog version {} applied, every service ready",
                            s.catalog_version
                        );
                        return Ok(exit::OK);
                    }
                    last = if s.last_run_at_ms == 0 || s.running {
                        "the first run is still going".into()
                    } else if !s.last_error.is_empty() {
                        s.last_error
                    } else {
                        format!("last run {}: {} failed", s.last_run_result, s.failed)
                    };
                }
                Err(e) => last = e.message().to_string(),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "agentctl: not ready after {}: {last}",
                humantime::format_duration(timeout)
            );
            return Ok(exit::FAILURE);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let socket = cli.socket.unwrap_or_else(|| Paths::new(&cli.root).socket());
    match &cli.command {
        Command::WaitReady { timeout } => return wait_ready(&socket, *timeout).await,
        Command::Disable { reason } => return disable(&cli.root, reason),
        Command::Enable => return enable(&cli.root),
        _ => {}
    }
    let channel = rigger_common::grpc::unix_channel(&socket)
        .await
        .with_context(|| {
            format!(
                "cannot reach the agent at {} (is rigger-agent running, and are you root?)",
                socket.display()
            )
        })?;
    let mut client = AgentControlServiceClient::new(channel);
    match cli.command {
        Command::WaitReady { .. } | Command::Disable { .. } | Command::Enable => {
            unreachable!("handled before connecting")
        }
        Command::Status { json, watch, every } => {
            let interrupted = tokio::signal::ctrl_c();
            tokio::pin!(interrupted);
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
            loop {
                let status = client
                    .get_status(GetStatusRequest {})
                    .await
                    .map_err(|s| anyhow!("{}", s.message()))?
                    .into_inner();
                match (json, watch) {
                    (true, false) => {
                        println!("{}", serde_json::to_string_pretty(&status_json(&status))?);
                    }
                    (true, true) => println!("{}", serde_json::to_string(&status_json(&status))?),
                    (false, _) => {
                        if watch && terminal {
                            // Clear the screen and go home: a refreshing view.
                            print!("\x1b[2J\x1b[H");
                        }
                        print_status(&status);
                        if watch && !terminal {
                            println!();
                        }
                    }
                }
                if !watch {
                    return Ok(status_code(&status));
                }
                tokio::select! {
                    _ = &mut interrupted => return Ok(status_code(&status)),
                    _ = tokio::time::sleep(every.max(std::time::Duration::from_millis(100))) => {}
                }
            }
        }
        Command::Facts { json } => {
            let reply = client
                .get_facts(rigger_common::proto::GetFactsRequest {})
                .await
                .map_err(|s| anyhow!("{}", s.message()))?
                .into_inner();
            let facts: serde_json::Value = serde_json::from_str(&reply.facts_json)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&facts)?);
            } else {
                let mut lines = Vec::new();
                flatten("", &facts, &mut lines);
                for line in lines {
                    println!("{}", printable(&line));
                }
            }
            Ok(exit::OK)
        }
        Command::Logs { lines, follow } => {
            let mut stream = client
                .logs(rigger_common::proto::LogsRequest { lines, follow })
                .await
                .map_err(|s| anyhow!("{}", s.message()))?
                .into_inner();
            let interrupted = tokio::signal::ctrl_c();
            tokio::pin!(interrupted);
            loop {
                let line = tokio::select! {
                    _ = &mut interrupted => return Ok(exit::OK),
                    line = stream.message() => line.map_err(|s| anyhow!("{}", s.message()))?,
                };
                let Some(line) = line else {
                    return Ok(exit::OK);
                };
                println!("{}", printable(&line.line));
            }
        }
        Command::Catalog { json } => {
            let reply = client
                .get_catalog(rigger_common::proto::AppliedCatalogRequest {})
                .await
                .map_err(|s| anyhow!("{}", s.message()))?
                .into_inner();
            if reply.catalog_json.is_empty() {
                eprintln!("agentctl: no catalog applied yet");
                return Ok(exit::FAILURE);
            }
            if json {
                let catalog: serde_json::Value = serde_json::from_str(&reply.catalog_json)?;
                println!("{}", serde_json::to_string_pretty(&catalog)?);
            } else {
                let catalog: rigger_common::catalog::Catalog =
                    serde_json::from_str(&reply.catalog_json)?;
                print!("{}", printable(&catalog_summary(&catalog)));
            }
            Ok(exit::OK)
        }
        command @ (Command::Run { .. } | Command::Verify) => {
            let (noop, verify) = match command {
                Command::Run { noop } => (noop, false),
                _ => (false, true),
            };
            let mut stream = client
                .trigger_run(TriggerRunRequest { noop, verify })
                .await
                .map_err(|s| anyhow!("{}", s.message()))?
                .into_inner();
            let mut code = exit::OK;
            // On a terminal: a bar for a release's fetch, coloured diffs.
            let terminal = console::Term::stdout().is_term();
            let mut bar: Option<indicatif::ProgressBar> = None;
            while let Some(event) = stream
                .message()
                .await
                .map_err(|s| anyhow!("{}", s.message()))?
            {
                match event.event {
                    Some(run_event::Event::Fetched(f)) if terminal => {
                        let bar = bar.get_or_insert_with(|| fetch_bar(f.total));
                        bar.set_length(f.total);
                        bar.set_position(f.done);
                    }
                    Some(run_event::Event::Fetched(_)) => {}
                    Some(run_event::Event::Resource(r)) => {
                        if let Some(bar) = bar.take() {
                            bar.finish();
                        }
                        println!("{:<9} {}: {}", r.status, r.id, printable(&r.message));
                        if !r.diff.is_empty() {
                            print!("{}", diff_text(&printable(&r.diff), terminal));
                        }
                    }
                    Some(run_event::Event::Summary(s)) => {
                        if let Some(bar) = bar.take() {
                            bar.finish();
                        }
                        if !s.error.is_empty() {
                            eprintln!("run failed: {}", printable(&s.error));
                            code = exit::FAILURE;
                        } else if s.failed > 0 || (s.used_cached_catalog && s.master_reachable) {
                            // A refusal (compile failure, revoked
                            // certificate) is a failed run.
                            code = exit::FAILURE;
                        }
                        let verb = if s.noop { "would change" } else { "changed" };
                        println!(
                            "catalog version {}: {} {verb}, {} failed, {} skipped in {} ms{}",
                            s.catalog_version,
                            s.changed,
                            s.failed,
                            s.skipped,
                            s.duration_ms,
                            cached_note(&s)
                        );
                    }
                    None => {}
                }
            }
            Ok(code)
        }
    }
}

/// `agentctl status`'s exit code: 3 disabled, 1 degraded or failed (the
/// last run failed, the master gave no fresh catalog, a service is not
/// ready, the catalog expired), else 0.
fn status_code(s: &AgentStatus) -> u8 {
    let degraded = s.last_run_result == "failed"
        || !s.last_error.is_empty()
        || s.used_cached_catalog
        || s.services.iter().any(|h| !h.ready)
        || s.mounts.iter().any(|m| !m.matches)
        || s.links.iter().any(|l| l.target != l.expected)
        || (s.catalog_expires_at_ms > 0 && s.catalog_expires_at_ms <= now_ms());
    if s.disabled {
        exit::DISABLED
    } else if degraded {
        exit::FAILURE
    } else {
        exit::OK
    }
}

/// Why a run enforced its cached catalog: the master refused (and what it
/// said), or could not be reached (and why); "" for a fresh catalog.
fn cached_note(s: &rigger_common::proto::RunSummary) -> String {
    if !s.used_cached_catalog {
        return String::new();
    }
    let why = printable(&s.master_error);
    match (s.master_reachable, why.is_empty()) {
        (true, true) => " (cached catalog: the master refused to give one)".into(),
        // "the master gave no catalog: why".
        (true, false) => format!(" (cached catalog: {why})"),
        (false, true) => " (cached catalog: master unreachable)".into(),
        (false, false) => format!(" (cached catalog: master unreachable: {why})"),
    }
}

fn status_json(s: &AgentStatus) -> serde_json::Value {
    let holder = s.run_lock_pid > 0;
    let run_lock = serde_json::json!({
        "state": s.run_lock,
        "pid": holder.then_some(s.run_lock_pid),
        "since_ms": holder.then_some(s.run_lock_since_ms),
        "for": holder.then_some(&s.run_lock_for),
    });
    serde_json::json!({
        "certname": s.certname,
        "master": s.master,
        "master_reachable": s.master_reachable,
        "master_error": s.master_error,
        "running": s.running,
        "last_run_at_ms": s.last_run_at_ms,
        "last_run_duration_ms": s.last_run_duration_ms,
        "last_run_result": s.last_run_result,
        "catalog_version": s.catalog_version,
        "catalog_digest": s.catalog_digest,
        "site_revision": s.site_revision,
        "run_lock": run_lock,
        "held_back": (!s.held_back.is_empty()).then_some(&s.held_back),
        "mounts": s.mounts.iter().map(|m| serde_json::json!({
            "path": m.path,
            "wanted": m.wanted,
            "mounted": (!m.mounted.is_empty()).then_some(&m.mounted),
            "matches": m.matches,
        })).collect::<Vec<_>>(),
        "links": s.links.iter().map(|l| serde_json::json!({
            "path": l.path,
            "expected": l.expected,
            "target": (!l.target.is_empty()).then_some(&l.target),
            "ok": l.target == l.expected,
        })).collect::<Vec<_>>(),
        "site_commit": (!s.site_commit.is_empty()).then_some(&s.site_commit),
        "catalog_epoch": s.catalog_epoch,
        "catalog_expires_at_ms": s.catalog_expires_at_ms,
        "changed": s.changed,
        "failed": s.failed,
        "skipped": s.skipped,
        "used_cached_catalog": s.used_cached_catalog,
        "last_error": s.last_error,
        "next_run_at_ms": s.next_run_at_ms,
        "fetched_blobs": s.fetched_blobs,
        "fetched_bytes": s.fetched_bytes,
        "supervisor": s.supervisor,
        "failures": s.failures,
        "activity": s.activity,
        "services": s.services.iter().map(|h| serde_json::json!({
            "name": h.name,
            "running": h.running,
            "ready": h.ready,
            "detail": h.detail,
            "peers_changed": h.peers_changed,
        })).collect::<Vec<_>>(),
        "services_at_ms": s.services_at_ms,
        "agent_version": s.agent_version,
        "agent_started_at_ms": s.agent_started_at_ms,
        "cert_not_after_ms": s.cert_not_after_ms,
        "cert_renews_at_ms": s.cert_renews_at_ms,
        "cache": { "bytes": s.cache_bytes, "files": s.cache_files },
        "products": s.products.iter().map(|p| serde_json::json!({
            "product": p.product,
            "version": p.version,
            "level": p.level,
            "level_source": (!p.level_source.is_empty()).then_some(&p.level_source),
            "release": p.release,
            "current": p.current,
            "kept": p.kept,
        })).collect::<Vec<_>>(),
        "processes": s.processes.iter().map(|p| serde_json::json!({
            "name": p.name,
            "pid": p.pid,
            "started_at_ms": p.started_at_ms,
            "started_with_version": (p.started_with_version > 0).then_some(p.started_with_version),
            "started_by": (!p.started_by.is_empty()).then_some(&p.started_by),
            "restarts_after_exit": p.restarts_after_exit,
        })).collect::<Vec<_>>(),
        "drift": {
            "watched": s.drift_watched,
            "repairs": s.drift_repairs,
            "last_at_ms": s.drift_at_ms,
            "last_paths": s.drift_paths,
        },
        "disabled": if s.disabled {
            serde_json::json!({
                "reason": s.disabled_reason,
                "by": s.disabled_by,
                "at_ms": s.disabled_at_ms,
            })
        } else {
            serde_json::Value::Null
        },
        "applied_at_ms": s.applied_at_ms,
        "last_run_catalog_version": s.last_run_catalog_version,
        "noop": if s.noop_at_ms == 0 {
            serde_json::Value::Null
        } else {
            serde_json::json!({
                "at_ms": s.noop_at_ms,
                "catalog_version": s.noop_catalog_version,
                "pending": s.noop_pending,
                "failed": s.noop_failed,
            })
        },
    })
}

fn ago(ms: i64) -> String {
    let secs = (now_ms() - ms).max(0) / 1000;
    match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    }
}

/// Prints the status, control characters from data escaped.
fn print_status(s: &AgentStatus) {
    let mut out = String::new();
    macro_rules! say {
        ($($arg:tt)*) => {{
            out.push_str(&format!($($arg)*));
            out.push('\n');
        }};
    }
    say!(
        "node:      {}",
        if s.certname.is_empty() {
            "(not enrolled yet)"
        } else {
            &s.certname
        }
    );
    let reach = if s.last_run_at_ms == 0 {
        "not contacted yet".to_string()
    } else if s.master_reachable && s.master_error.is_empty() {
        "reachable".to_string()
    } else if s.master_reachable {
        format!("reachable, but it gave no catalog: {}", s.master_error)
    } else if s.master_error.is_empty() {
        "UNREACHABLE (no reason recorded)".to_string()
    } else {
        format!("UNREACHABLE: {}", s.master_error)
    };
    say!(
        "agent:     {} (running since {}, {})",
        s.agent_version,
        format_ms(s.agent_started_at_ms),
        ago(s.agent_started_at_ms).replace(" ago", "")
    );
    say!("master:    {} ({reach})", s.master);
    if s.cert_not_after_ms > 0 && s.cert_not_after_ms <= now_ms() {
        say!(
            "WARNING:   the certificate EXPIRED at {}: the master refuses this node until it enrolls again",
            format_ms(s.cert_not_after_ms)
        );
    } else if s.cert_not_after_ms > 0 {
        let days = (s.cert_not_after_ms - now_ms()) / 86_400_000;
        say!(
            "cert:      expires {} ({days} days left); renewed from {}",
            format_ms(s.cert_not_after_ms),
            format_ms(s.cert_renews_at_ms)
        );
    }
    if s.disabled {
        say!(
            "DISABLED:  by {} {}: {} (scheduled and pushed runs are skipped; `agentctl enable`)",
            if s.disabled_by.is_empty() {
                "?"
            } else {
                &s.disabled_by
            },
            format_ms(s.disabled_at_ms),
            s.disabled_reason
        );
    }
    if s.last_run_at_ms == 0 {
        say!(
            "last run:  none yet{}",
            if s.running { " (running now)" } else { "" }
        );
    } else {
        say!(
            "last run:  {} ({}), took {} ms{}",
            format_ms(s.last_run_at_ms),
            ago(s.last_run_at_ms),
            s.last_run_duration_ms,
            if s.running {
                "; another run in progress"
            } else {
                ""
            }
        );
        say!(
            "result:    {} ({} changed, {} failed, {} skipped)",
            s.last_run_result,
            s.changed,
            s.failed,
            s.skipped
        );
        if s.catalog_version > 0 {
            let when = if s.applied_at_ms > 0 {
                format!(", applied {}", format_ms(s.applied_at_ms))
            } else {
                String::new()
            };
            say!(
                "catalog:   version {} ({}){when}",
                s.catalog_version,
                s.catalog_digest
            );
            let site =
                rigger_common::catalog::site_revision_text(&s.site_revision, Some(&s.site_commit));
            if !site.is_empty() {
                say!("site:      revision {site}");
            }
            if s.catalog_expires_at_ms > 0 && s.catalog_expires_at_ms <= now_ms() {
                say!(
                    "WARNING:   the catalog EXPIRED at {}: the master has not signed it again (is it reachable?); it is still enforced",
                    format_ms(s.catalog_expires_at_ms)
                );
            }
        }
        if !s.held_back.is_empty() {
            say!("pending:   a newer catalog is held back: {}", s.held_back);
        }
        if s.used_cached_catalog {
            say!(
                "WARNING:   enforcing the CACHED catalog: the master gave no fresh one ({})",
                s.master_error
            );
        }
        if !s.last_error.is_empty() {
            say!("error:     {}", s.last_error);
        }
        for failure in &s.failures {
            say!("failed:    {failure}");
        }
    }
    if s.noop_at_ms > 0 {
        say!(
            "noop:      {} ({}): {} changes pending against catalog version {}{}; nothing applied",
            format_ms(s.noop_at_ms),
            ago(s.noop_at_ms),
            s.noop_pending,
            s.noop_catalog_version,
            if s.noop_failed > 0 {
                format!(", {} failed to plan", s.noop_failed)
            } else {
                String::new()
            }
        );
    }
    if s.drift_repairs > 0 {
        say!(
            "drift:     {} change(s) made outside the agent repaired; last {} ({}): {}",
            s.drift_repairs,
            format_ms(s.drift_at_ms),
            ago(s.drift_at_ms),
            s.drift_paths
        );
    }
    if !s.activity.is_empty() {
        say!("now:       {}", s.activity);
    }
    if !s.supervisor.is_empty() {
        say!("supervisor: {}", s.supervisor);
    }
    for p in &s.products {
        let source = match p.level_source.as_str() {
            "pinned" => " (pinned by the site)",
            "promoted" => " (promoted to its environment)",
            "latest" => " (latest imported)",
            _ => "",
        };
        say!(
            "product:   {} {} level {}{source}: release {}{}{}",
            p.product,
            p.version,
            p.level,
            if p.release.is_empty() {
                "(none)"
            } else {
                &p.release
            },
            if p.current {
                ""
            } else {
                " (NOT the one the catalog wants)"
            },
            if p.kept.is_empty() {
                String::new()
            } else {
                format!("; kept for a rollback: {}", p.kept.join(", "))
            }
        );
    }
    for p in &s.processes {
        if p.pid > 0 {
            let with = match (p.started_with_version, p.started_by.as_str()) {
                (0, _) => ", not started by this agent".to_string(),
                (version, "supervisor") => {
                    format!(", started again by the supervisor with catalog version {version}")
                }
                (version, _) => format!(", started with catalog version {version}"),
            };
            let restarts = match p.restarts_after_exit {
                0 => String::new(),
                1 => "; started again once after it exited".to_string(),
                n => format!("; started again {n} times after it exited"),
            };
            say!(
                "process:   {} pid {} up since {} ({}){with}{restarts}",
                p.name,
                p.pid,
                format_ms(p.started_at_ms),
                ago(p.started_at_ms).replace(" ago", "")
            );
        } else {
            say!("process:   {} not running", p.name);
        }
    }
    for m in &s.mounts {
        match (m.matches, m.mounted.is_empty()) {
            (true, _) => say!("mount:     {} {} (mounted)", m.path, m.mounted),
            (false, true) => say!("WARNING:   {} is NOT MOUNTED (wants {})", m.path, m.wanted),
            (false, false) => say!(
                "WARNING:   {} has {} mounted, not {}",
                m.path,
                m.mounted,
                m.wanted
            ),
        }
    }
    for l in &s.links {
        if l.target == l.expected {
            say!("link:      {} -> {}", l.path, l.target);
        } else if l.target.is_empty() {
            say!(
                "WARNING:   link {} is missing (wants {})",
                l.path,
                l.expected
            );
        } else {
            say!(
                "WARNING:   link {} points at {}, not {}",
                l.path,
                l.target,
                l.expected
            );
        }
    }
    say!(
        "cache:     {} blobs, {:.1} MiB",
        s.cache_files,
        s.cache_bytes as f64 / (1024.0 * 1024.0)
    );
    for h in &s.services {
        let state = if h.ready {
            "ready".to_string()
        } else if h.running {
            format!(
                "running, not ready: {}",
                h.detail.lines().next().unwrap_or_default()
            )
        } else {
            format!("down: {}", h.detail.lines().next().unwrap_or_default())
        };
        say!(
            "service:   {} {state} (looked at {})",
            h.name,
            ago(s.services_at_ms)
        );
        if !h.peers_changed.is_empty() {
            say!("           {}", h.peers_changed);
        }
    }
    say!("next run:  {}", format_ms(s.next_run_at_ms));
    let holder = format!(
        "pid {}, {} since {}",
        s.run_lock_pid,
        s.run_lock_for,
        format_ms(s.run_lock_since_ms)
    );
    match s.run_lock.as_str() {
        "held" => say!("run lock:  held by {holder}"),
        "free after a killed run" => say!(
            "run lock:  free; the run that held it was killed before it finished ({holder}): the next run takes it over"
        ),
        "held by a leftover" if s.run_lock_pid > 0 => say!(
            "WARNING:   the run lock is held, but its holder ({holder}) is gone: a process it started keeps it; runs wait until it ends"
        ),
        "held by a leftover" => say!(
            "WARNING:   the run lock is held by a process that did not say who it is; runs wait until it ends"
        ),
        _ => say!("run lock:  free"),
    }
    print!("{}", printable(&out));
}

/// `key.sub: value` lines of a JSON document, keys in order.
fn flatten(prefix: &str, value: &serde_json::Value, lines: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, lines);
            }
        }
        serde_json::Value::String(s) => lines.push(format!("{prefix}: {s}")),
        other => lines.push(format!("{prefix}: {other}")),
    }
}

/// A catalog as `agentctl catalog` shows it: its version, where it came
/// from, and one line per resource.
fn catalog_summary(catalog: &rigger_common::catalog::Catalog) -> String {
    let mut out = format!(
        "node:      {}\nversion:   {} ({})\ncompiled:  {}\n",
        catalog.node,
        catalog.version,
        catalog.digest,
        format_ms(catalog.compiled_at_ms)
    );
    let site = rigger_common::catalog::site_revision_text(
        &catalog.site_revision,
        catalog.site_commit.as_deref(),
    );
    if !site.is_empty() {
        out += &format!("site:      revision {site}\n");
    }
    out += &format!(
        "role:      {} ({})\nresources:\n",
        catalog.content.role, catalog.content.profile
    );
    for r in &catalog.content.resources {
        let path = r.paths().first().map(|p| p.to_string()).unwrap_or_default();
        out += &format!("  {:<10} {:<32} {path}\n", r.spec.kind(), r.id);
    }
    out
}

/// The bar a release's fetch shows on a terminal: bytes, rate, time left.
fn fetch_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "fetching  [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// A unified diff, coloured on a terminal (added lines green, removed red,
/// hunk headers cyan); as is elsewhere.
fn diff_text(diff: &str, terminal: bool) -> String {
    if !terminal {
        return diff.to_string();
    }
    diff.lines()
        .map(|line| {
            let styled = if line.starts_with("+++") || line.starts_with("---") {
                console::style(line).bold()
            } else if line.starts_with('+') {
                console::style(line).green()
            } else if line.starts_with('-') {
                console::style(line).red()
            } else if line.starts_with("@@") {
                console::style(line).cyan()
            } else {
                console::style(line)
            };
            // Coloured whatever the environment says: stdout is a terminal.
            format!("{}\n", styled.force_styling(true))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_diff_is_coloured_on_a_terminal_only() {
        let diff = "--- a\n+++ a\n@@ -1 +1 @@\n-old\n+new\n";
        assert_eq!(super::diff_text(diff, false), diff);
        let coloured = super::diff_text(diff, true);
        assert!(coloured.contains("\u{1b}[32m+new\u{1b}[0m"), "{coloured:?}");
        assert!(coloured.contains("\u{1b}[31m-old\u{1b}[0m"), "{coloured:?}");
    }
}
