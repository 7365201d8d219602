//! The apply engine: orders a catalog's resources by `requires`, plans
//! every change before writing anything, applies in dependency order, skips
//! the dependents of a failure (and only those), and refreshes notified
//! resources whose source changed.
//!
//! Invariant: a converged node yields a run with zero changes.

use std::collections::{HashMap, HashSet};

use rigger_common::catalog::{
    CatalogContent, CatalogError, FileSpec, Resource, ResourceSpec, ServiceSpec,
};
use rigger_common::error_chain;

use crate::resources::{self, ApplyContext, Change, ResourceError};

/// What happened to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Already in the desired state.
    Unchanged,
    /// Changed to the desired state (or refreshed).
    Changed,
    /// Would change (noop run).
    Pending,
    /// Check or apply failed.
    Failed,
    /// Not applied because something it requires failed or was skipped.
    Skipped,
}

impl Status {
    /// The word used in reports and `agentctl`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Changed => "changed",
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// One resource's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Resource id.
    pub id: String,
    /// Result.
    pub status: Status,
    /// Summary of the changes, the error, or why it was skipped.
    pub message: String,
    /// Unified diff of content changes (secrets redacted).
    pub diff: Option<String>,
    /// How long applying it took (after the plan).
    pub elapsed: std::time::Duration,
}

/// The result of applying a catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Outcomes in apply order.
    pub outcomes: Vec<Outcome>,
    /// How long checking every resource took.
    pub plan: std::time::Duration,
}

impl ApplyReport {
    fn count(&self, status: Status) -> u32 {
        self.outcomes.iter().filter(|o| o.status == status).count() as u32
    }
    /// Resources changed (or, in noop, pending).
    pub fn changed(&self) -> u32 {
        self.count(Status::Changed) + self.count(Status::Pending)
    }
    /// Resources failed.
    pub fn failed(&self) -> u32 {
        self.count(Status::Failed)
    }
    /// Resources skipped.
    pub fn skipped(&self) -> u32 {
        self.count(Status::Skipped)
    }
}

