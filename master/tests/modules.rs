//! Every profile compiled from a realistic AWS site (RDS MySQL, ALB host
//! names, two-node clusters): the rendered files parse and carry the
//! site's values and the peers from the inventory.

use std::path::Path;

use rigger_common::catalog::{CatalogContent, ResourceSpec};
use rigger_master::compiler::{Compiler, NodeContext, Peer, Products, ReferenceFiles};

const RDS: &str = "wso2db.c1abcdefgh.us-east-1.rds.amazonaws.com:3306";

fn compiler() -> Compiler {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Compiler::new(
        vec![root.join("../modules")],
        root.join("tests/fixtures/aws-site"),
    )
}

fn peer(certname: &str, role: &str, ip: &str) -> Peer {
    Peer {
        certname: certname.into(),
        role: role.into(),
        ip: ip.into(),
    }
}

/// Compiles `role` for `certname` at `ip` with `inventory` live.
fn compile(role: &str, certname: &str, ip: &str, inventory: Vec<Peer>) -> CatalogContent {
    let node = NodeContext {
        certname: certname.into(),
        role: role.into(),
        facts: serde_json::json!({"hostname": certname, "ip": ip}),
        inventory,
    };
    // Edited files start from the modules' reference files (no pack here).
    let products =
        Products::permissive().with_pack_files(std::sync::Arc::new(ReferenceFiles::new(vec![
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules"),
        ])));
    compiler()
        .compile(&node, &products)
        .unwrap_or_else(|e| panic!("{role}: {}", rigger_common::error_chain(&e)))
}

fn file<'a>(content: &'a CatalogContent, id: &str) -> &'a rigger_common::catalog::FileSpec {
    content
        .resources
        .iter()
        .find_map(|r| match &r.spec {
            ResourceSpec::File(f) if r.id == id => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no file resource {id}"))
}

fn toml_of(content: &CatalogContent, id: &str) -> toml::Table {
    let f = file(content, id);
    f.content
        .parse()
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}\n{}", f.path, f.content))
}

