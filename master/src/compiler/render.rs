//! Rendering: builds the template context and turns a profile's resource
//! declarations into catalog resources. Undefined values are errors
//! (minijinja strict mode), never empty strings.

use minijinja::{Environment, UndefinedBehavior};

use super::templates::Templates;

use super::escape::Format;
use rigger_common::catalog::{REDACTED, Resource, ResourceSpec, TreeSpec};
use serde_json::{Map, Value};
use toml::Table;

use super::module::{Module, Profile, ServiceInfo};
use super::{CompileError, NodeContext, Products, RestartKey, RoleSpec};

/// The template context: the merged data at top level, plus `self` (the
/// node: certname, hostname, ip), `role` and `facts`.
pub fn context(data: Table, role: &RoleSpec, node: &NodeContext, peers: Value) -> Value {
    let mut root = match serde_json::to_value(data) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let fact = |key: &str| node.facts.get(key).cloned().unwrap_or(Value::Null);
    let mut me = Map::new();
    me.insert("certname".into(), Value::String(node.certname.clone()));
    me.insert("hostname".into(), fact("hostname"));
    me.insert("ip".into(), fact("ip"));
    root.insert("self".into(), Value::Object(me));
    let mut role_value = serde_json::to_value(role).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut role_value {
        map.insert("name".into(), Value::String(node.role.clone()));
    }
    root.insert("role".into(), role_value);
    root.insert("facts".into(), node.facts.clone());
    root.insert("peers".into(), peers);
    Value::Object(root)
}

/// Adds `runtime` to the context: the profile's `[service]` metadata with
/// its strings rendered (`runtime.start_script`, `runtime.args`,
/// `runtime.health_url`, null when the profile has none). Absent when the
/// profile declares no service. Its fields are parsed once, in `env`.
pub fn add_runtime(
    context: &mut Value,
    service: Option<&ServiceInfo>,
    manifest: &std::path::Path,
    env: &Templates,
) -> Result<(), CompileError> {
    let Some(service) = service else {
        return Ok(());
    };
    let declared = toml::Value::try_from(service).map_err(|e| CompileError::Template {
        file: manifest.to_path_buf(),
        message: format!("[service]: {e}"),
    })?;
    let mut runtime =
        render_value(env, &declared, context).map_err(|e| CompileError::Template {
            file: manifest.to_path_buf(),
            message: format!("[service]: {}", describe(&e)),
        })?;
    if let Value::Object(map) = &mut runtime {
        map.entry("health_url").or_insert(Value::Null);
    }
    if let Value::Object(root) = context {
        root.insert("runtime".into(), runtime);
    }
    Ok(())
}

/// The environment every template renders in: strict about undefined
/// values, escaping by the output format the template's name ends with.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Errors carry the template source, so they can name what is undefined.
    env.set_debug(true);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|name| {
        Format::of(name)
            .map(Format::auto_escape)
            .unwrap_or_else(|| minijinja::default_auto_escape_callback(name))
    });
    // `{{ value | xml }}`: a value inside an XML fragment of an edits file
    // (the edits file's own format, TOML, is escaped on top).
    env.add_filter("xml", |value: String| super::edit::escape_xml(&value));
    // `{{ password | b64encode }}`: the analytics runtimes keep their local
    // users' passwords base64-encoded.
    env.add_filter("b64encode", |value: String| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(value)
    });
    env.set_formatter(|out, state, value| {
        let Some(format) = Format::from_auto_escape(state.auto_escape()) else {
            return minijinja::escape_formatter(out, state, value);
        };
        let text = if value.is_none() || value.is_undefined() {
            String::new()
        } else {
            value.to_string()
        };
        // Strings are escaped; numbers, booleans and safe text (`tojson`) are not.
        let text = if value.as_str().is_some() && !value.is_safe() {
            format
                .escape(&text)
                .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))?
        } else {
            text
        };
        out.write_str(&text)
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
    });
    env
}