/// Applies (or with `noop`, only plans) `content`. `on_outcome` sees each
/// outcome as it happens (for streaming to `agentctl run`).
pub fn apply_catalog(
    content: &CatalogContent,
    ctx: &ApplyContext,
    noop: bool,
    mut on_outcome: impl FnMut(&Outcome),
) -> Result<ApplyReport, CatalogError> {
    let order = content.apply_order()?;
    // What each resource requires, named or implied (a file on a shared
    // folder requires the `shared_dirs` that links it).
    let requirements = content.requirements();
    let planning = std::time::Instant::now();
    // Plan: check everything before writing anything.
    let plans: Vec<Result<Vec<Change>, ResourceError>> = order
        .iter()
        .map(|&i| {
            let checking = std::time::Instant::now();
            let plan = check(&content.resources[i], ctx, content);
            let took = checking.elapsed();
            if took >= std::time::Duration::from_millis(1) {
                tracing::debug!(resource = %content.resources[i].id, micros = took.as_micros() as u64, "slow check");
            }
            plan
        })
        .collect();

    // target id -> ids of the resources that notify it
    let mut sources: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in &content.resources {
        for target in &r.notifies {
            sources
                .entry(target.as_str())
                .or_default()
                .push(r.id.as_str());
        }
    }
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut changed: HashSet<&str> = HashSet::new();
    // Files whose change is only in their peer lists: they do not restart services.
    let mut peer_only: HashSet<&str> = HashSet::new();
    let mut report = ApplyReport {
        plan: planning.elapsed(),
        ..ApplyReport::default()
    };
    for (&i, plan) in order.iter().zip(plans) {
        let stepping = std::time::Instant::now();
        let resource = &content.resources[i];
        let notified_by: Vec<&str> = sources
            .get(resource.id.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|s| changed.contains(s))
            .filter(|s| {
                !(peer_only.contains(s) && matches!(resource.spec, ResourceSpec::Service(_)))
            })
            .collect();
        // Planned before anything changed: a resource whose requirements
        // changed this run looks again (a shared folder sees the new
        // release; a share that was away is mounted again by now).
        let plan = match plan {
            Ok(changes) if !changes.is_empty() => Ok(changes),
            _ if !noop && requirements[i].iter().any(|r| changed.contains(r)) => {
                check(resource, ctx, content)
            }
            plan => plan,
        };
        let blocker = requirements[i]
            .iter()
            .find(|r| blocked.contains(*r))
            .copied();
        let outcome = step(resource, blocker, plan, ctx, content, noop, &notified_by);
        if let ResourceSpec::Service(service) = &resource.spec {
            if !noop && outcome.status == Status::Unchanged {
                // The server kept running over files rewritten with new
                // peer lists: the screens say it runs with the old ones.
                // (A file restored after an edit on the node is not one.)
                let rewritten = sources.get(resource.id.as_str()).into_iter().flatten();
                let new_peers = |id: &&&str| {
                    peer_only.contains(**id)
                        && !content
                            .resources
                            .iter()
                            .any(|r| r.id == **id && same_as_before(r, ctx))
                };
                for file in rewritten.filter(new_peers) {
                    if let Err(e) = resources::service::peers::note(service, ctx, file) {
                        tracing::warn!(service = %service.name, error = %e, "cannot record a peer-list change");
                    }
                }
            }
        }
        match outcome.status {
            Status::Failed | Status::Skipped => {
                blocked.insert(&resource.id);
            }
            Status::Changed | Status::Pending if peers_only(resource, ctx) => {
                // Rewritten; its execs refresh, but the server keeps running.
                changed.insert(&resource.id);
                peer_only.insert(&resource.id);
            }
            Status::Changed | Status::Pending => {
                changed.insert(&resource.id);
            }
            Status::Unchanged => {}
        }
        let mut outcome = outcome;
        if matches!(outcome.status, Status::Changed | Status::Pending) && peers_only(resource, ctx)
        {
            // Say what happened: the catalog did not change this file, so
            // it was edited on the node; or only its peer lists changed.
            outcome.message.push_str(if same_as_before(resource, ctx) {
                " (restored: the file had been edited on the node; no server restart, it runs with what it read when it started)"
            } else {
                " (only peer lists changed: no server restart)"
            });
        }
        outcome.elapsed = stepping.elapsed();
        on_outcome(&outcome);
        report.outcomes.push(outcome);
    }
    Ok(report)
}

