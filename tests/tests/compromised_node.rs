//! A compromised node: an attacker holding one node's key and certificate
//! tries to reach beyond that node, over the node-facing gRPC API with
//! that identity. Every attempt is refused, and the refusal says why:
//! another node's catalog (the identity is the certificate, never a
//! request field), another role's catalog and secrets, a blob its
//! catalog does not reference (one the master holds), a second name
//! enrolled on the strength of its certificate, and a renewal as another
//! node.

use rigger_common::proto::catalog_service_client::CatalogServiceClient;
use rigger_common::proto::content_service_client::ContentServiceClient;
use rigger_common::proto::enrollment_service_client::EnrollmentServiceClient;
use rigger_common::proto::{EnrollRequest, FetchBlobsRequest, GetCatalogRequest};
use rigger_common::tls::ClientIdentity;
use rigger_tests::node_client::{channel, renew};
use rigger_tests::{TestAgent, TestMaster};

const SSL: &str = "/var/lib/rigger/agent/ssl";

fn csr_for(name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_node_identity_reaches_nothing_beyond_that_node() {
    let (master, stolen, victim, artifact) = tokio::task::spawn_blocking(|| {
        let master = TestMaster::start();
        // A blob the master holds that no catalog references.
        let jar = master.data_dir().join("../unused-driver.jar");
        std::fs::write(&jar, b"PK another role's driver").unwrap();
        let out = master.ctl(&[
            "artifact",
            "import",
            jar.to_str().unwrap(),
            "--name",
            "unused",
        ]);
        assert_eq!(out.code, 0, "{}", out.all());
        let listed: serde_json::Value =
            serde_json::from_str(&master.ctl(&["artifact", "list", "--json"]).stdout).unwrap();
        let artifact = listed[0]["digest"].as_str().unwrap().to_string();
        let stolen = TestAgent::new("stolen-1");
        let victim = TestAgent::new("victim-1");
        assert_eq!(stolen.enroll(&master, &["--role", "is"]).code, 2);
        assert_eq!(victim.enroll(&master, &["--role", "is"]).code, 2);
        (master, stolen, victim, artifact)
    })
    .await
    .unwrap();
    let read = |agent: &TestAgent, file: &str| {
        std::fs::read_to_string(agent.path(&format!("{SSL}/{file}"))).unwrap()
    };
    let identity = ClientIdentity {
        cert_pem: read(&stolen, "node.crt"),
        key_pem: read(&stolen, "node.key"),
    };
    let ca = read(&stolen, "ca.crt");
    let url = master.url();
    let chan = channel(&url, &ca, Some(&identity)).await.unwrap();

    // Another node's catalog: there is no name to ask with; the reply is
    // always the caller's own, whatever the facts claim.
    let facts = serde_json::json!({"hostname": "victim-1", "ec2": {"instance_id": "victim-1"}});
    let reply = CatalogServiceClient::new(chan.clone())
        .get_catalog(GetCatalogRequest {
            facts_json: facts.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let catalog: serde_json::Value = serde_json::from_slice(&reply.catalog_json).unwrap();
    assert_eq!(catalog["node"], "stolen-1");

    // Another role's catalog, and the secrets it holds.
    let err = CatalogServiceClient::new(chan.clone())
        .get_catalog(GetCatalogRequest {
            facts_json: "{}".into(),
            role: "apim".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("may not ask for role \"apim\""),
        "{}",
        err.message()
    );

    // A blob the master holds that its catalog does not reference.
    let err = ContentServiceClient::new(chan.clone())
        .fetch_blobs(FetchBlobsRequest {
            digests: vec![artifact.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("not referenced by the catalog of node stolen-1"),
        "{}",
        err.message()
    );

    // A second name, enrolled on the strength of its certificate.
    let err = EnrollmentServiceClient::new(chan.clone())
        .enroll(EnrollRequest {
            csr_pem: csr_for("stolen-2"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    // Nor its own name again with another key (to keep a copy of the
    // identity alive after the node is rebuilt).
    let err = EnrollmentServiceClient::new(chan.clone())
        .enroll(EnrollRequest {
            csr_pem: csr_for("stolen-1"),
            token: master.token(&["--role", "is"]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");

    // A renewal as another node.
    let err = renew(&url, &ca, &identity, "victim-1").await.unwrap_err();
    assert!(err.starts_with("PermissionDenied"), "{err}");
    assert!(err.contains("may renew only its own certificate"), "{err}");

    // The victim is untouched: its certificate is still its only one.
    let certs: serde_json::Value =
        serde_json::from_str(&master.ctl(&["cert", "list", "--json"]).stdout).unwrap();
    let names: Vec<&str> = certs
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["certname"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "victim-1").count(),
        1,
        "{certs}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "stolen-2").count(),
        0,
        "{certs}"
    );
    tokio::task::spawn_blocking(move || drop((master, stolen, victim)))
        .await
        .unwrap();
}