/// Renders every resource declaration of `profile`.
pub fn resources(
    module: &Module,
    profile: &Profile,
    context: &Value,
    (products, secrets): (&Products, &Table),
    (restart_key, env): (&RestartKey, &Templates),
) -> Result<Vec<Resource>, CompileError> {
    let manifest = module.manifest_path();
    let mut skipped = Vec::new();
    let mut rendered_resources = Vec::new();
    let mut errors = Vec::new();
    // The same context with every secret replaced: a file whose rendering
    // differs under it holds a secret.
    let masked = masked_secrets(context, secrets);
    let masked = masked.as_ref().map(Ctx::of);
    // The same context without peers: a file whose rendering without them
    // is unchanged changed only because of its peer lists.
    // A node with no peers renders the same without them: no second rendering.
    let no_peers = has_peers(context).then(|| without_peers(context));
    let no_peers = no_peers.as_ref().map(Ctx::of);
    let context = Ctx::of(context);
    let (bases, mut trees) = tree_bases(env, module, profile, &context, products);
    for (index, declaration) in profile.resources.iter().enumerate() {
        let id = declaration
            .get("id")
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_string();
        let origin = profile.origins.get(index).unwrap_or(&manifest);
        if let Some(condition) = declaration.get("when") {
            match render_value_in(env, condition, &context.converted) {
                Ok(value) if !is_true(&value) => {
                    skipped.push(id);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    errors.push(CompileError::Resource {
                        file: origin.clone(),
                        id: id.clone(),
                        message: format!("field \"when\": {}", describe(&e)),
                    });
                    continue;
                }
            }
        }
        // Render every resource, so that one run reports every error.
        let declared = Declared {
            env,
            module,
            manifest: origin,
            index,
            table: declaration,
            products,
            bases: &bases,
        };
        // A tree rendered for the bases is not rendered again.
        let rendered = match trees.remove(&index) {
            Some(tree) => Ok(tree),
            None => declared.render(&context),
        };
        match rendered {
            Ok(resource) if rendered_size(&resource) > MAX_RENDERED_BYTES => {
                errors.push(CompileError::Resource {
                    file: origin.clone(),
                    id: id.clone(),
                    message: format!(
                        "renders {} bytes, more than the {MAX_RENDERED_BYTES} a rendered file may have (ship large files in the pack or as an artifact)",
                        rendered_size(&resource)
                    ),
                });
            }
            Ok(mut resource) => {
                if let Some(masked) = &masked {
                    mark_secret(&declared, masked, &mut resource);
                }
                set_restart_key(&declared, no_peers.as_ref(), restart_key, &mut resource);
                rendered_resources.push(resource)
            }
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => {}
        1 => return Err(errors.remove(0)),
        _ => return Err(CompileError::Several(errors)),
    }
    subscribe(profile, &manifest, &mut rendered_resources, &skipped)?;
    // Dependencies on resources left out by `when` are dropped with them.
    for resource in &mut rendered_resources {
        resource.requires.retain(|r| !skipped.contains(r));
        resource.notifies.retain(|r| !skipped.contains(r));
    }
    Ok(rendered_resources)
}

/// The markers (of [`super::credentials::marked_context`]) that appear in
/// what `profile` renders under `context`: the credentials the node's
/// configuration uses. A declaration that does not render under the
/// markers tells nothing.
pub fn used_markers(
    module: &Module,
    profile: &Profile,
    context: &Value,
    products: &Products,
    markers: &std::collections::BTreeMap<String, String>,
    env: &Templates,
) -> Vec<String> {
    let manifest = module.manifest_path();
    let mut used = Vec::new();
    let context = Ctx::of(context);
    let (bases, _) = tree_bases(env, module, profile, &context, products);
    for (index, declaration) in profile.resources.iter().enumerate() {
        if used.len() == markers.len() {
            break;
        }
        if let Some(condition) = declaration.get("when") {
            if !render_value_in(env, condition, &context.converted).is_ok_and(|v| is_true(&v)) {
                continue;
            }
        }
        let declared = Declared {
            env,
            module,
            manifest: profile.origins.get(index).unwrap_or(&manifest),
            index,
            table: declaration,
            products,
            bases: &bases,
        };
        let Ok(resource) = declared.render(&context) else {
            continue;
        };
        let text = serde_json::to_string(&resource).unwrap_or_default();
        for (marker, key) in markers {
            // A credential also counts as used when a template encodes it.
            let found = encodings(marker).iter().any(|m| text.contains(m.as_str()));
            if found && !used.contains(key) {
                used.push(key.clone());
            }
        }
    }
    used
}

/// The profile's trees (those `when` keeps) rendered by id: the bases of
/// files edited `from` them; and the same trees' resources by their index
/// in the profile. A tree that does not render is left out here; the main
/// pass reports its error.
fn tree_bases(
    env: &Templates,
    module: &Module,
    profile: &Profile,
    context: &Ctx<'_>,
    products: &Products,
) -> (Bases, std::collections::HashMap<usize, Resource>) {
    let manifest = module.manifest_path();
    let none = Bases::new();
    let mut bases = Bases::new();
    let mut trees = std::collections::HashMap::new();
    for (index, declaration) in profile.resources.iter().enumerate() {
        if declaration.get("kind").and_then(toml::Value::as_str) != Some("tree") {
            continue;
        }
        if let Some(condition) = declaration.get("when") {
            if !render_value_in(env, condition, &context.converted).is_ok_and(|v| is_true(&v)) {
                continue;
            }
        }
        let declared = Declared {
            env,
            module,
            manifest: profile.origins.get(index).unwrap_or(&manifest),
            index,
            table: declaration,
            products,
            bases: &none,
        };
        if let Ok(resource) = declared.render(context) {
            if let ResourceSpec::Tree(tree) = &resource.spec {
                bases.insert(resource.id.clone(), tree.clone());
                trees.insert(index, resource);
            }
        }
    }
    (bases, trees)
}

/// `subscribes = ["id", …]` (a resource refreshed when another changes,
/// which may be declared by a library that does not know it): becomes a
/// notification from each named resource. Naming a resource that does not
/// exist is an error; one left out by `when` is no subscription.
fn subscribe(
    profile: &Profile,
    manifest: &std::path::Path,
    resources: &mut [Resource],
    skipped: &[String],
) -> Result<(), CompileError> {
    for (index, declaration) in profile.resources.iter().enumerate() {
        let Some(subscribes) = declaration.get("subscribes") else {
            continue;
        };
        let id = declaration
            .get("id")
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_string();
        let origin = profile.origins.get(index).map_or(manifest, |p| p.as_path());
        let error = |message: String| CompileError::Resource {
            file: origin.to_path_buf(),
            id: id.clone(),
            message,
        };
        if skipped.contains(&id) {
            continue;
        }
        let names = subscribes
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(toml::Value::as_str)
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| error("field \"subscribes\" must be a list of resource ids".into()))?;
        for name in names {
            if skipped.iter().any(|s| s == name) {
                continue;
            }
            let target = resources.iter_mut().find(|r| r.id == name).ok_or_else(|| {
                error(format!(
                    "subscribes to {name:?}, which is not a resource of this profile"
                ))
            })?;
            if !target.notifies.contains(&id) {
                target.notifies.push(id.clone());
            }
        }
    }
    Ok(())
}