/// Applies (or plans) one resource; `blocker` is a requirement that did
/// not apply, which skips it.
fn step(
    resource: &Resource,
    blocker: Option<&str>,
    plan: Result<Vec<Change>, ResourceError>,
    ctx: &ApplyContext,
    content: &CatalogContent,
    noop: bool,
    notified_by: &[&str],
) -> Outcome {
    let outcome = |status, message: String, diff| Outcome {
        id: resource.id.clone(),
        status,
        message,
        diff,
        elapsed: std::time::Duration::ZERO,
    };
    if let Some(dep) = blocker {
        return outcome(
            Status::Skipped,
            format!("skipped: requires {dep}, which did not apply"),
            None,
        );
    }
    let changes = match plan {
        Ok(c) => c,
        Err(e) => return outcome(Status::Failed, error_chain(&e), None),
    };
    let summary = changes
        .iter()
        .map(|c| c.summary.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let diffs: Vec<&str> = changes.iter().filter_map(|c| c.diff.as_deref()).collect();
    let diff = (!diffs.is_empty()).then(|| diffs.concat());
    let refresh_due = changes.is_empty() && !notified_by.is_empty() && has_refresh(resource);
    let notified = || format!("notified by {}", notified_by.join(", "));
    if noop {
        return if !changes.is_empty() {
            outcome(Status::Pending, format!("would change: {summary}"), diff)
        } else if refresh_due {
            outcome(
                Status::Pending,
                format!("would refresh ({})", notified()),
                None,
            )
        } else {
            outcome(Status::Unchanged, String::new(), None)
        };
    }
    if !changes.is_empty() {
        // A new release is built before any server goes down: one that
        // cannot be built (too little disk, blobs missing) leaves the
        // running release and its servers alone.
        if let ResourceSpec::Tree(tree) = &resource.spec {
            if let Err(e) = resources::tree::prepare(tree, ctx, content) {
                return outcome(
                    Status::Failed,
                    format!(
                        "not switched, the running release stays: {}",
                        error_chain(&e)
                    ),
                    diff,
                );
            }
        }
        let stopped = match stop_before_switch(resource, ctx, content) {
            Ok(stopped) => stopped,
            Err((e, stopped)) => {
                let restored = start_again(&stopped, ctx);
                return outcome(
                    Status::Failed,
                    format!("not switched: {}{restored}", error_chain(&e)),
                    diff,
                );
            }
        };
        return match apply(resource, ctx, content) {
            Ok(()) => outcome(Status::Changed, summary + &stopped.suffix(), diff),
            Err(e) => {
                // The switch did not happen: the previous release serves again.
                let restored = start_again(&stopped, ctx);
                outcome(
                    Status::Failed,
                    format!("{}{restored}", error_chain(&e)),
                    diff,
                )
            }
        };
    }
    if refresh_due {
        // An exec that already ran for its own change is not run again.
        return match refresh(resource, ctx) {
            Ok(Some(note)) => outcome(
                Status::Changed,
                format!("refreshed ({}; {note})", notified()),
                None,
            ),
            Ok(None) => outcome(Status::Changed, format!("refreshed ({})", notified()), None),
            Err(e) => outcome(
                Status::Failed,
                format!("refresh failed: {}", error_chain(&e)),
                None,
            ),
        };
    }
    outcome(Status::Unchanged, String::new(), None)
}

/// The same file resource in the previously applied catalog.
fn previous_file<'c>(resource: &Resource, ctx: &'c ApplyContext) -> Option<&'c FileSpec> {
    ctx.previous
        .as_ref()?
        .resources
        .iter()
        .find_map(|r| match &r.spec {
            ResourceSpec::File(old) if r.id == resource.id => Some(old),
            _ => None,
        })
}

/// Whether a file changed only in its peer lists: same restart key as in
/// the previously applied catalog.
fn peers_only(resource: &Resource, ctx: &ApplyContext) -> bool {
    let ResourceSpec::File(new) = &resource.spec else {
        return false;
    };
    new.restart_key.is_some()
        && previous_file(resource, ctx).is_some_and(|old| old.restart_key == new.restart_key)
}

/// Whether the previously applied catalog wanted this file exactly so
/// (a rewrite then repairs a local edit, not a catalog change).
fn same_as_before(resource: &Resource, ctx: &ApplyContext) -> bool {
    let ResourceSpec::File(new) = &resource.spec else {
        return false;
    };
    previous_file(resource, ctx)
        .is_some_and(|old| old.content == new.content && old.source == new.source)
}

/// Kinds that react to a notification.
fn has_refresh(resource: &Resource) -> bool {
    matches!(
        resource.spec,
        ResourceSpec::Exec(_) | ResourceSpec::Service(_)
    )
}

/// What applying `resource` would change now (nothing: it is as the
/// catalog wants it).
pub fn check(
    resource: &Resource,
    ctx: &ApplyContext,
    content: &CatalogContent,
) -> Result<Vec<Change>, ResourceError> {
    match &resource.spec {
        ResourceSpec::Tree(s) => resources::tree::check(s, ctx, content),
        ResourceSpec::Service(s) => resources::service::check(s, ctx),
        ResourceSpec::Group(s) => resources::account::check_group(s, ctx),
        ResourceSpec::User(s) => resources::account::check_user(s, ctx),
        ResourceSpec::Mount(s) => resources::mount::check(s, ctx),
        ResourceSpec::SharedDirs(s) => resources::shared::check(s, ctx),
        ResourceSpec::Package(s) => resources::package::check(s, ctx),
        ResourceSpec::Directory(s) => resources::directory::check(s, ctx),
        ResourceSpec::File(s) => resources::file::check(s, previous_file(resource, ctx), ctx),
        ResourceSpec::Symlink(s) => resources::symlink::check(s, ctx),
        ResourceSpec::Exec(s) => resources::exec::check(s, ctx),
    }
}

