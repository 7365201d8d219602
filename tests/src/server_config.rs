//! What the stand-in WSO2 server reads from the configuration it is started
//! with, and the checks a real server would fail on. A 4.x product reads
//! `repository/conf/deployment.toml` (MI: `conf/`; it must parse, and its top-level
//! tables must be ones WSO2 products know); an XML-era product (IS 5.4–5.8,
//! EI 6.x: no `deployment.toml`) reads `carbon.xml`, `axis2.xml`,
//! `user-mgt.xml` and the datasources, whose structure must be whole — a
//! stub with the "settings an operator changes" and nothing else, as the
//! old templates rendered, is refused, as WSO2 would fail with it.

use std::path::Path;

/// The settings the stand-in serves with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The configured host name.
    pub hostname: String,
    /// The node's own address (deployment.toml `[server] node_ip`, or the
    /// clustering `localMemberHost` of axis2.xml).
    pub ip: String,
    /// The ports offset.
    pub offset: u16,
}

/// The top-level tables of the 4.x products' `deployment.toml` (IS 5.9+,
/// APIM 3+/4, MI 4): a misspelt table is silently ignored by WSO2, so the
/// stand-in refuses it.
const KNOWN_TABLES: &[&str] = &[
    "server",
    "super_admin",
    "user_store",
    "database",
    "datasource",
    "keystore",
    "truststore",
    "transport",
    "clustering",
    "identity_mgt",
    "identity",
    "authentication",
    "account_recovery",
    "recaptcha",
    "oauth",
    "saml",
    "event",
    "event_listener",
    "event_handler",
    "output_adapter",
    "admin_service",
    "system_applications",
    "tenant_mgt",
    "authorization_manager",
    "realm_manager",
    "catalina",
    "apim",
    "cors",
    "cache",
    "passthru_http",
    "mediation",
    "dashboard_config",
    "management_api",
    "internal_apis",
    "synapse_properties",
    "service_catalog",
    "system_parameter",
    "carbon",
    "analytics",
    "secrets",
    "hazelcast",
    "message_processor",
    "sequence",
    "sso",
    "heartbeat_config",
    "mi_user_store",
    "user_management",
    "auth_framework",
    "token_exchange",
    "security",
    "carbon_health_check",
    "service_provider",
    "server_config",
    "cluster_config",
    "dashboard_config",
];

/// Reads and checks the configuration under `home` (CARBON_HOME).
pub fn read(home: &Path) -> Result<ServerConfig, String> {
    let config = read_checked(home)?;
    // A change that compiles but fails at start, for tests of halts.
    if config.hostname == FAILING_HOST {
        return Err(format!("refusing hostname {FAILING_HOST}"));
    }
    Ok(config)
}

/// The host name the stand-in refuses to start with.
pub const FAILING_HOST: &str = "fail.invalid";

fn read_checked(home: &Path) -> Result<ServerConfig, String> {
    // Micro Integrator keeps deployment.toml in conf/, the others in repository/conf/.
    let toml_path = home.join("repository/conf/deployment.toml");
    for path in [toml_path.clone(), home.join("conf/deployment.toml")] {
        if path.is_file() {
            return from_deployment_toml(&path);
        }
    }
    // IS 5.x keeps its XML files in repository/conf, EI 6.x in conf.
    for conf in ["repository/conf", "conf"] {
        if home.join(conf).join("carbon.xml").is_file() {
            return from_xml(&home.join(conf));
        }
    }
    Err(format!(
        "neither {} nor a carbon.xml exists",
        toml_path.display()
    ))
}

fn from_deployment_toml(path: &Path) -> Result<ServerConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let config: toml::Table = text
        .parse()
        .map_err(|e| format!("invalid {}: {e}", path.display()))?;
    if let Some(unknown) = config.keys().find(|k| !KNOWN_TABLES.contains(&k.as_str())) {
        return Err(format!(
            "invalid {}: unknown section [{unknown}]",
            path.display()
        ));
    }
    let server = config
        .get("server")
        .and_then(|s| s.as_table())
        .cloned()
        .unwrap_or_default();
    let hostname = server
        .get("hostname")
        .and_then(|v| v.as_str())
        .unwrap_or("localhost")
        .to_string();
    if hostname.trim().is_empty() {
        return Err(format!(
            "invalid {}: [server] hostname is empty",
            path.display()
        ));
    }
    Ok(ServerConfig {
        hostname,
        ip: server
            .get("node_ip")
            .and_then(|v| v.as_str())
            .unwrap_or("127.0.0.1")
            .to_string(),
        offset: server
            .get("offset")
            .and_then(|v| v.as_integer())
            .unwrap_or(0) as u16,
    })
}