/// Stands in for every secret value in the masked rendering: plain text,
/// so that no output format escapes it.
const SECRET_MASK: &str = "rigger-secret-value-mask";

/// A value as it may appear in a rendering: as is, and as the template
/// filters that encode values (`b64encode`) write it.
fn encodings(value: &str) -> [String; 2] {
    use base64::Engine as _;
    [
        value.to_string(),
        base64::engine::general_purpose::STANDARD.encode(value),
    ]
}

/// The context with every value the secrets files set replaced by a mask.
fn masked_secrets(context: &Value, secrets: &Table) -> Option<Value> {
    fn mask(target: &mut Value, secret: &toml::Value) {
        match (target, secret) {
            (Value::Object(map), toml::Value::Table(table)) => {
                for (key, inner) in table {
                    if let Some(t) = map.get_mut(key) {
                        mask(t, inner);
                    }
                }
            }
            (target, _) => *target = Value::String(SECRET_MASK.into()),
        }
    }
    if secrets.is_empty() {
        return None;
    }
    let mut masked = context.clone();
    mask(&mut masked, &toml::Value::Table(secrets.clone()));
    Some(masked)
}

/// Whether any of the context's peer lists holds a node.
fn has_peers(context: &Value) -> bool {
    context
        .get("peers")
        .and_then(Value::as_object)
        .is_some_and(|peers| {
            peers
                .values()
                .any(|list| list.as_array().is_none_or(|l| !l.is_empty()))
        })
}

