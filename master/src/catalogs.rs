//! Publishing a node's catalog: classify the node, gather its peers from
//! the inventory, compile (or take the content it is pinned to), put the
//! secret files it references into the blob store, then either return the
//! stored version (same content digest) or sign and store version N+1.
//! Also the report a node sends after a run.
//!
//! Invariant: same compiled content → same digest → same version; versions
//! only grow.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rigger_common::catalog::{self, Catalog, CatalogContent, ResourceSpec};
use rigger_common::digest::Digest;
use rigger_common::error_chain;
use rigger_common::signing::{SignedCatalog, sign_catalog};
use rigger_common::time::now_ms;
use serde_json::Value;

use crate::compiler::{NodeContext, Peer, Products};
use crate::error::{Error, Result};
use crate::state::MasterState;
use crate::store::{CatalogRecord, ReportRecord, StoreError};

/// The largest catalog a node is sent (its gRPC message must stay under
/// the 4 MiB a client decodes).
pub const MAX_CATALOG_BYTES: usize = 3 << 20;

/// The EC2 tag that names a node's role when its token bound none.
pub const ROLE_TAG: &str = "rigger:role";

/// Picks the node's role: the one bound by its enrollment token wins; a node
/// asking for another is refused. Otherwise the role it asks for, else its
/// EC2 `rigger:role` tag.
pub fn classify(
    certname: &str,
    bound: Option<&str>,
    asked: Option<&str>,
    facts: &Value,
) -> Result<String> {
    let tagged = facts
        .pointer("/ec2/tags")
        .and_then(|tags| tags.get(ROLE_TAG))
        .and_then(Value::as_str);
    let named = |role: &str, how: &str| -> Result<()> {
        let fine = !role.is_empty()
            && role.len() <= 64
            && role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if fine {
            Ok(())
        } else {
            let shown: String = role.escape_debug().take(80).collect();
            Err(Error::InvalidArgument(format!(
                "node {certname} asks for role \"{shown}\" ({how}): a role is named with letters, digits, '-' and '_'"
            )))
        }
    };
    if let Some(asked) = asked {
        named(asked, "--role")?;
    }
    if let (None, None, Some(tagged)) = (bound, asked, tagged) {
        named(tagged, "its rigger:role tag")?;
    }
    match (bound, asked) {
        (Some(bound), Some(asked)) if bound != asked => Err(Error::PermissionDenied(format!(
            "node {certname} was enrolled with role {bound:?} and may not ask for role {asked:?}"
        ))),
        (Some(bound), _) => Ok(bound.to_string()),
        (None, Some(asked)) => Ok(asked.to_string()),
        (None, None) => tagged.map(str::to_string).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "node {certname} has no role: bind one to its token (`masterctl token create --role`), pass `--role` to the agent, or tag the instance {ROLE_TAG}"
            ))
        }),
    }
}

/// The largest applied version a node may claim (beyond it, a claim is
/// refused: version numbers must not run out).
const MAX_APPLIED_VERSION: u64 = 1 << 48;

/// The catalog for a node that asks for one: its facts (a JSON object,
/// or empty), the role it asks for and the catalog it says it applied
/// are checked, the inventory records the request, and the current
/// signed version is returned.
pub async fn requested(
    state: &MasterState,
    certname: &str,
    facts_json: &str,
    asked_role: Option<&str>,
    applied: Option<crate::store::AppliedCatalog>,
) -> Result<SignedCatalog> {
    if let Some(applied) = &applied {
        let printable =
            |text: &str| text.len() <= 100 && text.bytes().all(|b| b.is_ascii_graphic());
        if applied.version > MAX_APPLIED_VERSION
            || !printable(&applied.epoch)
            || !printable(&applied.digest)
        {
            return Err(Error::InvalidArgument(format!(
                "node {certname} claims an applied catalog that cannot be (version {})",
                applied.version
            )));
        }
    }
    let facts = crate::facts::parse(facts_json).inspect_err(|e| {
        tracing::warn!(node = %certname, error = %e, "facts refused");
    })?;
    let node = state.store.node(certname).await?.ok_or_else(|| {
        Error::PermissionDenied(format!("node {certname} is not in the inventory"))
    })?;
    let role = classify(certname, node.bound_role.as_deref(), asked_role, &facts)?;
    if node.bound_role.is_none() {
        let by = if asked_role.is_some() {
            "--role"
        } else {
            "its rigger:role tag"
        };
        tracing::warn!(node = %certname, role, by, "unbound node classified by what it says");
    }
    let ip = facts.get("ip").and_then(Value::as_str).map(str::to_string);
    state
        .store
        .touch_node(certname, &role, ip.as_deref(), &facts, now_ms())
        .await?;
    if let Some(applied) = &applied {
        state.store.record_applied(certname, applied).await?;
    }
    publish_recorded(state, certname, &role, facts).await
}

