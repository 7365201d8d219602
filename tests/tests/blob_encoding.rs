//! Blobs on the wire: a node that accepts gzip gets a tree's manifest (JSON
//! text) gzip-encoded and decodes it to bytes that hash to its name; the
//! pack's binary files come as they are; the manifest asked again comes
//! from the encoding the master kept; a node that does not say it accepts
//! gzip gets every blob as it is. Real master, real mTLS gRPC.

use std::io::Read;

use rigger_common::blob_layout::BlobLayout;
use rigger_common::digest::Digest;
use rigger_common::proto::FetchBlobsRequest;
use rigger_common::proto::content_service_client::ContentServiceClient;
use rigger_common::tls::ClientIdentity;
use rigger_tests::node_client::channel;
use rigger_tests::{TestAgent, TestMaster};

const SSL: &str = "/var/lib/rigger/agent/ssl";

/// Each blob's bytes (as sent) and encoding.
type Received = Vec<(String, Vec<u8>, String)>;

async fn fetch(chan: tonic::transport::Channel, digests: &[String], gzip: bool) -> Received {
    let mut stream = ContentServiceClient::new(chan)
        .fetch_blobs(FetchBlobsRequest {
            digests: digests.to_vec(),
            accept_encodings: if gzip { vec!["gzip".into()] } else { vec![] },
        })
        .await
        .unwrap()
        .into_inner();
    let mut blobs: Received = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        match blobs.last_mut() {
            Some((digest, bytes, encoding)) if *digest == chunk.digest => {
                assert_eq!(chunk.offset, bytes.len() as u64);
                assert_eq!(*encoding, chunk.encoding, "one encoding per blob");
                bytes.extend(chunk.data);
            }
            _ => {
                assert_eq!(chunk.offset, 0);
                blobs.push((chunk.digest, chunk.data, chunk.encoding));
            }
        }
    }
    blobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_travels_gzip_encoded_and_binary_files_as_they_are() {
    let (master, agent) = tokio::task::spawn_blocking(|| {
        let master = TestMaster::start_empty();
        let pack = rigger_tests::pack::SamplePack::new(200, 2 << 20);
        assert_eq!(master.import_pack(&pack).code, 0);
        let agent = TestAgent::new("wire-1");
        let run = agent.enroll(&master, &["--role", "is"]);
        assert_eq!(run.code, 2, "{}", run.all());
        (master, agent)
    })
    .await
    .unwrap();
    let read = |file: &str| std::fs::read_to_string(agent.path(&format!("{SSL}/{file}"))).unwrap();
    let identity = ClientIdentity {
        cert_pem: read("node.crt"),
        key_pem: read("node.key"),
    };
    let chan = channel(&master.url(), &read("ca.crt"), Some(&identity))
        .await
        .unwrap();
    let cached: Vec<String> = BlobLayout::new(agent.path("/var/lib/rigger/agent/cache"))
        .files()
        .unwrap()
        .into_iter()
        .map(|b| b.digest.to_string())
        .collect();
    assert!(cached.len() > 200, "{} blobs cached", cached.len());

    let encoded = fetch(chan.clone(), &cached, true).await;
    assert_eq!(encoded.len(), cached.len());
    let mut manifests = 0;
    for (digest, bytes, encoding) in &encoded {
        let decoded = match encoding.as_str() {
            "gzip" => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(bytes.as_slice())
                    .read_to_end(&mut out)
                    .unwrap();
                assert!(out.len() > bytes.len(), "encoding made {digest} smaller");
                out
            }
            "" => bytes.clone(),
            other => panic!("unexpected encoding {other}"),
        };
        assert_eq!(Digest::of(&decoded).to_string(), *digest);
        let is_manifest =
            decoded.starts_with(b"{") && decoded.windows(8).any(|w| w == b"\"digest\"");
        if is_manifest {
            manifests += 1;
            assert_eq!(encoding, "gzip", "the manifest {digest} came as it is");
        }
        if decoded.starts_with(b"PK") || decoded.contains(&0) {
            assert_eq!(encoding, "", "binary blob {digest} was encoded");
        }
    }
    assert!(manifests >= 1, "no manifest among the cached blobs");
    // Asked again (the next node): the manifest's encoding the master kept
    // comes, byte for byte what the first fetch got.
    let again = fetch(chan.clone(), &cached, true).await;
    assert_eq!(again, encoded);

    let plain = fetch(chan, &cached, false).await;
    assert!(plain.iter().all(|(_, _, encoding)| encoding.is_empty()));
    for (digest, bytes, _) in &plain {
        assert_eq!(Digest::of(bytes).to_string(), *digest);
    }
}