/// One XML file of the product, parsed; the text is kept for the document.
struct XmlFile {
    path: std::path::PathBuf,
    text: String,
}

impl XmlFile {
    fn read(home: &Path, relative: &str) -> Result<Self, String> {
        let path = home.join(relative);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(Self { path, text })
    }

    fn doc(&self) -> Result<roxmltree::Document<'_>, String> {
        roxmltree::Document::parse(&self.text)
            .map_err(|e| format!("invalid {}: {e}", self.path.display()))
    }

    fn invalid(&self, what: &str) -> String {
        format!("invalid {}: {what}", self.path.display())
    }
}

/// The element children of `node` named `name`.
fn children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    path: &[&'static str],
) -> Option<roxmltree::Node<'a, 'i>> {
    path.iter()
        .try_fold(node, |n, name| children(n, name).next())
}

/// The XML files under `conf` (`repository/conf` or EI's `conf`).
fn from_xml(conf: &Path) -> Result<ServerConfig, String> {
    let carbon = XmlFile::read(conf, "carbon.xml")?;
    let doc = carbon.doc()?;
    let root = doc.root_element();
    for required in [
        &["Axis2Config", "ConfigurationFile"][..],
        &["Ports", "Offset"],
        &["Security", "KeyStore", "Location"],
        &["Security", "TrustStore", "Location"],
        &["ServerRoles", "Role"],
    ] {
        if child(root, required).is_none() {
            return Err(carbon.invalid(&format!("no <{}>", required.join("/"))));
        }
    }
    let text = |path: &[&'static str]| {
        child(root, path)
            .and_then(|n| n.text())
            .map(|t| t.trim().to_string())
    };
    let hostname = text(&["HostName"]).unwrap_or_else(|| "localhost".into());
    if hostname.is_empty() {
        return Err(carbon.invalid("<HostName> is empty"));
    }
    let offset = text(&["Ports", "Offset"])
        .unwrap_or_default()
        .parse::<u16>()
        .map_err(|_| carbon.invalid("<Ports/Offset> is not a number"))?;
    let ip = check_axis2(conf)?;
    let datasources = check_datasources(conf)?;
    check_user_mgt(conf, &datasources)?;
    Ok(ServerConfig {
        hostname,
        ip: ip.unwrap_or_else(|| "127.0.0.1".into()),
        offset,
    })
}

/// axis2.xml must have its engine: receivers, formatters, builders,
/// transport receivers and senders, and the four phase orders. Gives the
/// clustering `localMemberHost`.
fn check_axis2(conf: &Path) -> Result<Option<String>, String> {
    let axis2 = XmlFile::read(conf, "axis2/axis2.xml")?;
    let doc = axis2.doc()?;
    let root = doc.root_element();
    for required in [
        "messageReceivers",
        "messageFormatters",
        "messageBuilders",
        "transportReceiver",
        "transportSender",
    ] {
        if children(root, required).next().is_none() {
            return Err(axis2.invalid(&format!("no <{required}>")));
        }
    }
    for flow in ["InFlow", "OutFlow", "InFaultFlow", "OutFaultFlow"] {
        if !children(root, "phaseOrder").any(|p| p.attribute("type") == Some(flow)) {
            return Err(axis2.invalid(&format!("no <phaseOrder type=\"{flow}\">")));
        }
    }
    // Every transport that receives must have a sender of the same name.
    for receiver in children(root, "transportReceiver") {
        let name = receiver.attribute("name").unwrap_or_default();
        if !children(root, "transportSender").any(|s| s.attribute("name") == Some(name)) {
            return Err(axis2.invalid(&format!("transport {name:?} has a receiver but no sender")));
        }
    }
    Ok(children(root, "clustering")
        .flat_map(|c| children(c, "parameter"))
        .find(|p| p.attribute("name") == Some("localMemberHost"))
        .and_then(|p| p.text())
        .map(|t| t.trim().to_string()))
}

/// The JNDI names master-datasources.xml defines (WSO2_CARBON_DB must be one).
fn check_datasources(conf: &Path) -> Result<Vec<String>, String> {
    let file = XmlFile::read(conf, "datasources/master-datasources.xml")?;
    let doc = file.doc()?;
    let root = doc.root_element();
    let mut names = Vec::new();
    let mut carbon_db = false;
    for datasource in child(root, &["datasources"])
        .into_iter()
        .flat_map(|d| children(d, "datasource"))
    {
        let name = child(datasource, &["name"])
            .and_then(|n| n.text())
            .unwrap_or_default();
        carbon_db |= name == "WSO2_CARBON_DB";
        let jndi = child(datasource, &["jndiConfig", "name"])
            .and_then(|n| n.text())
            .unwrap_or_default()
            .trim()
            .to_string();
        for field in ["url", "driverClassName"] {
            if child(datasource, &["definition", "configuration", field])
                .and_then(|n| n.text())
                .is_none_or(|t| t.trim().is_empty())
            {
                return Err(file.invalid(&format!("datasource {name:?} has no <{field}>")));
            }
        }
        names.push(jndi);
    }
    if !carbon_db {
        return Err(file.invalid("no WSO2_CARBON_DB datasource"));
    }
    Ok(names)
}