/// [`publish`], recording why it failed (or that it no longer does) for
/// the screens: a node that gets no catalog enforces its cached one.
pub async fn publish_recorded(
    state: &MasterState,
    certname: &str,
    role: &str,
    facts: Value,
) -> Result<SignedCatalog> {
    let published = publish(state, certname, role, facts).await;
    let error = match &published {
        Ok(_) => String::new(),
        Err(e) => rigger_common::text::printable(&e.to_string())
            .chars()
            .take(2_000)
            .collect(),
    };
    state.store.set_catalog_error(certname, &error).await?;
    published
}

/// Compiles the node's catalog (or takes its pinned content) and returns
/// the stored signed version: the latest one if the content is unchanged,
/// else a new version.
pub async fn publish(
    state: &MasterState,
    certname: &str,
    role: &str,
    facts: Value,
) -> Result<SignedCatalog> {
    state.site_quiet.settled().await;
    // Read before the inputs: a change while they are read or compiled
    // makes the next request compile again.
    let site_changes = state.site_quiet.changes();
    // The pin and the compile's inputs at once (a pinned node does not
    // use the inputs: a failure to read them is no failure for it).
    let (pinned, gathered) = tokio::join!(
        state.store.pin(certname),
        gather(state, certname, role, facts)
    );
    let mut pinned = pinned?;
    if pinned.is_some() && crate::rollouts::release_rolled_back(state, certname).await? {
        pinned = None;
    }
    // Pinned content keeps the revision (and levels' sources) it was
    // compiled from.
    let (content, revision, level_sources) = match pinned {
        Some(pinned) => {
            let catalog = stored(state, certname, Some(pinned))
                .await
                .map_err(|e| match e {
                    Error::NotFound(_) => Error::FailedPrecondition(format!(
                        "node {certname} is pinned to catalog version {pinned}, which does not exist"
                    )),
                    other => other,
                })?;
            store_secret_files_from_site(state, &catalog.content).await?;
            let revision = crate::revision::SiteRevision {
                digest: catalog.site_revision,
                commit: catalog.site_commit,
            };
            (
                catalog.content,
                Revision::Named(revision),
                catalog.level_sources,
            )
        }
        None => {
            let gathered = gathered?;
            let inputs = state.site_quiet.watching().then(|| {
                crate::compile_memo::Inputs::of(
                    site_changes,
                    (certname, role, &gathered.node.facts),
                    &gathered.node.inventory,
                    &gathered.imported,
                )
            });
            // Nothing it is compiled from changed since the node's last
            // compile, whose content is its latest version: that version.
            if let Some(digest) = inputs.and_then(|i| state.compile_memo.get(certname, i)) {
                let _guard = state.catalog_lock.lock().await;
                let (latest, applied) = latest_and_applied(state, certname).await?;
                if let Some(latest) = latest
                    .filter(|l| l.digest == digest && beyond(Some(l), applied.as_ref()).is_none())
                {
                    state.metrics.compiles_saved.inc();
                    return fresh(state, certname, &latest).await;
                }
            }
            let (compiled, imported) = compile(state, gathered).await?;
            store_secret_files(state, compiled.secret_files).await?;
            if let Some(inputs) = inputs {
                state
                    .compile_memo
                    .put(certname, inputs, compiled.content.digest());
            }
            (
                compiled.content,
                Revision::Of(imported),
                compiled.level_sources,
            )
        }
    };
    let digest = content.digest();
    let _guard = state.catalog_lock.lock().await;
    let (latest, applied) = latest_and_applied(state, certname).await?;
    let latest_version = latest.as_ref().map_or(0, |l| l.version);
    let beyond = beyond(latest.as_ref(), applied.as_ref());
    if let Some(latest) = &latest {
        if beyond.is_none() {
            if latest.digest == digest {
                return fresh(state, certname, latest).await;
            }
            if pinned.is_none() && {
                // Masters sharing a store decide about rollouts one at a time.
                let _rollouts = state.store.lock_rollouts().await?;
                crate::rollouts::admission(state, certname, latest, &content).await?
                    == crate::rollouts::Admission::Hold
            } {
                return fresh(state, certname, latest).await;
            }
        }
    }
    let version = match beyond {
        Some(a) => {
            tracing::warn!(node = %certname, applied_version = a.version, applied_epoch = %a.epoch, latest_version, "the node applied a version this master does not hold (restored from a backup?): the next version goes above it");
            a.version.max(latest_version) + 1
        }
        None => latest_version + 1,
    };
    // The revision names what the catalog came from (the records the
    // compile resolved); a site the master cannot hash whole (a file it
    // may not read) leaves it unnamed, logged, rather than leaving the node
    // without its catalog.
    let revision = match revision {
        Revision::Named(r) => r,
        Revision::Of(imported) => crate::revision::of(state, &imported)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(node = %certname, error = %e, "cannot name the site revision of a new catalog");
                crate::revision::SiteRevision {
                    digest: String::new(),
                    commit: None,
                }
            }),
    };
    let now = now_ms();
    let catalog = Catalog {
        format: catalog::FORMAT,
        node: certname.to_string(),
        version,
        digest,
        compiled_at_ms: now,
        epoch: state.epoch.clone(),
        expires_at_ms: now + state.settings().catalog_ttl.as_millis() as i64,
        site_revision: revision.digest,
        site_commit: revision.commit,
        level_sources,
        content,
    };
    let signed = sign_catalog(&state.signing_key, &catalog);
    if signed.catalog_json.len() > MAX_CATALOG_BYTES {
        return Err(Error::FailedPrecondition(format!(
            "the catalog of {certname} is {} bytes, more than the {MAX_CATALOG_BYTES} a node receives: move large files into the pack or artifacts",
            signed.catalog_json.len()
        )));
    }
    let record = CatalogRecord {
        version,
        digest,
        signed: signed.clone(),
    };
    match state.store.insert_catalog(certname, &record, now).await {
        Ok(()) => {}
        // Another master stored this version first: the same content (it
        // compiled the same inputs) is that version; other content leaves
        // the version to it, and the node asks again.
        Err(StoreError::VersionTaken { .. }) => {
            return match state.store.catalog(certname, Some(version)).await? {
                Some(theirs) if theirs.digest == digest => fresh(state, certname, &theirs).await,
                _ => Err(Error::FailedPrecondition(format!(
                    "another master stored catalog version {version} of {certname} with other content at the same moment; the node's next request gets the newest"
                ))),
            };
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(node = %certname, role, version, %digest, "new catalog version");
    // Nodes watching hear of it (none may be: that is fine), through this
    // master and the others on its store.
    state.notices.publish(certname, version);
    if let Err(e) = state.store.announce_catalog(certname, version).await {
        tracing::warn!(node = %certname, version, error = %rigger_common::error_chain(&e), "cannot tell the other masters of a new catalog version: their watchers hear of it at their next run");
    }
    Ok(signed)
}

/// The node's latest stored version and the version it says it applied.
async fn latest_and_applied(
    state: &MasterState,
    certname: &str,
) -> Result<(Option<CatalogRecord>, Option<crate::store::AppliedCatalog>)> {
    Ok(tokio::try_join!(
        state.store.catalog(certname, None),
        state.store.applied(certname)
    )?)
}

/// The applied version when this history does not hold it (its master was
/// restored from a backup, or rebuilt): the next version goes above it, so
/// that no version number the node saw comes back with other content.
fn beyond<'a>(
    latest: Option<&CatalogRecord>,
    applied: Option<&'a crate::store::AppliedCatalog>,
) -> Option<&'a crate::store::AppliedCatalog> {
    let latest_version = latest.map_or(0, |l| l.version);
    applied.filter(|a| {
        a.version > latest_version
            || (a.version == latest_version
                && latest.is_some_and(|l| a.digest != l.digest.to_string()))
    })
}