fn without_peers(context: &Value) -> Value {
    let mut copy = context.clone();
    if let Some(Value::Object(peers)) = copy.get_mut("peers") {
        for list in peers.values_mut() {
            *list = Value::Array(Vec::new());
        }
    }
    copy
}

/// One resource declaration of a profile, ready to render with a context.
struct Declared<'a> {
    env: &'a Templates,
    module: &'a Module,
    manifest: &'a std::path::Path,
    index: usize,
    table: &'a Table,
    products: &'a Products,
    /// The profile's trees by id, for files edited `from` one.
    bases: &'a Bases,
}

/// The profile's rendered trees by resource id.
type Bases = std::collections::BTreeMap<String, TreeSpec>;

/// A render context, and the same converted to minijinja's values once:
/// converting the whole context (data, facts, peers) at every field and
/// template was most of a compile's time.
struct Ctx<'a> {
    json: &'a Value,
    converted: minijinja::Value,
}

impl<'a> Ctx<'a> {
    fn of(json: &'a Value) -> Self {
        Self {
            json,
            converted: minijinja::Value::from_serialize(json),
        }
    }
}

impl Declared<'_> {
    fn render(&self, context: &Ctx<'_>) -> Result<Resource, CompileError> {
        render_resource(self, context)
    }

    /// The file this declaration renders to under another context, if it renders.
    fn file_under(&self, context: &Ctx<'_>) -> Option<rigger_common::catalog::FileSpec> {
        match self.render(context).ok()?.spec {
            rigger_common::catalog::ResourceSpec::File(f) => Some(f),
            _ => None,
        }
    }

    /// The content of a file without a `source` under another context, if
    /// it renders: what secret detection and the restart key compare.
    /// Renders only what the content comes from (the template and its
    /// `vars`; the edits with `from` and `path`; or the `content` field),
    /// not the declaration's other fields.
    fn content_under(&self, context: &Ctx<'_>) -> Option<String> {
        let field = |key: &str| -> Option<Option<Value>> {
            match self.table.get(key) {
                None => Some(None),
                Some(value) => render_value_in(self.env, value, &context.converted)
                    .ok()
                    .map(Some),
            }
        };
        match (self.table.get("template"), self.table.get("edits")) {
            (Some(_), Some(_)) => None,
            (Some(name), None) => template_content(self, name.as_str()?, field("vars")?, context)
                .ok()?
                .ok(),
            (None, Some(name)) => {
                let mut rendered = Map::new();
                for key in ["id", "from", "path"] {
                    if let Some(value) = field(key)? {
                        rendered.insert(key.into(), value);
                    }
                }
                edited(self, name.as_str()?, &mut rendered, &context.converted).ok()
            }
            (None, None) => match field("content")? {
                Some(Value::String(content)) => Some(content),
                None => Some(String::new()),
                Some(_) => None,
            },
        }
    }
}

/// The most a rendered file may hold: catalogs travel in one gRPC message
/// (4 MiB), and large content belongs in the pack or an artifact.
pub const MAX_RENDERED_BYTES: usize = 1 << 20;

/// The inline content a resource carries.
fn rendered_size(resource: &Resource) -> usize {
    match &resource.spec {
        rigger_common::catalog::ResourceSpec::File(f) => f.content.len(),
        _ => 0,
    }
}