/// user-mgt.xml needs a primary user store with a class, and its realm's
/// datasource must be defined.
fn check_user_mgt(conf: &Path, datasources: &[String]) -> Result<(), String> {
    let file = XmlFile::read(conf, "user-mgt.xml")?;
    let doc = file.doc()?;
    let realm = child(doc.root_element(), &["Realm"]).ok_or_else(|| file.invalid("no <Realm>"))?;
    let store = children(realm, "UserStoreManager")
        .next()
        .ok_or_else(|| file.invalid("no <UserStoreManager>"))?;
    if store.attribute("class").is_none_or(str::is_empty) {
        return Err(file.invalid("the user store manager has no class"));
    }
    let datasource = child(realm, &["Configuration"])
        .into_iter()
        .flat_map(|c| children(c, "Property"))
        .find(|p| p.attribute("name") == Some("dataSource"))
        .and_then(|p| p.text())
        .map(str::trim);
    match datasource {
        Some(name) if datasources.iter().any(|d| d == name) => Ok(()),
        Some(name) => Err(file.invalid(&format!(
            "the realm's dataSource {name:?} is not defined in master-datasources.xml"
        ))),
        None => Err(file.invalid("the realm has no dataSource")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::SamplePack;

    fn home_with(files: &[(String, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    #[test]
    fn the_shipped_xml_files_start_and_a_stubbed_axis2_does_not() {
        let files = SamplePack::new(1, 1)
            .of("wso2is", "5.8.0")
            .reference_files();
        assert!(files.len() >= 9, "{files:?}");
        let home = home_with(&files);
        let config = read(home.path()).unwrap();
        assert_eq!(config.hostname, "localhost");
        assert_eq!((config.ip.as_str(), config.offset), ("127.0.0.1", 0));
        // The 34-line stub the old template rendered: no senders, no phases.
        let stub = "<axisconfig name=\"AxisJava2.0\">\n    <transportReceiver name=\"http\" class=\"x\"><parameter name=\"port\">9763</parameter></transportReceiver>\n    <clustering class=\"c\" enable=\"false\"/>\n</axisconfig>\n";
        std::fs::write(home.path().join("repository/conf/axis2/axis2.xml"), stub).unwrap();
        let err = read(home.path()).unwrap_err();
        assert!(err.contains("no <messageReceivers>"), "{err}");
    }

    #[test]
    fn ei_keeps_its_files_in_conf_and_a_servlet_stub_axis2_has_no_senders() {
        let files = SamplePack::new(1, 1)
            .of("wso2ei", "6.6.0")
            .reference_files();
        let home = home_with(&files);
        read(home.path()).unwrap();
        // The old EI stub: servlet listeners, no transport senders.
        let axis2 = home.path().join("conf/axis2/axis2.xml");
        let text = std::fs::read_to_string(&axis2).unwrap();
        let start = text.find("<transportSender").unwrap();
        let end = text.rfind("</transportSender>").unwrap() + "</transportSender>".len();
        std::fs::write(&axis2, format!("{}{}", &text[..start], &text[end..])).unwrap();
        let err = read(home.path()).unwrap_err();
        assert!(err.contains("no <transportSender>"), "{err}");
    }

    #[test]
    fn a_realm_datasource_that_is_not_defined_is_refused() {
        let files = SamplePack::new(1, 1)
            .of("wso2is", "5.8.0")
            .reference_files();
        let home = home_with(&files);
        let user_mgt = home.path().join("repository/conf/user-mgt.xml");
        let text = std::fs::read_to_string(&user_mgt)
            .unwrap()
            .replace(">jdbc/WSO2CarbonDB<", ">jdbc/WSO2SharedDB<");
        std::fs::write(&user_mgt, text).unwrap();
        let err = read(home.path()).unwrap_err();
        assert!(err.contains("jdbc/WSO2SharedDB"), "{err}");
    }

    #[test]
    fn a_misspelt_deployment_toml_section_is_refused() {
        let home = home_with(&[(
            "repository/conf/deployment.toml".into(),
            "[server]\nhostname = \"a\"\n[super_admn]\nusername = \"x\"\n".into(),
        )]);
        let err = read(home.path()).unwrap_err();
        assert!(err.contains("unknown section [super_admn]"), "{err}");
    }
}
