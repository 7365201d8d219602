//! The apply engine: orders a catalog's resources by `requires`, plans
//! every change before writing anything, applies in dependency order, skips
//! the dependents of a failure (and only those), and refreshes notified
//! resources whose source changed.
//!
//! Invariant: a converged node yields a run with zero changes.

use std::collections::{HashMap, HashSet};

use rigger_common::catalog::{CatalogContent, CatalogError, Resource, ResourceSpec, ServiceSpec};
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
}

/// The result of applying a catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Outcomes in apply order.
    pub outcomes: Vec<Outcome>,
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
    // Plan: check everything before writing anything.
    let plans: Vec<Result<Vec<Change>, ResourceError>> = order
        .iter()
        .map(|&i| check(&content.resources[i], ctx, content))
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
    let mut report = ApplyReport::default();
    for (&i, plan) in order.iter().zip(plans) {
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
        // changed this run looks again (a shared folder sees the new release).
        let plan = match plan {
            Ok(changes)
                if changes.is_empty()
                    && !noop
                    && resource
                        .requires
                        .iter()
                        .any(|r| changed.contains(r.as_str())) =>
            {
                check(resource, ctx, content)
            }
            plan => plan,
        };
        let outcome = step(resource, plan, ctx, content, noop, &blocked, &notified_by);
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
        on_outcome(&outcome);
        report.outcomes.push(outcome);
    }
    Ok(report)
}