fn strings(value: &toml::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_shipped_profile_is_exercised_by_this_site() {
    let compiler = compiler();
    let mut profiles: Vec<String> = compiler
        .modules()
        .into_iter()
        .flat_map(|m| {
            let m = m.unwrap();
            m.concrete_profiles()
                .map(|p| format!("{}/{p}", m.name))
                .collect::<Vec<_>>()
        })
        .collect();
    profiles.sort();
    let mut covered: Vec<String> = compiler
        .site_roles()
        .iter()
        .map(|r| {
            let content = compile(r, "n1", "10.0.1.10", vec![]);
            content.profile
        })
        .collect();
    covered.sort();
    covered.dedup();
    assert_eq!(
        covered, profiles,
        "a profile without a role in the test site"
    );
}

#[test]
fn is_pattern_1_lists_both_nodes_and_uses_rds_and_the_alb() {
    let inventory = vec![
        peer("is-1", "is", "10.0.1.10"),
        peer("is-2", "is", "10.0.2.10"),
    ];
    let content = compile("is", "is-1", "10.0.1.10", inventory);
    let conf = toml_of(&content, "deployment_toml");
    assert_eq!(
        conf["server"]["hostname"].as_str(),
        Some("identity-alb-1234567890.us-east-1.elb.amazonaws.com")
    );
    for db in ["identity_db", "shared_db"] {
        let url = conf["database"][db]["url"].as_str().unwrap();
        assert!(url.contains(RDS), "{db}: {url}");
    }
    assert_eq!(
        conf["database"]["identity_db"]["password"].as_str(),
        Some("rds-identity-secret")
    );
    assert!(file(&content, "deployment_toml").secret);
    assert_eq!(
        strings(&conf["clustering"]["members"]),
        vec!["10.0.1.10:4000", "10.0.2.10:4000"]
    );
    assert_eq!(
        conf["clustering"]["local_member_host"].as_str(),
        Some("10.0.1.10")
    );
    assert_eq!(
        conf["transport"]["https"]["properties"]["proxyPort"].as_integer(),
        Some(443)
    );
    assert_eq!(
        conf["transport"]["http"]["properties"]["proxyPort"].as_integer(),
        Some(80)
    );
    let env = &file(&content, "jvm_env").content;
    assert!(
        env.contains("-Xmx3072m"),
        "environment data wins over common: {env}"
    );
    // EFS: the NFS client, the mount with AWS's options, the shared folders.
    let by_id = |id: &str| {
        content
            .resources
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no {id}"))
    };
    assert!(
        matches!(&by_id("nfs_client").spec, ResourceSpec::Package(p) if p.name == "nfs-common" && p.rpm_name.as_deref() == Some("nfs-utils"))
    );
    let ResourceSpec::Mount(mount) = &by_id("shared_fs").spec else {
        panic!("not a mount")
    };
    assert_eq!(mount.fstype.as_str(), "nfs4");
    assert_eq!(
        mount.source,
        "fs-0123456789abcdef0.efs.us-east-1.amazonaws.com:/"
    );
    let ResourceSpec::SharedDirs(shared) = &by_id("shared_dirs").spec else {
        panic!("not shared_dirs")
    };
    assert_eq!(shared.dirs["repository/deployment"], "Deployment");
    assert_eq!(shared.dirs["repository/tenants"], "Tenants");
    let driver = file(&content, "jdbc_driver");
    assert!(
        driver
            .path
            .ends_with("repository/components/lib/mysql-connector-j-8.0.33.jar")
    );
    assert!(driver.source.is_some());
}

#[test]
fn apim_all_in_one_pair_points_at_each_other() {
    let inventory = vec![
        peer("apim-1", "apim", "10.0.1.20"),
        peer("apim-2", "apim", "10.0.2.20"),
    ];
    let content = compile("apim", "apim-1", "10.0.1.20", inventory);
    let conf = toml_of(&content, "deployment_toml");
    assert_eq!(conf["server"]["server_role"].as_str(), Some("default"));
    assert!(
        conf["database"]["apim_db"]["url"]
            .as_str()
            .unwrap()
            .contains(RDS)
    );
    let decision = strings(&conf["apim"]["throttling"]["throttle_decision_endpoints"]);
    assert_eq!(
        decision,
        vec!["tcp://10.0.1.20:5672", "tcp://10.0.2.20:5672"]
    );
    let groups = conf["apim"]["throttling"]["url_group"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        strings(&groups[1]["traffic_manager_urls"]),
        vec!["tcp://10.0.2.20:9611"]
    );
    let env = &conf["apim"]["gateway"]["environment"].as_array().unwrap()[0];
    assert_eq!(
        env["https_endpoint"].as_str(),
        Some("https://gw-alb-1234567890.us-east-1.elb.amazonaws.com")
    );
    assert_eq!(
        strings(&conf["apim"]["event_hub"]["event_listening_endpoints"]),
        vec!["tcp://10.0.1.20:5672", "tcp://10.0.2.20:5672"]
    );
    // WSO2's active-active pair: events are duplicated to the other node,
    // and each node is its own publishing group.
    assert_eq!(
        strings(&conf["apim"]["event_hub"]["event_duplicate_url"]),
        vec!["tcp://10.0.2.20:5672"]
    );
    assert_eq!(
        strings(&conf["apim"]["throttling"]["event_duplicate_url"]),
        vec!["tcp://10.0.2.20:5672"]
    );
    let publish = conf["apim"]["event_hub"]["publish"]["url_group"]
        .as_array()
        .unwrap();
    assert_eq!(publish.len(), 2);
    assert_eq!(strings(&publish[0]["urls"]), vec!["tcp://10.0.1.20:9611"]);
    assert_eq!(
        strings(&publish[1]["auth_urls"]),
        vec!["ssl://10.0.2.20:9711"]
    );
    let second = toml_of(
        &compile(
            "apim",
            "apim-2",
            "10.0.2.20",
            vec![
                peer("apim-1", "apim", "10.0.1.20"),
                peer("apim-2", "apim", "10.0.2.20"),
            ],
        ),
        "deployment_toml",
    );
    assert_eq!(
        strings(&second["apim"]["event_hub"]["event_duplicate_url"]),
        vec!["tcp://10.0.1.20:5672"]
    );
}

#[test]
fn apim_distributed_roles_find_their_traffic_managers_and_control_plane() {
    let inventory = vec![
        peer("cp-1", "apim_control_plane", "10.0.1.30"),
        peer("cp-2", "apim_control_plane", "10.0.2.30"),
        peer("gw-1", "apim_gateway", "10.0.1.40"),
        peer("tm-1", "apim_tm", "10.0.1.50"),
        peer("tm-2", "apim_tm", "10.0.2.50"),
    ];
    let gw = toml_of(
        &compile("apim_gateway", "gw-1", "10.0.1.40", inventory.clone()),
        "deployment_toml",
    );
    assert_eq!(gw["server"]["server_role"].as_str(), Some("gateway-worker"));
    assert_eq!(
        gw["apim"]["key_manager"]["service_url"].as_str(),
        Some("https://10.0.1.30:9443/services/")
    );
    assert_eq!(
        strings(&gw["apim"]["throttling"]["throttle_decision_endpoints"]),
        vec!["tcp://10.0.1.50:5672", "tcp://10.0.2.50:5672"]
    );
    assert_eq!(
        strings(&gw["apim"]["event_hub"]["event_listening_endpoints"]),
        vec!["tcp://10.0.1.30:5672", "tcp://10.0.2.30:5672"]
    );
    assert!(
        gw["apim"].get("devportal").is_none(),
        "no devportal on a gateway"
    );

    let cp = toml_of(
        &compile("apim_control_plane", "cp-1", "10.0.1.30", inventory.clone()),
        "deployment_toml",
    );
    assert_eq!(cp["server"]["server_role"].as_str(), Some("control-plane"));
    assert_eq!(
        cp["apim"]["devportal"]["url"].as_str(),
        Some("https://apim-alb-1234567890.us-east-1.elb.amazonaws.com/devportal")
    );
    assert_eq!(
        strings(
            &cp["apim"]["throttling"]["url_group"].as_array().unwrap()[0]["traffic_manager_urls"]
        ),
        vec!["tcp://10.0.1.50:9611"]
    );

    let tm = toml_of(
        &compile("apim_tm", "tm-1", "10.0.1.50", inventory),
        "deployment_toml",
    );
    assert_eq!(
        tm["server"]["server_role"].as_str(),
        Some("traffic-manager")
    );
    assert!(tm["apim"].get("throttling").is_none());
    assert_eq!(
        tm["apim"]["event_hub"]["service_url"].as_str(),
        Some("https://10.0.1.30:9443/services/")
    );
}

#[test]
fn micro_integrators_coordinate_and_report_to_the_dashboard() {
    let inventory = vec![
        peer("mi-1", "mi", "10.0.1.60"),
        peer("mi-2", "mi", "10.0.2.60"),
        peer("mi-dash", "mi_dashboard", "10.0.1.70"),
    ];
    let mi = compile("mi", "mi-1", "10.0.1.60", inventory.clone());
    let conf = toml_of(&mi, "deployment_toml");
    assert_eq!(conf["server"]["offset"].as_integer(), Some(10));
    let ds = &conf["datasource"].as_array().unwrap()[0];
    assert!(ds["url"].as_str().unwrap().contains(RDS));
    assert_eq!(conf["cluster_config"]["node_id"].as_str(), Some("mi-1"));
    assert_eq!(
        conf["dashboard_config"]["dashboard_url"].as_str(),
        Some("https://10.0.1.70:9743/dashboard/api/")
    );
    assert!(
        file(&mi, "deployment_toml")
            .path
            .ends_with("wso2mi-4.2.0/conf/deployment.toml")
    );

    let dash = compile("mi_dashboard", "mi-dash", "10.0.1.70", inventory);
    let conf = toml_of(&dash, "deployment_toml");
    assert_eq!(conf["server_config"]["port"].as_integer(), Some(9743));
    assert!(
        file(&dash, "deployment_toml")
            .path
            .contains("wso2mi-dashboard-4.2.0")
    );
}

fn xml_of(content: &CatalogContent, id: &str) -> String {
    let f = file(content, id);
    roxmltree::Document::parse(&f.content)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}\n{}", f.path, f.content));
    f.content.clone()
}

