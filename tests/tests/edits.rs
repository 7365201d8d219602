//! Configuration as edits over the product's own files, end to end: an IS
//! 5.8 node starts on the pack's full-size XML files with the module's
//! edits (the stand-in server refuses stubs); an update level that changes
//! an edited file reaches the node with the edits still on it; a level that
//! removes an edited element is refused at import, naming the file, the
//! edit and the level, and changes nothing.

use rigger_tests::imds::Instance;
use rigger_tests::pack::SamplePack;
use rigger_tests::{FakeImds, TestAgent, TestMaster, http_get};

const HOME: &str = "/opt/wso2/wso2is-5.8.0";

/// A master with the example site's `is` role on IS 5.8.0 and its pack.
fn master_on_is_5_8() -> (TestMaster, SamplePack) {
    let master = TestMaster::start_empty();
    let pack = SamplePack::new(40, 256 << 10).of("wso2is", "5.8.0");
    assert!(pack.is_xml_era(), "the sample pack has IS 5.8's XML files");
    let out = master.import_pack(&pack);
    assert_eq!(out.code, 0, "{}", out.all());
    master.edit_site("roles/is.toml", |t| {
        t.replace("version = \"5.11.0\"", "version = \"5.8.0\"")
    });
    (master, pack)
}

fn read(node: &TestAgent, relative: &str) -> String {
    let path = node.path(HOME).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn an_is_5_8_node_starts_on_the_products_own_files_with_the_edits_and_keeps_them_across_a_level() {
    let (master, pack) = master_on_is_5_8();
    master.enable_service("");
    let imds = FakeImds::start(Instance::at("i-is58", "127.0.0.21"));
    let node = TestAgent::new("is58-1");
    let first = node.enroll_at(&master, "is", &imds.url());
    assert_eq!(first.code, 2, "{}", first.all());
    // The stand-in server checked the XML files as WSO2 would and answers
    // with the host name from the edited carbon.xml, on the address the
    // edited axis2.xml gives as localMemberHost.
    assert_eq!(
        http_get("127.0.0.21:9763", "/rigger/hostname").as_deref(),
        Some("is.demo.example.com")
    );

    let reference: std::collections::BTreeMap<String, String> =
        pack.reference_files().into_iter().collect();
    let carbon = read(&node, "repository/conf/carbon.xml");
    assert!(carbon.contains("    <HostName>is.demo.example.com</HostName>\n    <MgtHostName>is.demo.example.com</MgtHostName>"), "{carbon}");
    // Everything the edits leave alone is the product's: comments, order,
    // the sections the old stub dropped.
    for kept in [
        "<!--<HostName>www.wso2.org</HostName>-->",
        "<LDAPServerPort>10389</LDAPServerPort>",
        "<HideAdminServiceWSDLs>true</HideAdminServiceWSDLs>",
        "<Axis2Config>",
        "<InternalKeyStore>",
    ] {
        assert!(carbon.contains(kept), "{kept} missing from {carbon}");
    }
    let shipped = &reference["repository/conf/carbon.xml"];
    assert!(
        carbon.lines().count() >= shipped.lines().count(),
        "the whole file, not a stub"
    );

    let axis2 = read(&node, "repository/conf/axis2/axis2.xml");
    assert!(
        axis2.contains("<parameter name=\"localMemberHost\">127.0.0.21</parameter>"),
        "{axis2}"
    );
    assert_eq!(
        axis2.matches("<phaseOrder").count(),
        4,
        "the product's phase orders stay"
    );
    assert!(axis2.contains("<transportSender name=\"https\""));
    let user_mgt = read(&node, "repository/conf/user-mgt.xml");
    assert!(user_mgt.contains("class=\"org.wso2.carbon.user.core.jdbc.JDBCUserStoreManager\""));
    assert!(
        !user_mgt.contains("UniqueIDJDBCUserStoreManager"),
        "an IS 5.10+ class"
    );
    let datasources = read(&node, "repository/conf/datasources/master-datasources.xml");
    assert!(datasources.contains("<name>WSO2_CARBON_DB</name>"));
    assert!(
        datasources
            .contains("jdbc:mysql://wso2-db.demo.internal:3306/WSO2IS_SHARED_DB?useSSL=true")
    );
    let catalina = read(&node, "repository/conf/tomcat/catalina-server.xml");
    for valve in [
        "TenantContextRewriteValve",
        "AuthenticationValve",
        "AuthorizationValve",
    ] {
        assert!(catalina.contains(valve), "{valve} dropped");
    }
    assert!(catalina.contains("proxyPort=\"443\""), "{catalina}");

    // A level that changes carbon.xml: the node gets the level's file with
    // the edits on it.
    let update = pack.at_level(1, 20);
    let out = master.import_update(&update);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("EDITED repository/conf/carbon.xml: the level changes it; every edit of module wso2is (templates/xml/carbon.xml.edits.toml) still applies (applied for role(s) is)"),
        "{}",
        out.all()
    );
    let upgrade = node.once(&master.url(), &["--imds-endpoint", &imds.url()]);
    assert_eq!(upgrade.code, 2, "{}", upgrade.all());
    let carbon = read(&node, "repository/conf/carbon.xml");
    assert!(
        carbon.contains("<MaxThreadExecutionTime>601</MaxThreadExecutionTime>"),
        "the level's change: {carbon}"
    );
    assert!(carbon.contains("<!-- changed by update level 1 -->"));
    assert!(
        carbon.contains("<HostName>is.demo.example.com</HostName>"),
        "the edits: {carbon}"
    );
    assert_eq!(
        http_get("127.0.0.21:9763", "/rigger/hostname").as_deref(),
        Some("is.demo.example.com"),
        "the server runs on the new level's edited files"
    );
}

