//! Sample WSO2-like product packs for tests, the demo and the benchmarks:
//! a zip with a `NAME-VERSION/` top folder, a start script, configuration,
//! `updates/config.json` and many binary files, all deterministic so that an
//! "update" changes exactly the files it says.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use zip::write::SimpleFileOptions;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SamplePack {
    /// Product name (`wso2is`).
    pub name: String,
    /// Version (`5.11.0`).
    pub version: String,
    /// Number of binary files.
    pub files: usize,
    /// Their total size in bytes (spread unevenly over the files).
    pub bytes: u64,
    /// Update level written to `updates/config.json` (0 = GA).
    pub level: u32,
    /// Per mille of the binary files whose content this level changes
    /// (relative to level 0); the same files for every level.
    pub changed_per_mille: u32,
    /// The stand-in server the start script runs (servers start with a
    /// clean environment, so the script names it).
    pub server: PathBuf,
    /// The modules folder whose `*/reference/NAME-VERSION/` files (the
    /// product's configuration files, as the modules know them) the pack
    /// carries; `None` for none.
    pub reference: Option<PathBuf>,
    /// Files whose content a test replaces (path inside the top folder → content).
    pub overrides: std::collections::BTreeMap<String, String>,
}

/// The repository's `modules/` folder (reference files of the products).
fn modules_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules");
    dir.is_dir().then_some(dir)
}

/// Where an XML-era product keeps carbon.xml (IS 5.x, then EI 6.x): the
/// file an update level changes in such a pack.
const CARBON_XML: [&str; 2] = ["repository/conf/carbon.xml", "conf/carbon.xml"];

/// `rigger-sample-server` of this build: beside the running program (the
/// `sample-pack` tool), or one folder up (a test executable in `deps/`).
fn sample_server() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let beside = exe.with_file_name("rigger-sample-server");
    if beside.exists() {
        return beside;
    }
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("rigger-sample-server"))
        .unwrap_or(beside)
}

impl SamplePack {
    /// A small IS-like pack: `files` binary files, `bytes` in total.
    pub fn new(files: usize, bytes: u64) -> Self {
        Self {
            name: "wso2is".into(),
            version: "5.11.0".into(),
            files,
            bytes,
            level: 0,
            changed_per_mille: 0,
            server: sample_server(),
            reference: modules_dir(),
            overrides: Default::default(),
        }
    }

