//! `masterctl rollout list | status | pause | resume | abort`.

use rigger_common::proto::{ControlRolloutRequest, ListRolloutsRequest, Rollout};
use rigger_common::time::format_ms;

use super::{Ctl, render, status, table};

/// Every cluster's rollout, one line each.
pub async fn list(ctl: &Ctl, json: bool) -> anyhow::Result<String> {
    let rollouts = fetch(ctl, "").await?;
    if json {
        let all: Vec<_> = rollouts.iter().map(as_json).collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&all)?));
    }
    if rollouts.is_empty() {
        return Ok("no cluster has a rollout\n".into());
    }
    let mut t = table(&[
        "CLUSTER",
        "STATE",
        "NODES",
        "STEPS",
        "STARTED",
        "WAITING FOR",
    ]);
    for r in rollouts {
        t.add_row(vec![
            r.cluster.clone(),
            r.state.clone(),
            progress(&r),
            steps(&r),
            format_ms(r.created_at_ms),
            if r.reason.is_empty() {
                dash(&r.waiting_for)
            } else {
                first_line(&r.reason)
            },
        ]);
    }
    Ok(render(t, &[]))
}

/// One cluster's rollout: its state, why it halted, and every node.
pub async fn show(ctl: &Ctl, cluster: &str, json: bool) -> anyhow::Result<String> {
    let r = fetch(ctl, cluster).await?.remove(0);
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&as_json(&r))?));
    }
    Ok(describe(&r))
}

/// Pauses, resumes or aborts a cluster's rollout.
pub async fn control(ctl: &Ctl, cluster: &str, action: &str) -> anyhow::Result<String> {
    let r = ctl
        .client()
        .control_rollout(ControlRolloutRequest {
            cluster: cluster.to_string(),
            action: action.to_string(),
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(describe(&r))
}

async fn fetch(ctl: &Ctl, cluster: &str) -> anyhow::Result<Vec<Rollout>> {
    Ok(ctl
        .client()
        .list_rollouts(ListRolloutsRequest {
            cluster: cluster.to_string(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .rollouts)
}

/// The rollout as a human reads it.
fn describe(r: &Rollout) -> String {
    let mut out = format!(
        "cluster {}: {} (revision {}, started {}, {})\n",
        r.cluster,
        r.state,
        r.revision,
        format_ms(r.created_at_ms),
        progress(r)
    );
    out += &format!("steps: {}\n", steps(r));
    if !r.reason.is_empty() {
        out += &format!("halted: {}\n", r.reason);
    }
    if !r.waiting_for.is_empty() && r.reason.is_empty() {
        out += &format!("waiting for: {}\n", r.waiting_for);
    }
    let mut t = table(&["NODE", "STATE", "VERSION", "BEFORE", "SINCE"]);
    for n in &r.nodes {
        t.add_row(vec![
            n.certname.clone(),
            n.state.clone(),
            if n.version == 0 {
                "-".into()
            } else {
                n.version.to_string()
            },
            n.previous_version.to_string(),
            format_ms(n.since_ms),
        ]);
    }
    out += &render(t, &[2, 3]);
    for n in r.nodes.iter().filter(|n| !n.error.is_empty()) {
        out += &format!("\n{} failed:\n{}\n", n.certname, n.error.trim_end());
    }
    out
}

/// "2 of 3 nodes have the change".
fn progress(r: &Rollout) -> String {
    let admitted = r.nodes.iter().filter(|n| n.state != "waiting").count();
    format!("{admitted} of {} admitted", r.members)
}

fn steps(r: &Rollout) -> String {
    let steps: Vec<String> = r.steps.iter().map(u32::to_string).collect();
    if steps.is_empty() {
        "-".into()
    } else {
        steps.join(" → ")
    }
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        text.to_string()
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// The stable JSON form of `rollout status --json`.
fn as_json(r: &Rollout) -> serde_json::Value {
    serde_json::json!({
        "cluster": r.cluster,
        "revision": r.revision,
        "state": r.state,
        "created_at_ms": r.created_at_ms,
        "updated_at_ms": r.updated_at_ms,
        "reason": r.reason,
        "members": r.members,
        "steps": r.steps,
        "waiting_for": r.waiting_for,
        "nodes": r.nodes.iter().map(|n| serde_json::json!({
            "certname": n.certname,
            "state": n.state,
            "version": n.version,
            "previous_version": n.previous_version,
            "since_ms": n.since_ms,
            "error": n.error,
        })).collect::<Vec<_>>(),
    })
}
