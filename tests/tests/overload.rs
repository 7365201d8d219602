//! A busy master tells nodes when to come back instead of falling over,
//! and nodes come back: with every blob stream taken, a node's run waits,
//! is told `RESOURCE_EXHAUSTED` with a retry-after hint, asks again and
//! converges once a place is free.

use std::time::Duration;

use rigger_agent::client::{Connector, GrpcConnector};
use rigger_common::blob_layout::BlobLayout;
use rigger_common::grpc::MasterAddress;
use rigger_tests::imds::Instance;
use rigger_tests::{FakeImds, TestAgent, TestMaster};

#[test]
fn a_busy_master_tells_a_node_when_to_come_back_and_it_does() {
    let master = TestMaster::start_empty_with(&["--max-blob-streams", "1"]);
    // Big enough that a stream nobody reads fills its window and stalls.
    let pack = rigger_tests::pack::SamplePack::new(40, 16 << 20);
    assert_eq!(master.import_pack(&pack).code, 0);
    let imds_a = FakeImds::start(Instance::at("i-busy-a", "127.0.0.91"));
    let a = TestAgent::new("busy-a");
    // One stream at a time is enough for one node.
    let first = a.enroll_at(&master, "is", &imds_a.url());
    assert_eq!(first.code, 2, "{}", first.all());

    // A takes the one blob stream and does not read it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let paths = rigger_agent::paths::Paths::new(a.root());
    let identity = rigger_agent::identity::load(&paths.ssl_dir())
        .unwrap()
        .expect("a enrolled");
    let cached: Vec<_> = BlobLayout::new(paths.state_dir().join("cache"))
        .files()
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .collect();
    assert!(!cached.is_empty());
    let held = runtime.block_on(async {
        let connector = GrpcConnector {
            master: MasterAddress::parse(&master.url()).unwrap().into(),
            timeout: Duration::from_secs(10),
        };
        let client = connector.connect(&identity).await.unwrap();
        let stream = client.fetch_blobs(cached).await.unwrap();
        (client, stream)
    });

    // B's run finds no place: told to come back, it does once A lets go.
    let imds_b = FakeImds::start(Instance::at("i-busy-b", "127.0.0.92"));
    let b = TestAgent::new("busy-b");
    let run = std::thread::scope(|scope| {
        let run = scope.spawn(|| b.enroll_at(&master, "is", &imds_b.url()));
        // B waits its 2 s for a place and is told to come back; then A
        // lets go.
        rigger_tests::wait_for(
            "the master to tell b to come back",
            Duration::from_secs(60),
            || {
                master
                    .log()
                    .contains("busy: a request was told to come back")
                    .then_some(())
            },
        );
        drop(held);
        run.join().unwrap()
    });
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("the master is busy: it serves 1 blob streams at once"),
        "the node was not told: {}",
        run.all()
    );
    assert!(run.stderr.contains("asking again"), "{}", run.all());
}