fn texts(xml: &str, tag: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name(tag))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}

#[test]
fn is_5_8_renders_the_xml_files_of_pattern_1() {
    let inventory = vec![
        peer("is58-1", "is58", "10.0.1.80"),
        peer("is58-2", "is58", "10.0.2.80"),
    ];
    let first = compile("is58", "is58-1", "10.0.1.80", inventory.clone());
    let second = compile("is58", "is58-2", "10.0.2.80", inventory);
    assert!(
        !first.resources.iter().any(|r| r.id == "deployment_toml"),
        "5.8 has no deployment.toml"
    );

    let axis2 = xml_of(&first, "axis2_xml");
    assert_eq!(
        texts(&axis2, "hostName"),
        vec!["10.0.1.80", "10.0.2.80"],
        "both WKA members"
    );
    assert!(axis2.contains(r#"<parameter name="localMemberHost">10.0.1.80</parameter>"#));
    assert!(axis2.contains(r#"enable="true""#));

    let ds = xml_of(&first, "master_datasources_xml");
    let urls = texts(&ds, "url");
    assert!(
        urls.contains(&format!(
            "jdbc:mysql://{RDS}/WSO2IS58_IDENTITY_DB?useSSL=true&autoReconnect=true"
        )),
        "the & survives XML escaping: {urls:?}"
    );
    assert!(
        urls.iter().filter(|u| u.contains(RDS)).count() == 2,
        "{urls:?}"
    );
    assert!(file(&first, "master_datasources_xml").secret);
    let bps = xml_of(&first, "bps_datasources_xml");
    assert!(texts(&bps, "url")[0].contains("WSO2IS58_BPS_DB"));

    let catalina = xml_of(&first, "catalina_server_xml");
    assert!(catalina.contains(r#"proxyPort="80""#) && catalina.contains(r#"proxyPort="443""#));

    let registry = xml_of(&first, "registry_xml");
    assert!(registry.contains(r#"<mount path="/_system/config" overwrite="true">"#));
    assert!(registry.contains(r#"<mount path="/_system/governance" overwrite="true">"#));

    let user_mgt = xml_of(&first, "user_mgt_xml");
    assert!(user_mgt.contains("jdbc/WSO2SharedDB"));
    let identity = xml_of(&first, "identity_xml");
    assert!(identity.contains("jdbc/WSO2IdentityDS"));
    assert!(
        identity
            .contains("https://identity58-alb-1234567890.us-east-1.elb.amazonaws.com/oauth2/token")
    );
    xml_of(&first, "carbon_xml");

    // The embedded LDAP runs on the first node only (seed 004).
    let ldap_on = |c: &CatalogContent| {
        xml_of(c, "embedded_ldap_xml").contains(r#"<Property name="enable">true</Property>"#)
    };
    assert!(ldap_on(&first));
    assert!(!ldap_on(&second));
}

fn yaml_of(content: &CatalogContent, id: &str) -> serde_json::Value {
    let f = file(content, id);
    serde_saphyr::from_str(&f.content)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}\n{}", f.path, f.content))
}

#[test]
fn is_pattern_2_publishes_to_the_analytics_worker_pair() {
    let inventory = vec![
        peer("is-1", "is_p2", "10.0.1.10"),
        peer("is-2", "is_p2", "10.0.2.10"),
        peer("an-1", "is_analytics_worker", "10.0.1.90"),
        peer("an-2", "is_analytics_worker", "10.0.2.90"),
        peer("dash", "is_analytics_dashboard", "10.0.1.95"),
    ];
    let is = compile("is_p2", "is-1", "10.0.1.10", inventory.clone());
    let conf = toml_of(&is, "deployment_toml");
    assert_eq!(
        conf["identity_mgt"]["analytics_login_data_publisher"]["enable"].as_bool(),
        Some(true)
    );
    for id in ["auth_data_publisher", "session_data_publisher"] {
        let xml = xml_of(&is, id);
        assert!(
            xml.contains("<property name=\"receiverURL\">tcp://10.0.1.90:7612|tcp://10.0.2.90:7612</property>"),
            "the workers' Thrift receiver: {id}: {xml}"
        );
        assert!(
            file(&is, id)
                .path
                .contains("repository/deployment/server/eventpublishers/")
        );
    }
    assert!(
        xml_of(&is, "session_data_publisher")
            .contains("IsAnalytics-Publisher-wso2event-SessionData")
    );

    let worker = compile(
        "is_analytics_worker",
        "an-1",
        "10.0.1.90",
        inventory.clone(),
    );
    let yaml = yaml_of(&worker, "deployment_yaml");
    assert!(
        file(&worker, "deployment_yaml")
            .path
            .contains("wso2is-analytics-5.8.0/conf/worker/deployment.yaml")
    );
    assert_eq!(
        yaml["deployment.config"]["eventSyncServer"]["host"],
        "10.0.1.90"
    );
    assert_eq!(yaml["cluster.config"]["enabled"], true);
    // The worker's Thrift receiver is the port the publishers send to.
    assert_eq!(
        yaml["databridge.config"]["dataReceivers"][0]["dataReceiver"]["properties"]["tcpPort"],
        "7612"
    );
    // The site's admin password, where the runtime reads its users.
    assert_eq!(
        yaml["auth.configs"]["userManager"]["userStore"]["users"][0]["user"]["password"],
        "aXNfYW5hbHl0aWNzX3dvcmtlci1zdXBlcl9hZG1pbi1wYXNzd29yZA=="
    );
    assert_eq!(
        yaml["state.persistence"]["persistenceStore"],
        "org.wso2.carbon.stream.processor.core.persistence.DBPersistenceStore"
    );
    let sources = yaml["wso2.datasources"]["dataSources"].as_array().unwrap();
    let analytics = sources
        .iter()
        .find(|d| d["name"] == "IS_ANALYTICS_DB")
        .unwrap();
    assert!(
        analytics["definition"]["configuration"]["jdbcUrl"]
            .as_str()
            .unwrap()
            .contains(RDS)
    );

    let dashboard = compile("is_analytics_dashboard", "dash", "10.0.1.95", inventory);
    let yaml = yaml_of(&dashboard, "deployment_yaml");
    assert_eq!(
        yaml["wso2.transport.http"]["listenerConfigurations"][0]["port"],
        9643
    );
    assert_eq!(
        yaml["wso2.transport.http"]["listenerConfigurations"][0]["id"],
        "default-https"
    );
    assert!(
        yaml["wso2.datasources"]["dataSources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "WSO2_DASHBOARD_DB")
    );
}

#[test]
fn ei_integrators_cluster_and_share_the_registry_and_analytics_ships_with_them() {
    let inventory = vec![
        peer("ei-1", "ei", "10.0.1.60"),
        peer("ei-2", "ei", "10.0.2.60"),
        peer("eia-1", "ei_analytics_worker", "10.0.1.61"),
        peer("eia-2", "ei_analytics_worker", "10.0.2.61"),
    ];
    let ei = compile("ei", "ei-1", "10.0.1.60", inventory.clone());
    let axis2 = xml_of(&ei, "axis2_xml");
    assert_eq!(texts(&axis2, "hostName"), vec!["10.0.1.60", "10.0.2.60"]);
    let ds = xml_of(&ei, "master_datasources_xml");
    assert!(
        texts(&ds, "url")
            .iter()
            .any(|u| u.contains(RDS) && u.contains("WSO2EI_SHARED_DB"))
    );
    assert!(xml_of(&ei, "registry_xml").contains("jdbc/WSO2SharedDB"));
    assert!(xml_of(&ei, "carbon_xml").contains("<ServerKey>EI</ServerKey>"));
    assert!(
        file(&ei, "carbon_xml")
            .path
            .ends_with("wso2ei-6.6.0/conf/carbon.xml")
    );
    xml_of(&ei, "user_mgt_xml");

    let worker = compile(
        "ei_analytics_worker",
        "eia-1",
        "10.0.1.61",
        inventory.clone(),
    );
    let yaml = yaml_of(&worker, "deployment_yaml");
    assert!(
        file(&worker, "deployment_yaml")
            .path
            .contains("wso2/analytics/conf/worker/deployment.yaml")
    );
    assert_eq!(yaml["cluster.config"]["enabled"], true);
    assert_eq!(yaml["wso2.carbon"]["id"], "wso2-ei-analytics-eia-1");
    let dashboard = compile("ei_analytics_dashboard", "eia-d", "10.0.1.62", inventory);
    yaml_of(&dashboard, "deployment_yaml");
}

#[test]
fn apim_analytics_worker_pair_and_dashboard_render() {
    let inventory = vec![
        peer("aw-1", "apim_analytics_worker", "10.0.1.71"),
        peer("aw-2", "apim_analytics_worker", "10.0.2.71"),
    ];
    let worker = compile(
        "apim_analytics_worker",
        "aw-2",
        "10.0.2.71",
        inventory.clone(),
    );
    let yaml = yaml_of(&worker, "deployment_yaml");
    assert!(
        file(&worker, "deployment_yaml")
            .path
            .contains("wso2am-analytics-3.2.0/conf/worker/deployment.yaml")
    );
    assert_eq!(
        yaml["deployment.config"]["eventSyncServer"]["advertisedHost"],
        "10.0.2.71"
    );
    let sources = yaml["wso2.datasources"]["dataSources"].as_array().unwrap();
    let analytics = sources
        .iter()
        .find(|d| d["name"] == "APIM_ANALYTICS_DB")
        .unwrap();
    assert!(
        analytics["definition"]["configuration"]["jdbcUrl"]
            .as_str()
            .unwrap()
            .contains(RDS)
    );
    let dashboard = compile("apim_analytics_dashboard", "ad-1", "10.0.1.72", inventory);
    yaml_of(&dashboard, "deployment_yaml");
}

#[test]
fn every_profile_runs_its_server_through_the_node_runtime() {
    let compiler = compiler();
    for role in compiler.site_roles() {
        let content = compile(&role, "runtime-node", "10.0.9.9", vec![]);
        let find = |id: &str| {
            content
                .resources
                .iter()
                .find(|r| r.id == id)
                .unwrap_or_else(|| panic!("{role}: no {id}"))
        };
        let ResourceSpec::Service(server) = &find("server").spec else {
            panic!("{role}: server is not a service")
        };
        let health = server.health.as_deref().unwrap_or_default();
        assert!(health.contains("://10.0.9.9:"), "{role}: {health}");
        // Every server's heap reaches it through the environment file
        // (MI, EI and the analytics runtimes too), and systemd waits on the
        // pid file the product writes.
        let ResourceSpec::File(env) = &find("jvm_env").spec else {
            panic!("{role}: jvm_env is not a file")
        };
        assert!(
            env.content.contains("JVM_MEM_OPTS=\"-Xms"),
            "{role}: {}",
            env.content
        );
        let expected_pid = if role.contains("analytics_worker") {
            "worker/runtime.pid"
        } else if role.contains("analytics_dashboard") {
            "dashboard/runtime.pid"
        } else {
            "wso2carbon.pid"
        };
        assert!(
            server.pid_file.ends_with(expected_pid),
            "{role}: {}",
            server.pid_file
        );
        assert_eq!(server.user.as_deref(), Some("wso2carbon"), "{role}");
        assert_eq!(server.nofile, 65535, "{role}");
        assert!(
            server
                .restart_lease
                .as_ref()
                .is_some_and(|l| l.max_down == 1),
            "{role}: restarts are not coordinated"
        );
        let ResourceSpec::Tree(product) = &find("product").spec else {
            panic!("{role}: product is not a tree")
        };
        assert_eq!(product.owner.as_deref(), Some("wso2carbon"), "{role}");
        assert!(
            find("product").notifies.contains(&"server".to_string()),
            "{role}: a new release would not restart the server"
        );
        assert!(
            find("service_user")
                .requires
                .contains(&"service_group".to_string())
        );
        assert!(
            matches!(&find("shared_fs").spec, ResourceSpec::Mount(m) if m.fstype.as_str() == "nfs4"),
            "{role}"
        );
        // Every rendered configuration file restarts the server when it
        // changes, and the server (wso2carbon:wso2) can read every file
        // rendered into its release.
        for r in &content.resources {
            if let ResourceSpec::File(f) = &r.spec {
                if f.path.contains("/conf/") {
                    assert!(
                        r.notifies.contains(&"server".to_string()),
                        "{role}: {} does not restart the server",
                        r.id
                    );
                }
                if f.path.starts_with(&server.working_dir) {
                    let mode = f.mode.unwrap_or(0o644);
                    let readable = mode & 0o004 != 0
                        || (mode & 0o040 != 0 && f.group.as_deref() == Some("wso2"));
                    assert!(
                        readable,
                        "{role}: {} ({:04o}, group {:?}) is unreadable by the server",
                        r.id, mode, f.group
                    );
                }
            }
        }
        match role.as_str() {
            "apim_gateway" => {
                assert_eq!(server.start, "bin/api-manager.sh");
                assert_eq!(server.args, ["-Dprofile=gateway-worker"]);
                assert_eq!(health, "https://10.0.9.9:9443/services/Version");
                let ResourceSpec::SharedDirs(shared) = &find("shared_dirs").spec else {
                    panic!("not shared_dirs")
                };
                assert_eq!(
                    shared
                        .dirs
                        .get("repository/deployment/server/synapse-configs")
                        .map(String::as_str),
                    Some("SynapseConfigs")
                );
            }
            "mi" => {
                assert_eq!(server.start, "bin/micro-integrator.sh");
                assert_eq!(health, "http://10.0.9.9:9201/healthz");
            }
            "is" => {
                assert_eq!(server.start, "bin/wso2server.sh");
                assert!(server.args.is_empty());
                assert_eq!(health, "https://10.0.9.9:9443/carbon/admin/login.jsp");
            }
            _ => {}
        }
    }
}