/// Gives a file the keyed digest of its rendering without peers, unless
/// the module says a peer change needs a restart (`restart_on_peer_change`).
/// A template that cannot render without peers gets no key: any change
/// restarts. `no_peers` is `None` when the context has no peers: the
/// rendering without them is the resource itself.
fn set_restart_key(
    declared: &Declared<'_>,
    no_peers: Option<&Ctx<'_>>,
    key: &RestartKey,
    resource: &mut Resource,
) {
    let rigger_common::catalog::ResourceSpec::File(file) = &mut resource.spec else {
        return;
    };
    let restarts = declared
        .table
        .get("restart_on_peer_change")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    if restarts {
        return;
    }
    let keyed = |o: &rigger_common::catalog::FileSpec| match &o.source {
        Some(source) => key.of(source.as_bytes()),
        None => key.of(o.content.as_bytes()),
    };
    file.restart_key = match no_peers {
        // A file from a source (an artifact, a secret file) is keyed by
        // the source it resolves to: the whole declaration renders.
        Some(no_peers) if file.source.is_some() => {
            declared.file_under(no_peers).as_ref().map(keyed)
        }
        Some(no_peers) => declared
            .content_under(no_peers)
            .map(|content| key.of(content.as_bytes())),
        None => Some(keyed(file)),
    };
}

/// Marks a file resource secret when its rendering depends on a secret (a
/// rendering that fails with secrets masked counts as depending on one),
/// and keeps the masked rendering, with [`REDACTED`] for each secret value,
/// for diffs and screens.
fn mark_secret(declared: &Declared<'_>, masked: &Ctx<'_>, resource: &mut Resource) {
    let rigger_common::catalog::ResourceSpec::File(file) = &mut resource.spec else {
        return;
    };
    if file.source.is_some() {
        return;
    }
    let masked_content = declared.content_under(masked);
    match masked_content {
        Some(content) if content == file.content => {}
        Some(content) => {
            let [plain, encoded] = encodings(SECRET_MASK);
            file.redacted_content = Some(
                content
                    .replace(&plain, REDACTED)
                    .replace(&encoded, REDACTED),
            );
            mark(file);
        }
        None => mark(file),
    }
}

fn mark(file: &mut rigger_common::catalog::FileSpec) {
    if !file.secret {
        file.secret = true;
        if file.mode.is_none() {
            file.mode = Some(0o600);
        }
    }
}

/// Whether a rendered `when` holds: anything but false, "false", "", "0" or null.
fn is_true(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Null => false,
        Value::String(s) => !matches!(s.trim(), "" | "false" | "False" | "0"),
        Value::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

fn render_resource(declared: &Declared<'_>, context: &Ctx<'_>) -> Result<Resource, CompileError> {
    let Declared {
        env,
        manifest,
        index,
        table: declaration,
        products,
        ..
    } = *declared;
    let id = declaration
        .get("id")
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("#{}", index + 1));
    let resource_error = |message: String| CompileError::Resource {
        file: manifest.to_path_buf(),
        id: id.clone(),
        message,
    };
    let converted = &context.converted;
    let mut rendered = Map::new();
    for (key, value) in declaration {
        if matches!(
            key.as_str(),
            "template" | "when" | "restart_on_peer_change" | "subscribes" | "edits"
        ) {
            continue;
        }
        let value = render_value_in(env, value, converted)
            .map_err(|e| resource_error(format!("field {key:?}: {}", describe(&e))))?;
        rendered.insert(key.clone(), value);
    }
    if let Some(name) = declaration.get("template") {
        let name = name
            .as_str()
            .ok_or_else(|| resource_error("field \"template\" must be a string".into()))?;
        let content = template_content(declared, name, rendered.remove("vars"), context)?
            .map_err(resource_error)?;
        rendered.insert("content".into(), Value::String(content));
    }
    if let Some(name) = declaration.get("edits") {
        let name = name
            .as_str()
            .ok_or_else(|| resource_error("field \"edits\" must be a string".into()))?;
        if rendered.contains_key("content") {
            return Err(resource_error(
                "a file has either a template or edits, not both".into(),
            ));
        }
        let content = edited(declared, name, &mut rendered, converted)?;
        rendered.insert("content".into(), Value::String(content));
    } else if rendered.contains_key("from") {
        return Err(resource_error(
            "field \"from\" names the tree whose file `edits` change: it needs `edits`".into(),
        ));
    }
    match rendered.get("kind").and_then(Value::as_str) {
        Some("tree") => products
            .resolve_into(&mut rendered)
            .map_err(resource_error)?,
        Some("file") => products
            .resolve_artifact(&mut rendered)
            .and_then(|()| products.resolve_secret_file(&mut rendered))
            .map_err(resource_error)?,
        _ => {}
    }
    if let Some(mode) = rendered.get("mode").cloned() {
        rendered.insert("mode".into(), parse_mode(&mode).map_err(resource_error)?);
    }
    serde_json::from_value(Value::Object(rendered)).map_err(|e| resource_error(e.to_string()))
}