fn apply(
    resource: &Resource,
    ctx: &ApplyContext,
    content: &CatalogContent,
) -> Result<(), ResourceError> {
    match &resource.spec {
        ResourceSpec::Tree(s) => resources::tree::apply(s, ctx, content),
        ResourceSpec::Service(s) => resources::service::apply(s, ctx),
        ResourceSpec::Group(s) => resources::account::apply_group(s, ctx),
        ResourceSpec::User(s) => resources::account::apply_user(s, ctx),
        ResourceSpec::Mount(s) => resources::mount::apply(s, ctx),
        ResourceSpec::SharedDirs(s) => resources::shared::apply(s, ctx),
        ResourceSpec::Package(s) => resources::package::apply(s, ctx),
        ResourceSpec::Directory(s) => resources::directory::apply(s, ctx),
        ResourceSpec::File(s) => resources::file::apply(s, ctx),
        ResourceSpec::Symlink(s) => resources::symlink::apply(s, ctx),
        ResourceSpec::Exec(s) => resources::exec::apply(s, ctx),
    }
}

/// Returns a note for the report (a wait for the cluster's restart lease).
fn refresh(resource: &Resource, ctx: &ApplyContext) -> Result<Option<String>, ResourceError> {
    match &resource.spec {
        ResourceSpec::Exec(s) => resources::exec::run(s, ctx).map(|()| None),
        ResourceSpec::Service(s) => resources::service::restart(s, ctx),
        _ => Ok(None),
    }
}

/// A release about to switch stops the running servers it notifies first
/// (each after its cluster's restart lease); they start again on the new
/// release when their refresh comes.
/// Returns the servers it stopped; on error, with those stopped so far.
fn stop_before_switch<'c>(
    resource: &Resource,
    ctx: &ApplyContext,
    content: &'c CatalogContent,
) -> Result<Stopped<'c>, (ResourceError, Stopped<'c>)> {
    let mut stopped = Stopped::default();
    if !matches!(resource.spec, ResourceSpec::Tree(_)) {
        return Ok(stopped);
    }
    for target in &content.resources {
        let ResourceSpec::Service(service) = &target.spec else {
            continue;
        };
        if !resource.notifies.contains(&target.id) {
            continue;
        }
        match resources::service::is_running(service, ctx)
            .and_then(|running| Ok((running, resources::service::stop_for_switch(service, ctx)?)))
        {
            Ok((was_running, note)) => {
                if was_running {
                    stopped.services.push(service);
                    stopped.notes.push(match note {
                        Some(note) => format!("{} stopped first, after it {note}", service.name),
                        None => format!("{} stopped first", service.name),
                    });
                }
            }
            Err(e) => return Err((e, stopped)),
        }
    }
    Ok(stopped)
}

/// The servers stopped before a switch, and what to say about it.
#[derive(Default)]
struct Stopped<'c> {
    services: Vec<&'c ServiceSpec>,
    notes: Vec<String>,
}

impl Stopped<'_> {
    /// " (wso2is stopped first, …)" for the outcome, or "".
    fn suffix(&self) -> String {
        if self.notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.notes.join("; "))
        }
    }
}

/// Starts servers stopped for a switch that did not happen; a sentence
/// for the failure message.
fn start_again(stopped: &Stopped<'_>, ctx: &ApplyContext) -> String {
    stopped
        .services
        .iter()
        .map(|service| match resources::service::apply(service, ctx) {
            Ok(()) => format!("; {} runs on the previous release again", service.name),
            Err(e) => format!(
                "; {} did not start again on the previous release: {}",
                service.name,
                error_chain(&e)
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests;