fn step(
    resource: &Resource,
    plan: Result<Vec<Change>, ResourceError>,
    ctx: &ApplyContext,
    content: &CatalogContent,
    noop: bool,
    blocked: &HashSet<&str>,
    notified_by: &[&str],
) -> Outcome {
    let outcome = |status, message: String, diff| Outcome {
        id: resource.id.clone(),
        status,
        message,
        diff,
    };
    if let Some(dep) = resource
        .requires
        .iter()
        .find(|r| blocked.contains(r.as_str()))
    {
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
            outcome(Status::Pending, format!("would {summary}"), diff)
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

/// Whether a file changed only in its peer lists: same restart key as in
/// the previously applied catalog.
fn peers_only(resource: &Resource, ctx: &ApplyContext) -> bool {
    let ResourceSpec::File(new) = &resource.spec else {
        return false;
    };
    let Some(key) = new.restart_key else {
        return false;
    };
    ctx.previous.as_ref().is_some_and(|previous| {
        previous.resources.iter().any(|r| {
            r.id == resource.id
                && matches!(&r.spec, ResourceSpec::File(old) if old.restart_key == Some(key))
        })
    })
}

/// Whether the previously applied catalog wanted this file exactly so
/// (a rewrite then repairs a local edit, not a catalog change).
fn same_as_before(resource: &Resource, ctx: &ApplyContext) -> bool {
    let ResourceSpec::File(new) = &resource.spec else {
        return false;
    };
    ctx.previous.as_ref().is_some_and(|previous| {
        previous.resources.iter().any(|r| {
            r.id == resource.id
                && matches!(&r.spec, ResourceSpec::File(old) if old.content == new.content && old.source == new.source)
        })
    })
}

/// Kinds that react to a notification.
fn has_refresh(resource: &Resource) -> bool {
    matches!(
        resource.spec,
        ResourceSpec::Exec(_) | ResourceSpec::Service(_)
    )
}

fn check(
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
        ResourceSpec::File(s) => resources::file::check(s, ctx),
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
mod tests {
    use super::*;
    use crate::paths::Paths;
    use rigger_common::catalog::{DirectorySpec, ExecSpec, FileSpec};

    fn file(id: &str, path: &str, content: &str, requires: &[&str], notifies: &[&str]) -> Resource {
        Resource {
            id: id.into(),
            requires: requires.iter().map(|s| s.to_string()).collect(),
            notifies: notifies.iter().map(|s| s.to_string()).collect(),
            spec: ResourceSpec::File(FileSpec {
                path: path.into(),
                content: content.into(),
                source: None,
                mode: None,
                owner: None,
                group: None,
                secret: false,
                restart_key: None,
            }),
        }
    }

    fn dir(id: &str, path: &str) -> Resource {
        Resource {
            id: id.into(),
            requires: vec![],
            notifies: vec![],
            spec: ResourceSpec::Directory(DirectorySpec {
                path: path.into(),
                mode: Some(0o755),
                owner: None,
                group: None,
            }),
        }
    }

    fn refresh_exec(id: &str, requires: &[&str]) -> Resource {
        Resource {
            id: id.into(),
            requires: requires.iter().map(|s| s.to_string()).collect(),
            notifies: vec![],
            spec: ResourceSpec::Exec(ExecSpec {
                command: "echo ran >> \"$RIGGER_ROOT/refreshes\"".into(),
                cwd: None,
                creates: None,
                unless: None,
                refresh_only: true,
                timeout_secs: 10,
                environment: Default::default(),
            }),
        }
    }

    fn content(resources: Vec<Resource>) -> CatalogContent {
        CatalogContent {
            role: "t".into(),
            profile: "t/t".into(),
            resources,
        }
    }

    fn statuses(report: &ApplyReport) -> Vec<(&str, Status)> {
        report
            .outcomes
            .iter()
            .map(|o| (o.id.as_str(), o.status))
            .collect()
    }

    #[test]
    fn a_failure_skips_only_its_dependents() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(tmp.path()));
        // `blocker` is a file where a directory must be: it fails.
        std::fs::write(tmp.path().join("blocker"), "x").unwrap();
        let c = content(vec![
            dir("bad_dir", "/blocker"),
            file("under_bad", "/blocker/f", "x", &["bad_dir"], &[]),
            file("under_skipped", "/other", "y", &["under_bad"], &[]),
            dir("good_dir", "/good"),
            file("under_good", "/good/f", "z", &["good_dir"], &[]),
        ]);
        let report = apply_catalog(&c, &ctx, false, |_| {}).unwrap();
        assert_eq!(
            statuses(&report),
            vec![
                ("bad_dir", Status::Failed),
                ("under_bad", Status::Skipped),
                ("under_skipped", Status::Skipped),
                ("good_dir", Status::Changed),
                ("under_good", Status::Changed),
            ]
        );
        assert!(!tmp.path().join("other").exists());
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("good/f")).unwrap(),
            "z"
        );
    }

    #[test]
    fn a_restored_hand_edit_is_not_called_a_peer_change() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ctx = ApplyContext::new(Paths::new(tmp.path()));
        let keyed = |text: &str, key: &[u8]| {
            let mut r = file("conf", "/deployment.toml", text, &[], &[]);
            if let ResourceSpec::File(f) = &mut r.spec {
                f.restart_key = Some(rigger_common::digest::Digest::of(key));
            }
            content(vec![r])
        };
        let applied = keyed("members = [a]\n", b"k");
        apply_catalog(&applied, &ctx, false, |_| {}).unwrap();
        ctx.previous = Some(std::sync::Arc::new(applied.clone()));

        // An operator edits the file; the catalog did not change.
        std::fs::write(tmp.path().join("deployment.toml"), "edited\n").unwrap();
        let restored = apply_catalog(&applied, &ctx, false, |_| {}).unwrap();
        let message = &restored.outcomes[0].message;
        assert!(
            message.contains("restored: the file had been edited on the node"),
            "{message}"
        );
        assert!(!message.contains("peer lists"), "{message}");

        // The peer lists change, the restart key stays.
        let peers = apply_catalog(&keyed("members = [a, b]\n", b"k"), &ctx, false, |_| {}).unwrap();
        let message = &peers.outcomes[0].message;
        assert!(message.contains("only peer lists changed"), "{message}");
    }

    #[test]
    fn notified_exec_runs_only_when_its_source_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(tmp.path()));
        let make = |text: &str| {
            content(vec![
                file("conf", "/app.conf", text, &[], &["reload"]),
                refresh_exec("reload", &[]),
            ])
        };
        let refreshes =
            || std::fs::read_to_string(tmp.path().join("refreshes")).unwrap_or_default();
        let first = apply_catalog(&make("a"), &ctx, false, |_| {}).unwrap();
        assert_eq!(
            statuses(&first),
            vec![("conf", Status::Changed), ("reload", Status::Changed)]
        );
        assert_eq!(refreshes(), "ran\n");
        let second = apply_catalog(&make("a"), &ctx, false, |_| {}).unwrap();
        assert_eq!(second.changed(), 0);
        assert_eq!(refreshes(), "ran\n", "refreshed without a change");
        let noop = apply_catalog(&make("b"), &ctx, true, |_| {}).unwrap();
        assert_eq!(
            statuses(&noop),
            vec![("conf", Status::Pending), ("reload", Status::Pending)]
        );
        assert_eq!(refreshes(), "ran\n", "noop refreshed");
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("app.conf")).unwrap(),
            "a"
        );
    }

    #[test]
    fn a_resource_whose_requirement_changed_is_checked_again() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(tmp.path()));
        // /current points at release a, which has the file already.
        std::fs::create_dir_all(tmp.path().join("a")).unwrap();
        std::fs::create_dir_all(tmp.path().join("b")).unwrap();
        std::fs::write(tmp.path().join("a/app.conf"), "v").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("a"), tmp.path().join("current")).unwrap();
        let switch = Resource {
            id: "switch".into(),
            requires: vec![],
            notifies: vec![],
            spec: ResourceSpec::Symlink(rigger_common::catalog::SymlinkSpec {
                path: "/current".into(),
                target: "/b".into(),
            }),
        };
        let c = content(vec![
            switch,
            file("conf", "/current/app.conf", "v", &["switch"], &[]),
        ]);
        let report = apply_catalog(&c, &ctx, false, |_| {}).unwrap();
        assert_eq!(
            statuses(&report),
            vec![("switch", Status::Changed), ("conf", Status::Changed)]
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("b/app.conf")).unwrap(),
            "v"
        );
    }

    #[test]
    fn a_cycle_is_refused_before_anything_is_applied() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = ApplyContext::new(Paths::new(tmp.path()));
        let c = content(vec![
            file("a", "/a", "a", &["b"], &[]),
            file("b", "/b", "b", &["a"], &[]),
        ]);
        assert!(apply_catalog(&c, &ctx, false, |_| {}).is_err());
        assert!(!tmp.path().join("a").exists());
    }
}
