//! Peers from the inventory: IS nodes of one cluster list each other as
//! WKA members; a joining node gives the others a new catalog version; a
//! removed node leaves their lists and loses its certificate.

use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, Output, TestAgent, TestMaster};

const DEPLOYMENT_TOML: &str = "/opt/wso2/wso2is-5.11.0/repository/conf/deployment.toml";

struct Node {
    agent: TestAgent,
    imds: FakeImds,
}

impl Node {
    fn new(n: u8) -> Self {
        Self {
            agent: TestAgent::new(&format!("is-{n}")),
            imds: FakeImds::start(Instance::at(
                &format!("i-000{n}"),
                &format!("127.0.0.{}", n + 1),
            )),
        }
    }

    fn run(&self, master: &TestMaster, extra: &[&str]) -> Output {
        let mut args = vec!["--imds-endpoint", self.imds.url().leak()];
        args.extend_from_slice(extra);
        self.agent.once(&master.url(), &args)
    }

    fn enroll(&self, master: &TestMaster) -> Output {
        let token = master.token(&["--role", "is"]);
        let fp = master.fingerprint();
        self.run(master, &["--token", &token, "--ca-fingerprint", &fp])
    }

    fn members(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.agent.path(DEPLOYMENT_TOML)).unwrap();
        let parsed: toml::Table = text.parse().unwrap();
        parsed["clustering"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect()
    }
}

fn version(out: &Output) -> u64 {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("catalog version "))
        .unwrap_or_else(|| panic!("{}", out.all()));
    line["catalog version ".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn wka_members_follow_the_inventory() {
    let master = TestMaster::start();
    let nodes: Vec<Node> = (1..=3).map(Node::new).collect();

    assert_eq!(nodes[0].enroll(&master).code, 2);
    assert_eq!(nodes[0].members(), vec!["127.0.0.2:4000"]);
    let toml = std::fs::read_to_string(nodes[0].agent.path(DEPLOYMENT_TOML)).unwrap();
    assert!(toml.contains("local_member_host = \"127.0.0.2\""), "{toml}");

    assert_eq!(nodes[1].enroll(&master).code, 2);
    assert_eq!(nodes[1].members(), vec!["127.0.0.2:4000", "127.0.0.3:4000"]);
    let again = nodes[0].run(&master, &[]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert_eq!(version(&again), 2);
    assert_eq!(nodes[0].members(), vec!["127.0.0.2:4000", "127.0.0.3:4000"]);

    // A third node joins: both earlier nodes get a new version listing three.
    assert_eq!(nodes[2].enroll(&master).code, 2);
    let three = vec!["127.0.0.2:4000", "127.0.0.3:4000", "127.0.0.4:4000"];
    let first = nodes[0].run(&master, &[]);
    assert_eq!((first.code, version(&first)), (2, 3), "{}", first.all());
    let second = nodes[1].run(&master, &[]);
    assert_eq!((second.code, version(&second)), (2, 2), "{}", second.all());
    for node in &nodes {
        assert_eq!(node.members(), three);
    }
    // Nothing changed since: no new version, no changes.
    let steady = nodes[0].run(&master, &[]);
    assert_eq!((steady.code, version(&steady)), (0, 3), "{}", steady.all());

    // The third instance is replaced: removing it drops it from the lists
    // and revokes its certificate.
    let out = master.ctl(&["node", "remove", "is-3"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let after = nodes[0].run(&master, &[]);
    assert_eq!(after.code, 2, "{}", after.all());
    assert_eq!(nodes[0].members(), vec!["127.0.0.2:4000", "127.0.0.3:4000"]);
    let revoked = nodes[2].run(&master, &[]);
    assert!(revoked.stderr.contains("revoked"), "{}", revoked.all());
}

#[test]
fn a_node_not_seen_for_the_peer_timeout_leaves_the_lists_and_comes_back() {
    let master = TestMaster::start_empty_with(&["--peer-timeout", "1s"]);
    assert_eq!(
        master
            .import_pack(&rigger_tests::pack::SamplePack::new(20, 64 << 10))
            .code,
        0
    );
    let nodes: Vec<Node> = (1..=2).map(Node::new).collect();
    assert_eq!(nodes[0].enroll(&master).code, 2);
    assert_eq!(nodes[1].enroll(&master).code, 2);
    assert_eq!(nodes[1].members(), vec!["127.0.0.2:4000", "127.0.0.3:4000"]);

    // is-2 stops reporting (an instance that died): once the timeout has
    // passed, is-1's next catalog no longer lists it.
    rigger_tests::wait_for(
        "is-2 to leave is-1's members",
        std::time::Duration::from_secs(20),
        || {
            nodes[0].run(&master, &[]);
            (nodes[0].members() == vec!["127.0.0.2:4000"]).then_some(())
        },
    );
    // It reports again and is back.
    nodes[1].run(&master, &[]);
    assert_eq!(nodes[0].run(&master, &[]).code, 2);
    assert_eq!(nodes[0].members(), vec!["127.0.0.2:4000", "127.0.0.3:4000"]);
}