/// The stored version `latest`, signed again with a later expiry (same
/// version, same content) once half its validity has passed.
async fn fresh(
    state: &MasterState,
    certname: &str,
    latest: &CatalogRecord,
) -> Result<SignedCatalog> {
    let ttl = state.settings().catalog_ttl.as_millis() as i64;
    let now = now_ms();
    let Ok(mut catalog) = serde_json::from_slice::<Catalog>(&latest.signed.catalog_json) else {
        return Ok(latest.signed.clone());
    };
    if catalog.expires_at_ms != 0 && catalog.expires_at_ms - now > ttl / 2 {
        return Ok(latest.signed.clone());
    }
    catalog.expires_at_ms = now + ttl;
    if catalog.epoch.is_empty() {
        catalog.epoch = state.epoch.clone();
    }
    let signed = sign_catalog(&state.signing_key, &catalog);
    state
        .store
        .replace_signed(certname, latest.version, &signed)
        .await?;
    tracing::debug!(node = %certname, version = latest.version, "catalog signed again with a later expiry");
    Ok(signed)
}

/// Push: the node's latest catalog version now, then each newer one the
/// master makes for it, until the master stops or the node goes away. A
/// stream that fell behind (a burst of versions) sends `u64::MAX`: the
/// node asks for its catalog either way.
pub async fn watch(
    state: &MasterState,
    certname: &str,
) -> Result<tokio_stream::wrappers::ReceiverStream<u64>> {
    // Subscribed before the latest is read: no version falls in between.
    let mut notices = state.notices.subscribe(certname);
    let latest = state
        .store
        .catalog(certname, None)
        .await?
        .map_or(0, |c| c.version);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let node = certname.to_string();
    let stopping = state.stopping.clone();
    let all_notices = state.notices.clone();
    let open = crate::metrics::OpenStream::new(&state.metrics.watch_streams);
    tokio::spawn(async move {
        let _open = open;
        if tx.send(latest).await.is_ok() {
            loop {
                let version = tokio::select! {
                    _ = stopping.cancelled() => break,
                    _ = tx.closed() => break,
                    changed = notices.changed() => match changed {
                        Ok(()) => *notices.borrow_and_update(),
                        Err(_) => break,
                    },
                };
                if tx.send(version).await.is_err() {
                    break;
                }
            }
        }
        drop(notices);
        all_notices.release(&node);
    });
    tracing::debug!(node = %certname, latest, "catalog watch opened");
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Pins a node to the content of its version `to_version` and publishes
/// that content as a new, higher version (agents never go back a version).
pub async fn roll_back(state: &MasterState, certname: &str, to_version: u64) -> Result<Catalog> {
    if state
        .store
        .catalog(certname, Some(to_version))
        .await?
        .is_none()
    {
        return Err(Error::NotFound(format!(
            "node {certname} has no catalog version {to_version}"
        )));
    }
    state.store.set_pin(certname, Some(to_version)).await?;
    let signed = publish(state, certname, "", Value::Object(Default::default())).await?;
    let catalog: Catalog = serde_json::from_slice(&signed.catalog_json).map_err(Error::internal)?;
    tracing::info!(node = %certname, to = to_version, version = catalog.version, "catalog pinned to an earlier version's content");
    Ok(catalog)
}

/// Lets a pinned node's catalog follow the site again; returns whether it
/// was pinned.
pub async fn unpin(state: &MasterState, certname: &str) -> Result<bool> {
    let was_pinned = state.store.pin(certname).await?.is_some();
    if !state.store.set_pin(certname, None).await? {
        return Err(Error::NotFound(format!(
            "node {certname} is not in the inventory"
        )));
    }
    if was_pinned {
        tracing::info!(node = %certname, "catalog unpinned: it follows the site again");
    }
    Ok(was_pinned)
}

/// The node's stored catalog (latest, or `version`), decoded.
pub async fn stored(state: &MasterState, certname: &str, version: Option<u64>) -> Result<Catalog> {
    let record = state
        .store
        .catalog(certname, version)
        .await?
        .ok_or_else(|| match version {
            Some(v) => Error::NotFound(format!("node {certname} has no catalog version {v}")),
            None => Error::NotFound(format!("node {certname} has no catalog yet")),
        })?;
    Ok(record.catalog()?)
}

/// The most resources one report may list.
pub const MAX_REPORTED_RESOURCES: usize = 100_000;
/// Phases a report may time (the run's own, one per resource kind).
const MAX_REPORTED_PHASES: usize = 64;
/// The longest message kept for one resource (longer ones are cut).
pub const MAX_REPORTED_MESSAGE: usize = 8 * 1024;

/// A report within its limits: too many resources is refused, an over-long
/// message is cut (with a mark), so one node cannot fill the database.
pub fn bounded_report(mut report: ReportRecord) -> Result<ReportRecord> {
    if report.resources.len() > MAX_REPORTED_RESOURCES {
        return Err(Error::InvalidArgument(format!(
            "the report lists {} resources, more than {MAX_REPORTED_RESOURCES}",
            report.resources.len()
        )));
    }
    if report.timings.len() > MAX_REPORTED_PHASES
        || report.timings.iter().any(|t| t.phase.len() > 64)
    {
        return Err(Error::InvalidArgument(format!(
            "the report's timings list {} phases (at most {MAX_REPORTED_PHASES}, names of at most 64 bytes)",
            report.timings.len()
        )));
    }
    for resource in &mut report.resources {
        for text in [
            &mut resource.message,
            &mut resource.id,
            &mut resource.status,
            &mut resource.diff,
        ] {
            if text.len() > MAX_REPORTED_MESSAGE {
                let mut cut = MAX_REPORTED_MESSAGE;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push_str(" … (cut)");
            }
        }
    }
    Ok(report)
}

/// Records a node's run report (within its limits).
pub async fn record_report(
    state: &MasterState,
    certname: &str,
    report: ReportRecord,
) -> Result<()> {
    let report = &bounded_report(report)?;
    state
        .store
        .insert_report(certname, report, now_ms())
        .await?;
    crate::rollouts::on_report(state, certname, report).await?;
    tracing::info!(node = %certname, version = report.catalog_version, status = report.status(), changed = report.changed, failed = report.failed, "report received");
    Ok(())
}

/// What one compile made.
struct Compiled {
    /// The catalog's content.
    content: CatalogContent,
    /// The secret files the compiler resolved, by digest.
    secret_files: BTreeMap<Digest, Vec<u8>>,
    /// Where each level came from.
    level_sources: BTreeMap<String, String>,
}

/// The site revision of a catalog: named already (pinned content keeps
/// its own), or of the imported records a compile resolved (hashed only
/// when a new version is stored).
enum Revision {
    Named(crate::revision::SiteRevision),
    Of(crate::revision::Imported),
}

/// What a compile of one node reads from the store: the node with its
/// live peers, and the imported records.
struct Gathered {
    node: NodeContext,
    imported: crate::revision::Imported,
}

/// Reads what compiling the node needs: the live nodes of its cluster
/// (its peers; the whole fleet was read for each request, 10,000 rows at
/// 10,000 nodes) and the imported records, at once.
async fn gather(state: &MasterState, certname: &str, role: &str, facts: Value) -> Result<Gathered> {
    let since = state.live_since_ms();
    let cluster_roles = state.compiler.cluster_roles(role);
    let (nodes, imported) = tokio::try_join!(
        async {
            Ok(match &cluster_roles {
                Some(roles) => state.store.live_nodes_in_roles(roles, since).await?,
                None => Vec::new(),
            })
        },
        crate::revision::Imported::read(state)
    )?;
    let inventory = nodes
        .into_iter()
        .filter_map(|n| {
            Some(Peer {
                role: n.role?,
                ip: n.ip.unwrap_or_default(),
                certname: n.certname,
            })
        })
        .collect();
    let node = NodeContext {
        certname: certname.to_string(),
        role: role.to_string(),
        facts,
        inventory,
    };
    Ok(Gathered { node, imported })
}

/// Compiles the gathered node; returns what it made and the imported
/// records it resolved (read once: they also name the revision).
async fn compile(
    state: &MasterState,
    Gathered { node, imported }: Gathered,
) -> Result<(Compiled, crate::revision::Imported)> {
    let compiler = state.compiler.clone();
    let (certname, role) = (node.certname.clone(), node.role.clone());
    let products = products_of(state, &imported);
    let seconds = state.metrics.compile_seconds.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let content = compiler.compile(&node, &products);
        seconds.observe(started.elapsed().as_secs_f64());
        Ok(Compiled {
            content: content?,
            secret_files: products.take_resolved_secret_files(),
            level_sources: products.take_level_sources(),
        })
    })
    .await
    .map_err(Error::internal)?
    .map_err(|e: crate::compiler::CompileError| {
        let text = error_chain(&e);
        tracing::error!(node = %certname, role, error = %text, "catalog compilation failed");
        Error::FailedPrecondition(format!("cannot compile the catalog of {certname}: {text}"))
    })?;
    Ok((compiled, imported))
}