    /// The same pack for another product and version.
    pub fn of(&self, name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            ..self.clone()
        }
    }

    /// The same pack with `path`'s content replaced.
    pub fn with_file(&self, path: &str, content: &str) -> Self {
        let mut pack = self.clone();
        pack.overrides.insert(path.into(), content.into());
        pack
    }

    /// The reference configuration files for this product and version
    /// (path inside the pack → content), sorted.
    pub fn reference_files(&self) -> Vec<(String, String)> {
        let Some(modules) = &self.reference else {
            return Vec::new();
        };
        let folder_name = format!("{}-{}", self.name, self.version);
        let mut files = Vec::new();
        let Ok(modules) = std::fs::read_dir(modules) else {
            return files;
        };
        for module in modules.flatten() {
            let root = module.path().join("reference").join(&folder_name);
            collect(&root, &root, &mut files);
        }
        files.sort();
        files
    }

    /// Whether the product is configured by XML files (IS 5.4–5.8, EI 6.x):
    /// its reference files have a `carbon.xml` and no `deployment.toml`.
    pub fn is_xml_era(&self) -> bool {
        self.carbon_xml().is_some()
    }

    /// The reference `carbon.xml` (path, content) of an XML-era product.
    fn carbon_xml(&self) -> Option<(String, String)> {
        let files = self.reference_files();
        if files
            .iter()
            .any(|(p, _)| p.ends_with("conf/deployment.toml"))
        {
            return None;
        }
        files
            .into_iter()
            .find(|(p, _)| CARBON_XML.contains(&p.as_str()))
    }

    /// The configuration file an update level changes, with its content at
    /// this level: `carbon.xml` of an XML-era product (the level raises
    /// `MaxThreadExecutionTime` by the level), else `deployment.toml`.
    pub fn level_config(&self) -> (String, String) {
        if let Some((path, original)) = self.carbon_xml() {
            let content = if self.level > 0 {
                original.replace(
                    "<MaxThreadExecutionTime>600</MaxThreadExecutionTime>",
                    &format!(
                        "<!-- changed by update level {0} -->\n    <MaxThreadExecutionTime>{1}</MaxThreadExecutionTime>",
                        self.level,
                        600 + self.level
                    ),
                )
            } else {
                original
            };
            return (path, content);
        }
        (self.deployment_toml_path(), self.default_config())
    }

    /// The same pack at update `level`, changing `per_mille` ‰ of its files.
    pub fn at_level(&self, level: u32, per_mille: u32) -> Self {
        Self {
            level,
            changed_per_mille: per_mille,
            ..self.clone()
        }
    }

    /// Relative path of binary file `i` (inside the top folder).
    pub fn file_path(i: usize) -> String {
        match i % 4 {
            0 => format!("repository/components/plugins/org.wso2.sample.p{i}_1.0.{i}.jar"),
            1 => format!("repository/components/lib/lib{i}.jar"),
            2 => format!("lib/runtimes/cxf3/lib{i}.jar"),
            _ => format!("repository/deployment/server/webapps/app{i}/WEB-INF/lib/w{i}.jar"),
        }
    }

    /// Whether this level changes binary file `i`.
    pub fn changes(&self, i: usize) -> bool {
        self.level > 0 && (i as u64 * 7919 % 1000) < u64::from(self.changed_per_mille)
    }

    fn size_of(&self, i: usize) -> usize {
        // Sizes vary 1..3 × the mean, like jars do; the total stays close to `bytes`.
        let mean = self.bytes / self.files.max(1) as u64;
        let factor = [2, 1, 6, 3, 1, 5, 2, 4][i % 8];
        (mean * factor / 3).max(1) as usize
    }

    /// The content of binary file `i` at this level.
    pub fn content(&self, i: usize) -> Vec<u8> {
        let variant = if self.changes(i) {
            u64::from(self.level)
        } else {
            0
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64((i as u64) << 16 | variant);
        let mut data = vec![0u8; self.size_of(i)];
        rng.fill_bytes(&mut data);
        data
    }

    /// `bin/wso2server.sh`: runs the stand-in server [`SamplePack::server`].
    pub fn start_script(&self) -> String {
        format!(
            "#!/bin/sh\n# {}-{} start script (sample, level {})\nexec '{}' \"${{CARBON_HOME:-$(cd \"$(dirname \"$0\")/..\" && pwd)}}\"\n",
            self.name,
            self.version,
            self.level,
            self.server.display().to_string().replace('\'', "'\\''")
        )
    }

    /// Where the product keeps `deployment.toml`: `conf/` for Micro
    /// Integrator (as its reference files say), `repository/conf/` otherwise.
    pub fn deployment_toml_path(&self) -> String {
        self.reference_files()
            .into_iter()
            .map(|(p, _)| p)
            .find(|p| p.ends_with("conf/deployment.toml"))
            .unwrap_or_else(|| "repository/conf/deployment.toml".into())
    }

    /// The pack's own `deployment.toml`: the modules' reference file for
    /// this product and version when there is one (an update level adds a
    /// setting, as real updates do).
    pub fn default_config(&self) -> String {
        let mut text = self
            .reference_files()
            .into_iter()
            .find(|(p, _)| p.ends_with("conf/deployment.toml"))
            .map(|(_, c)| c)
            .unwrap_or_else(|| {
                "# the pack's own default configuration\n[server]\nhostname = \"localhost\"\n"
                    .into()
            });
        if self.level > 0 {
            text.push_str(&format!(
                "\n# added by update level {}\n[server.security]\nhsts_enabled = true\n",
                self.level
            ));
        }
        text
    }

    /// Writes the pack as a zip at `out`.
    pub fn write_zip(&self, out: &Path) -> std::io::Result<()> {
        let top = format!("{}-{}", self.name, self.version);
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(std::fs::File::create(out)?));
        let text =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        let binary =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let io = |e: zip::result::ZipError| std::io::Error::other(e.to_string());
        zip.add_directory(format!("{top}/"), text).map_err(io)?;
        let script = self.start_script();
        zip.start_file(
            format!("{top}/bin/wso2server.sh"),
            text.unix_permissions(0o755),
        )
        .map_err(io)?;
        zip.write_all(script.as_bytes())?;
        // The other products' start scripts run the same stand-in.
        for other in ["api-manager.sh", "micro-integrator.sh", "integrator.sh"] {
            zip.start_file(format!("{top}/bin/{other}"), text.unix_permissions(0o755))
                .map_err(io)?;
            zip.write_all(b"#!/bin/sh\nexec \"$(dirname \"$0\")/wso2server.sh\" \"$@\"\n")?;
        }
        // The product's configuration files; one of them changes with the level.
        let (level_path, level_content) = self.level_config();
        let mut configs: std::collections::BTreeMap<String, String> =
            self.reference_files().into_iter().collect();
        configs.insert(level_path, level_content);
        for (path, content) in &self.overrides {
            configs.insert(path.clone(), content.clone());
        }
        for (path, content) in configs {
            zip.start_file(format!("{top}/{path}"), text).map_err(io)?;
            zip.write_all(content.as_bytes())?;
        }
        zip.start_file(format!("{top}/updates/config.json"), text)
            .map_err(io)?;
        zip.write_all(
            format!(
                "{{\"update-level\": \"{}\", \"channel\": \"full\"}}\n",
                self.level
            )
            .as_bytes(),
        )?;
        zip.start_file(format!("{top}/dbscripts/mysql.sql"), text)
            .map_err(io)?;
        zip.write_all(
            b"CREATE TABLE IF NOT EXISTS REG_CLUSTER_LOCK (REG_LOCK_NAME VARCHAR (20));\n",
        )?;
        for i in 0..self.files {
            zip.start_file(format!("{top}/{}", Self::file_path(i)), binary)
                .map_err(io)?;
            zip.write_all(&self.content(i))?;
        }
        zip.finish().map_err(io)?.flush()
    }
}

/// Every file under `dir` as (path relative to `root`, content).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let (Ok(relative), Ok(content)) =
            (path.strip_prefix(root), std::fs::read_to_string(&path))
        {
            out.push((relative.to_string_lossy().into_owned(), content));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_changes_about_the_asked_share_of_files() {
        let ga = SamplePack::new(1000, 1 << 20);
        let update = ga.at_level(3, 20);
        let changed = (0..1000).filter(|&i| update.changes(i)).count();
        assert!((15..=25).contains(&changed), "{changed}");
        let i = (0..1000).find(|&i| update.changes(i)).unwrap();
        assert_ne!(ga.content(i), update.content(i));
        let j = (0..1000).find(|&j| !update.changes(j)).unwrap();
        assert_eq!(ga.content(j), update.content(j));
    }
}