#[test]
fn a_level_that_removes_an_edited_element_is_refused_at_import_and_changes_nothing() {
    let (master, pack) = master_on_is_5_8();
    let node = TestAgent::new("is58-2");
    let first = node.enroll(&master, &["--role", "is"]);
    assert_eq!(first.code, 2, "{}", first.all());
    let before = read(&node, "repository/conf/carbon.xml");

    // The level renames <Offset>, which the module sets.
    let carbon = pack
        .reference_files()
        .into_iter()
        .find(|(p, _)| p == "repository/conf/carbon.xml")
        .unwrap()
        .1
        .replace("<Offset>0</Offset>", "<PortOffset>0</PortOffset>");
    let update = pack
        .at_level(1, 20)
        .with_file("repository/conf/carbon.xml", &carbon);
    let out = master.import_update(&update);
    assert_ne!(out.code, 0, "{}", out.all());
    let text = out.all();
    for expected in [
        "level 1 of wso2is 5.8.0 was not imported",
        "role is",
        "templates/xml/carbon.xml.edits.toml",
        "set /Server/Ports/Offset",
        "no element matches /Server/Ports/Offset",
        "repository/conf/carbon.xml of wso2is 5.8.0 level 1",
    ] {
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
    let levels = master.ctl(&["product", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&levels.stdout).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the GA level: {list}"
    );

    let again = node.once(&master.url(), &[]);
    assert_eq!(
        again.code,
        0,
        "nothing changes on the node: {}",
        again.all()
    );
    assert_eq!(read(&node, "repository/conf/carbon.xml"), before);
}

#[test]
fn the_stand_in_server_refuses_a_stubbed_axis2_xml() {
    let (master, _pack) = master_on_is_5_8();
    master.enable_service("");
    // A module that replaces axis2.xml with a stub, as the old template did.
    let modules = master.site().parent().unwrap().join("stub-modules");
    copy_dir(&rigger_tests::repo_root().join("modules"), &modules);
    let module = modules.join("wso2is/module.toml");
    let text = std::fs::read_to_string(&module).unwrap().replace(
        "edits = \"xml/axis2.xml.edits.toml\"\nfrom = \"product\"",
        "template = \"xml/axis2-stub.xml.j2\"",
    );
    std::fs::write(&module, text).unwrap();
    std::fs::write(
        modules.join("wso2is/templates/xml/axis2-stub.xml.j2"),
        "<axisconfig name=\"AxisJava2.0\">\n    <transportReceiver name=\"http\" class=\"org.wso2.carbon.core.transports.http.HttpTransportListener\"/>\n    <clustering class=\"org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent\" enable=\"false\">\n        <parameter name=\"localMemberHost\">{{ self.ip }}</parameter>\n    </clustering>\n</axisconfig>\n",
    )
    .unwrap();
    let mut master = master;
    master.restart_with_modules(&modules);
    let imds = FakeImds::start(Instance::at("i-is58-stub", "127.0.0.22"));
    let node = TestAgent::new("is58-stub");
    let out = node.enroll_at(&master, "is", &imds.url());
    assert_ne!(
        out.code,
        0,
        "a stubbed axis2.xml must not start: {}",
        out.all()
    );
    assert!(http_get("127.0.0.22:9763", "/rigger/hostname").is_none());
    assert!(out.all().contains("no <messageReceivers>"), "{}", out.all());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn an_ei_6_6_node_starts_on_the_products_own_files_with_passthrough_transports() {
    let master = TestMaster::start_empty();
    let pack = SamplePack::new(40, 256 << 10).of("wso2ei", "6.6.0");
    assert!(pack.is_xml_era(), "the sample pack has EI 6.6's XML files");
    let out = master.import_pack(&pack);
    assert_eq!(out.code, 0, "{}", out.all());
    master.edit_site("roles/ei.toml", |_| {
        "[role]\nmodule = \"wso2ei\"\nprofile = \"ei_integrator\"\nversion = \"6.6.0\"\nenvironment = \"demo\"\ncluster = \"ei-demo\"\n\n[server]\nhostname = \"ei.demo.example.com\"\n\n[clustering]\nenabled = true\n".into()
    });
    master.edit_site("secrets/roles/ei.toml", |_| {
        "[super_admin]\npassword = \"ei-demo-admin\"\n".into()
    });
    master.enable_service_of("ei", "");
    let imds = FakeImds::start(Instance::at("i-ei66", "127.0.0.23"));
    let node = TestAgent::new("ei66-1");
    let first = node.enroll_at(&master, "ei", &imds.url());
    assert_eq!(first.code, 2, "{}", first.all());
    assert_eq!(
        http_get("127.0.0.23:9763", "/rigger/hostname").as_deref(),
        Some("ei.demo.example.com")
    );
    let home = node.path("/opt/wso2/wso2ei-6.6.0");
    let axis2 = std::fs::read_to_string(home.join("conf/axis2/axis2.xml")).unwrap();
    for kept in [
        "class=\"org.apache.synapse.transport.passthru.PassThroughHttpListener\"",
        "class=\"org.apache.synapse.transport.passthru.PassThroughHttpSSLSender\"",
        "<parameter name=\"localMemberPort\">4100</parameter>",
        "<parameter name=\"localMemberHost\">127.0.0.23</parameter>",
        "<hostName>127.0.0.23</hostName>",
    ] {
        assert!(axis2.contains(kept), "{kept} missing from {axis2}");
    }
    let carbon = std::fs::read_to_string(home.join("conf/carbon.xml")).unwrap();
    assert!(carbon.contains("<Role>DataServicesServer</Role>"));
    assert!(carbon.contains("<Analytics>"));
}

#[test]
fn module_check_with_a_running_master_applies_the_edits_to_the_imported_packs() {
    let (master, _pack) = master_on_is_5_8();
    let out = master.ctl(&["module", "check", "--master"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("ok    role is: ")
            && out.stdout.contains("(against the imported packs)"),
        "{}",
        out.all()
    );
    // A module edit whose target the imported pack lacks: named, with the
    // pack it was checked against.
    let modules = master.site().parent().unwrap().join("check-modules");
    copy_dir(&rigger_tests::repo_root().join("modules"), &modules);
    let edits = modules.join("wso2is/templates/xml/carbon.xml.edits.toml");
    let text = std::fs::read_to_string(&edits)
        .unwrap()
        .replace("/Server/Ports/Offset", "/Server/Ports/PortOffset");
    std::fs::write(&edits, text).unwrap();
    let mut master = master;
    master.restart_with_modules(&modules);
    let out = master.ctl(&["module", "check", "--master"]);
    assert_ne!(out.code, 0, "{}", out.all());
    let text = out.all();
    for expected in [
        "FAIL  role is",
        "set /Server/Ports/PortOffset",
        "repository/conf/carbon.xml of wso2is 5.8.0 level 0 (the imported pack)",
    ] {
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
}