/// What compiles see of the imported products: the levels, the artifacts,
/// the site's secret files and the packs' own files (for edits).
pub(crate) async fn imported_products(state: &MasterState) -> Result<Products> {
    Ok(products_of(
        state,
        &crate::revision::Imported::read(state).await?,
    ))
}

/// [`imported_products`] from records already read.
fn products_of(state: &MasterState, imported: &crate::revision::Imported) -> Products {
    Products::from_records(&imported.trees)
        .with_artifacts(&imported.artifacts)
        .with_promotions(&imported.promotions)
        .with_secret_files(state.compiler.site().join("secrets/files"))
        .with_pack_files(Arc::new(state.pack_files.clone()))
}

/// One site role compiled by `masterctl module check --master`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCheck {
    /// The role.
    pub role: String,
    /// Resources of its catalog, or why it does not compile.
    pub result: std::result::Result<usize, String>,
}

/// Compiles every site role for a placeholder node against the imported
/// packs (edits applied to the product's own files at each role's level):
/// what `masterctl module check --master` reports.
pub async fn check_roles(state: &MasterState) -> Result<Vec<RoleCheck>> {
    let products = imported_products(state).await?;
    let compiler = state.compiler.clone();
    tokio::task::spawn_blocking(move || {
        compiler
            .site_roles()
            .into_iter()
            .map(|role| {
                let result = compiler
                    .check_role_with(&role, &products)
                    .map(|c| c.resources.len())
                    .map_err(|e| error_chain(&e));
                RoleCheck { role, result }
            })
            .collect()
    })
    .await
    .map_err(Error::internal)
}

