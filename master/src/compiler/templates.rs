//! Templates parsed once: a compile renders the same module templates and
//! the same `{{ … }}` fields for every node, and parsing them again each
//! time was a tenth of a compile. The parsed templates are kept in one
//! environment shared by a compiler's clones, by the template file's path
//! (parsed again when its text changes) or, for a field, by its text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use minijinja::Environment;

/// The most field templates kept; past it the environment starts again.
const MAX_FIELDS: usize = 10_000;

/// Parsed templates, shared by a compiler's clones.
pub struct Templates {
    env: RwLock<Environment<'static>>,
    /// Where template files are read from (kept while unchanged).
    files: Arc<super::files::SourceFiles>,
    /// The text each name was parsed from (a changed file is parsed again).
    sources: Mutex<HashMap<String, Arc<str>>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new(Default::default())
    }
}

impl Templates {
    /// Templates whose files are read through `files`.
    pub fn new(files: Arc<super::files::SourceFiles>) -> Self {
        Self {
            env: RwLock::new(super::render::environment()),
            files,
            sources: Default::default(),
        }
    }

    /// Where template files are read from.
    pub fn files(&self) -> &super::files::SourceFiles {
        &self.files
    }

    /// Renders the template file at `path` (its text `source`) with `context`.
    pub fn render_file(
        &self,
        path: &std::path::Path,
        source: &str,
        context: &minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        // The name ends as the template's own name does: the output format
        // (and so the escaping) is chosen by it.
        self.render(path.display().to_string(), source, context)
    }

    /// Renders a field's text (`"{{ product_home }}/bin"`) with `context`.
    pub fn render_field(
        &self,
        text: &str,
        context: &minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        use std::hash::{Hash, Hasher};
        let mut hash = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut hash);
        // No extension: a field is never escaped, as `render_str` does not.
        self.render(format!("<field {:016x}>", hash.finish()), text, context)
    }

    /// The environment, for what is not kept (expressions).
    pub fn environment(&self) -> std::sync::RwLockReadGuard<'_, Environment<'static>> {
        self.env.read().expect("templates")
    }

    fn render(
        &self,
        name: String,
        source: &str,
        context: &minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        // Bounded: another compile may put another text under the name (its
        // file changed in between); then this text is rendered unkept.
        for _ in 0..2 {
            {
                let env = self.env.read().expect("templates");
                let known = self
                    .sources
                    .lock()
                    .expect("template sources")
                    .get(&name)
                    .is_some_and(|kept| **kept == *source);
                if known {
                    return env.get_template(&name)?.render(context);
                }
            }
            self.add(&name, source)?;
        }
        let env = self.env.read().expect("templates");
        env.render_named_str(&name, source, context)
    }

    fn add(&self, name: &str, source: &str) -> Result<(), minijinja::Error> {
        let mut env = self.env.write().expect("templates");
        let mut sources = self.sources.lock().expect("template sources");
        if sources.len() >= MAX_FIELDS {
            *env = super::render::environment();
            sources.clear();
        }
        // A template that does not parse is not kept: the error is the
        // same as rendering it would give.
        env.add_template_owned(name.to_string(), source.to_string())?;
        sources.insert(name.to_string(), Arc::from(source));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_template_is_parsed_again_and_escapes_by_its_name() {
        let templates = Templates::default();
        let context = minijinja::Value::from_serialize(serde_json::json!({"v": "a\"b"}));
        let path = std::path::Path::new("/m/templates/x.toml.j2");
        assert_eq!(
            templates
                .render_file(path, "k = \"{{ v }}\"", &context)
                .unwrap(),
            "k = \"a\\\"b\""
        );
        assert_eq!(
            templates
                .render_file(path, "other = \"{{ v }}\"", &context)
                .unwrap(),
            "other = \"a\\\"b\""
        );
        assert_eq!(
            templates.render_field("{{ v }}/bin", &context).unwrap(),
            "a\"b/bin"
        );
        let broken = templates.render_file(path, "{{ v ", &context).unwrap_err();
        assert_eq!(broken.kind(), minijinja::ErrorKind::SyntaxError);
        // The last good text is not served for a broken one.
        assert!(templates.render_file(path, "{{ v ", &context).is_err());
    }
}