/// The rendering of template `name` under `context` extended by the
/// declaration's `vars` (already rendered), checked as its format's text.
/// The outer error is the template's; the inner one a field's (`vars` not
/// a table).
fn template_content(
    declared: &Declared<'_>,
    name: &str,
    vars: Option<Value>,
    context: &Ctx<'_>,
) -> Result<Result<String, String>, CompileError> {
    let (path, source) = template_of(declared, name)?;
    // `vars` extend the context of this template only.
    let local;
    let template_context = match vars {
        Some(Value::Object(vars)) => {
            let mut extended = context.json.clone();
            if let Value::Object(root) = &mut extended {
                root.extend(vars);
            }
            local = minijinja::Value::from_serialize(&extended);
            &local
        }
        Some(_) => return Ok(Err("field \"vars\" must be a table".into())),
        None => &context.converted,
    };
    let content = declared
        .env
        .render_file(&path, &source, template_context)
        .map_err(|e| CompileError::Template {
            file: path.clone(),
            message: describe(&e),
        })?;
    if let Some(format) = Format::of(name) {
        format
            .check_rendered(name, &content)
            .map_err(|message| CompileError::Template {
                file: path,
                message,
            })?;
    }
    Ok(Ok(content))
}

/// A template of the module (a library's resources name templates of the
/// library), read through the compiler's kept files.
fn template_of(
    declared: &Declared<'_>,
    name: &str,
) -> Result<(std::path::PathBuf, std::sync::Arc<str>), CompileError> {
    let dir = match declared.manifest.parent() {
        Some(dir) if dir != declared.module.dir => dir,
        _ => declared.module.dir.as_path(),
    };
    let path = super::module::template_path_in(dir, name)?;
    match declared.env.files().text(&path)? {
        Some((source, _)) => Ok((path, source)),
        None => Err(CompileError::Read {
            source: std::io::Error::from_raw_os_error(nix::errno::Errno::ENOENT as i32),
            path,
        }),
    }
}

/// The content of a file declared with `edits = NAME` and `from = TREE`:
/// the edits template rendered and parsed, applied to the file at the same
/// place in the tree as the product ships it.
fn edited(
    declared: &Declared<'_>,
    name: &str,
    rendered: &mut Map<String, Value>,
    context: &minijinja::Value,
) -> Result<String, CompileError> {
    let id = rendered
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let resource_error = |message: String| CompileError::Resource {
        file: declared.manifest.to_path_buf(),
        id: id.clone(),
        message,
    };
    let from = match rendered.remove("from") {
        Some(Value::String(id)) => id,
        _ => {
            return Err(resource_error(
                "a file with `edits` needs `from`, the id of the tree resource whose file it edits"
                    .into(),
            ));
        }
    };
    let base = declared.bases.get(&from).ok_or_else(|| {
        resource_error(format!(
            "from = {from:?} names no tree resource of this profile"
        ))
    })?;
    let path = rendered
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let relative = path
        .strip_prefix(base.link.trim_end_matches('/'))
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|rest| !rest.is_empty())
        .ok_or_else(|| {
            resource_error(format!(
                "path {path:?} is not inside the tree {from:?} ({})",
                base.link
            ))
        })?
        .to_string();
    let format = super::edit::EditFormat::of(&relative).ok_or_else(|| {
        resource_error(format!(
            "{relative}: edits apply to XML, TOML, YAML, JSON and properties files"
        ))
    })?;
    let (template_path, source) = template_of(declared, name)?;
    let template_error = |message: String| CompileError::Template {
        file: template_path.clone(),
        message,
    };
    let text = declared
        .env
        .render_file(&template_path, &source, context)
        .map_err(|e| template_error(describe(&e)))?;
    let edits = super::edit::parse(&text).map_err(template_error)?;
    let file = super::products::TreeFile {
        product: &base.product,
        version: &base.version,
        level: base.level,
        tree: base.tree,
        path: &relative,
    };
    let original = declared
        .products
        .product_file(&file)
        .map_err(|message| CompileError::Edit {
            file: template_path.clone(),
            message,
        })?;
    super::edit::apply(format, &original, &edits).map_err(|e| CompileError::Edit {
        file: template_path.clone(),
        message: format!(
            "{e} in {file} ({})",
            declared.products.describe_files(&file)
        ),
    })
}