/// Puts the secret files a compile resolved into the blob store (those it
/// lacks), so that FetchBlobs can serve them to this node.
async fn store_secret_files(state: &MasterState, files: BTreeMap<Digest, Vec<u8>>) -> Result<()> {
    let mut stored_any = false;
    for (digest, bytes) in files {
        if !state.blobs.has(&digest).await? {
            state.blobs.put(bytes).await?;
            stored_any = true;
        }
    }
    if stored_any {
        state.blobs.sync().await?;
    }
    Ok(())
}

/// For pinned content (not compiled now): the secret files it references
/// that the blob store lacks, found by digest in the site's `secrets/files/`.
async fn store_secret_files_from_site(state: &MasterState, content: &CatalogContent) -> Result<()> {
    let mut wanted = HashSet::new();
    for digest in content.resources.iter().filter_map(|r| match &r.spec {
        ResourceSpec::File(f) if f.secret => f.source,
        _ => None,
    }) {
        if !state.blobs.has(&digest).await? {
            wanted.insert(digest);
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let dir = state.compiler.site().join("secrets/files");
    let found =
        tokio::task::spawn_blocking(move || -> std::io::Result<BTreeMap<Digest, Vec<u8>>> {
            let mut found = BTreeMap::new();
            for entry in std::fs::read_dir(&dir)?.flatten() {
                let bytes = std::fs::read(entry.path())?;
                let digest = Digest::of(&bytes);
                if wanted.contains(&digest) {
                    found.insert(digest, bytes);
                }
            }
            Ok(found)
        })
        .await
        .map_err(Error::internal)?
        .map_err(|e| Error::Internal(format!("cannot read the site's secret files: {e}")))?;
    store_secret_files(state, found).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_report_is_bounded() {
        let resource = |message: String| rigger_common::report::ReportedOutcome {
            id: "conf".into(),
            status: "changed".into(),
            message,
            diff: String::new(),
        };
        let report = ReportRecord {
            resources: vec![resource("é".repeat(MAX_REPORTED_MESSAGE))],
            ..Default::default()
        };
        let bounded = bounded_report(report).unwrap();
        let message = &bounded.resources[0].message;
        assert!(message.len() < MAX_REPORTED_MESSAGE + 16 && message.ends_with("(cut)"));
        let flood = ReportRecord {
            resources: vec![resource(String::new()); MAX_REPORTED_RESOURCES + 1],
            ..Default::default()
        };
        assert!(matches!(
            bounded_report(flood),
            Err(Error::InvalidArgument(_))
        ));
        // A node's timings are bounded too: in count and in name length.
        let phase = |name: &str| rigger_common::report::PhaseTiming {
            phase: name.into(),
            micros: 1,
        };
        let timed = |timings| ReportRecord {
            timings,
            ..Default::default()
        };
        assert!(bounded_report(timed(vec![phase("catalog"); MAX_REPORTED_PHASES])).is_ok());
        for hostile in [
            vec![phase("catalog"); MAX_REPORTED_PHASES + 1],
            vec![phase(&"x".repeat(65))],
        ] {
            match bounded_report(timed(hostile)) {
                Err(Error::InvalidArgument(why)) => assert!(why.contains("timings"), "{why}"),
                other => panic!("accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn classification_follows_token_then_request_then_tag() {
        let tagged = json!({"ec2": {"tags": {"rigger:role": "apim"}}});
        let none = json!({});
        let check = |bound, asked, facts: &Value| classify("n1", bound, asked, facts);
        assert_eq!(check(Some("is"), None, &tagged).unwrap(), "is");
        assert_eq!(check(Some("is"), Some("is"), &none).unwrap(), "is");
        assert!(matches!(
            check(Some("is"), Some("apim"), &none),
            Err(Error::PermissionDenied(_))
        ));
        assert_eq!(check(None, Some("mi"), &tagged).unwrap(), "mi");
        assert_eq!(check(None, None, &tagged).unwrap(), "apim");
        assert!(matches!(
            check(None, None, &none),
            Err(Error::FailedPrecondition(_))
        ));
        // A role name from the node is a name, not text for the screens.
        let err = check(None, Some("is\u{1b}[2J"), &none).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert!(!err.to_string().contains('\u{1b}'), "{err}");
        let tagged_badly = json!({"ec2": {"tags": {"rigger:role": "../is"}}});
        assert!(matches!(
            check(None, None, &tagged_badly),
            Err(Error::InvalidArgument(_))
        ));
    }
}
