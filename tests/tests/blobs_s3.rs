//! The master's S3 content store against a real S3-compatible server
//! (`s3s-fs` on loopback): the same conformance suite as the local disk,
//! large blobs in parts, and damaged objects refused as they are read.

use rigger_common::digest::Digest;
use rigger_master::content::blobs::conformance::CASES;
use rigger_master::content::blobs::{BlobError, BlobStore, PART_SIZE, S3BlobStore, S3Settings};
use rigger_tests::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use tokio::io::AsyncReadExt;

fn store(server: &S3Server, bucket: &str, prefix: &str, spool: &std::path::Path) -> S3BlobStore {
    S3BlobStore::open(
        &S3Settings {
            bucket: bucket.into(),
            prefix: prefix.into(),
            region: "us-east-1".into(),
            endpoint: Some(server.endpoint()),
            credentials: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
        },
        spool,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_passes_the_conformance_suite() {
    let Some(server) = S3Server::start("the_s3_store_passes_the_conformance_suite") else {
        return;
    };
    let spool = tempfile::tempdir().unwrap();
    for (i, (name, case)) in CASES.iter().enumerate() {
        eprintln!("conformance case {name}");
        let bucket = format!("case-{i}");
        server.bucket(&bucket);
        case(&store(&server, &bucket, "rigger", spool.path())).await;
    }
    // Nothing is left spooled.
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_blob_goes_up_in_parts_and_a_damaged_object_is_refused() {
    let Some(server) =
        S3Server::start("a_large_blob_goes_up_in_parts_and_a_damaged_object_is_refused")
    else {
        return;
    };
    server.bucket("blobs");
    let spool = tempfile::tempdir().unwrap();
    let s3 = store(&server, "blobs", "prod/", spool.path());
    // Two and a half parts.
    let bytes: Vec<u8> = (0..(PART_SIZE * 5 / 2) as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let stored = s3
        .put_stream(Box::pin(std::io::Cursor::new(bytes.clone())))
        .await
        .unwrap();
    assert!(stored.new);
    assert_eq!(stored.digest, Digest::of(&bytes));
    let mut back = Vec::new();
    s3.open(&stored.digest)
        .await
        .unwrap()
        .read_to_end(&mut back)
        .await
        .unwrap();
    assert!(back == bytes, "the large blob came back different");
    // Under the prefix, by digest: another master finds it there.
    let hex = stored
        .digest
        .to_string()
        .trim_start_matches("sha256:")
        .to_string();
    let object = server.object_path("blobs", &format!("prod/sha256/{}/{hex}", &hex[..2]));
    assert!(object.is_file(), "{} is not there", object.display());
    let other_master = store(&server, "blobs", "prod", spool.path());
    assert!(other_master.has(&stored.digest).await.unwrap());

    // Someone overwrites the object in the bucket: a reader fails at the
    // end, naming the blob, instead of passing the bytes off as it.
    let small = s3.put(b"deployment.toml".to_vec()).await.unwrap();
    let hex = small
        .digest
        .to_string()
        .trim_start_matches("sha256:")
        .to_string();
    std::fs::write(
        server.object_path("blobs", &format!("prod/sha256/{}/{hex}", &hex[..2])),
        b"tampered!!!!!!!",
    )
    .unwrap();
    let mut read = Vec::new();
    let err = s3
        .open(&small.digest)
        .await
        .unwrap()
        .read_to_end(&mut read)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is damaged"), "{err}");
    assert!(matches!(
        s3.read(&small.digest).await,
        Err(BlobError::Io { .. } | BlobError::Damaged { .. })
    ));
}

#[test]
fn a_master_on_s3_imports_into_the_bucket_and_serves_a_node_from_it() {
    let Some(server) =
        S3Server::start("a_master_on_s3_imports_into_the_bucket_and_serves_a_node_from_it")
    else {
        return;
    };
    server.bucket("rigger-content");
    let endpoint = server.endpoint();
    let master = rigger_tests::TestMaster::start_with_env(
        &[
            "--blobs",
            "s3",
            "--blobs-bucket",
            "rigger-content",
            "--blobs-prefix",
            "prod",
            "--blobs-endpoint",
            &endpoint,
        ],
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ],
    );
    // The pack went to the bucket, not to the data directory.
    let in_bucket = walkdir::WalkDir::new(server.object_path("rigger-content", "prod/sha256"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .count();
    assert!(in_bucket > 40, "{in_bucket} objects in the bucket");
    let local = master.data_dir().join("blobs/sha256");
    assert!(
        !local.exists() || std::fs::read_dir(&local).unwrap().count() == 0,
        "blobs in the data directory"
    );
    let node = rigger_tests::TestAgent::new("s3-node");
    let first = node.enroll(&master, &["--role", "is"]);
    assert_eq!(first.code, 2, "{}", first.all());
    assert!(first.stdout.contains("fetched"), "{}", first.all());
    let again = node.once(&master.url(), &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        std::fs::read_to_string(
            node.path("/opt/wso2/wso2is-5.11.0/repository/conf/deployment.toml")
        )
        .unwrap()
        .contains("[server]"),
        "the product's own file, edited, from the bucket"
    );
}