fn render_value(
    env: &Templates,
    value: &toml::Value,
    context: &Value,
) -> Result<Value, minijinja::Error> {
    render_value_in(env, value, &minijinja::Value::from_serialize(context))
}

/// [`render_value`] with the context already converted to minijinja's
/// values: converting the whole context (data, facts, peers) at every
/// field and template was most of a compile's time, so a resource's
/// rendering converts it once.
fn render_value_in(
    env: &Templates,
    value: &toml::Value,
    context: &minijinja::Value,
) -> Result<Value, minijinja::Error> {
    // A field that is one whole expression keeps the expression's type
    // (a number, a list, a table from data), not its text.
    if let Some(expression) = value.as_str().and_then(whole_expression) {
        let result = env
            .environment()
            .compile_expression(expression)?
            .eval(context)?;
        if result.is_undefined() {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::UndefinedError,
                format!("{{{{ {expression} }}}} is undefined"),
            ));
        }
        return Ok(serde_json::to_value(&result).unwrap_or(Value::Null));
    }
    Ok(match value {
        toml::Value::String(s) if s.contains("{{") || s.contains("{%") => {
            Value::String(env.render_field(s, context)?)
        }
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value_in(env, v, context))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), render_value_in(env, v, context)?)))
                .collect::<Result<_, minijinja::Error>>()?,
        ),
        other => serde_json::to_value(other).unwrap_or(Value::Null),
    })
}

/// The expression of a field written as exactly `{{ expression }}`.
fn whole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then(|| inner.trim())
}

/// Modes are written as octal strings (`"0640"`) or TOML octal integers (`0o640`).
fn parse_mode(value: &Value) -> Result<Value, String> {
    let mode = match value {
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map_err(|_| format!("mode {s:?} is not an octal number such as \"0644\""))?,
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("mode {n} is not a valid mode"))?,
        other => {
            return Err(format!(
                "mode {other} must be an octal string such as \"0644\""
            ));
        }
    };
    if mode > 0o7777 {
        return Err(format!("mode {mode:o} has bits beyond 07777"));
    }
    Ok(Value::from(mode))
}

/// A minijinja error as one line: what went wrong and where.
fn describe(err: &minijinja::Error) -> String {
    let mut text = match err.line() {
        Some(line) => format!("line {line}: {}", err.kind()),
        None => err.kind().to_string(),
    };
    // Name the expression that is undefined (`db.url`), not only the line.
    let expression = err
        .template_source()
        .zip(err.range())
        .and_then(|(source, range)| source.get(range))
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if let (minijinja::ErrorKind::UndefinedError, Some(expression)) = (err.kind(), expression) {
        text.push_str(&format!(
            ": `{expression}` is not set by any data layer (`masterctl lookup NODE KEY` shows where a value comes from)"
        ));
    }
    if let Some(detail) = err.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_from_octal_strings_and_integers() {
        assert_eq!(
            parse_mode(&Value::from("0640")).unwrap(),
            Value::from(0o640)
        );
        assert_eq!(parse_mode(&Value::from(0o755)).unwrap(), Value::from(0o755));
        assert!(parse_mode(&Value::from("rw-r--r--")).is_err());
        assert!(parse_mode(&Value::from("77777")).is_err());
    }

    #[test]
    fn undefined_values_are_errors_with_a_line() {
        let env = environment();
        let err = env
            .render_named_str("t.j2", "a\n{{ missing.value }}\n", serde_json::json!({}))
            .unwrap_err();
        let text = describe(&err);
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("undefined"), "{text}");
        assert!(text.contains("`missing.value` is not set"), "{text}");
    }
}
