//! The master stays reachable under abuse: connections held idle without a
//! certificate, handshakes never finished and floods of bad-token
//! enrollments cannot lock nodes or `masterctl` out.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use rigger_common::proto::EnrollRequest;
use rigger_common::proto::enrollment_service_client::EnrollmentServiceClient;
use rigger_common::tls::client_config;
use rigger_tests::{TestAgent, TestMaster};
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

/// Raw TCP connections that never start a handshake.
const SILENT: usize = 600;
/// TLS connections without a client certificate that never send an RPC.
const IDLE_TLS: usize = 500;

/// Lets this test process open as many sockets as it needs.
fn raise_own_open_file_limit(needed: u64) {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        hard >= needed,
        "this test opens {needed} sockets but the hard open-file limit is {hard}"
    );
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

fn tls_connector(master: &TestMaster) -> TlsConnector {
    let ca_pem = std::fs::read_to_string(master.data_dir().join("ca.crt")).unwrap();
    TlsConnector::from(Arc::new(client_config(&ca_pem, None).unwrap()))
}

/// A channel to the master whose connections come from `source`.
async fn channel_from(master: &TestMaster, source: IpAddr) -> Channel {
    let connector = tls_connector(master);
    let addr: SocketAddr = master.addr.parse().unwrap();
    Endpoint::from_static("http://127.0.0.1")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            async move {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(source, 0))?;
                let tcp = socket.connect(addr).await?;
                let name = ServerName::IpAddress(addr.ip().into());
                Ok::<_, std::io::Error>(TokioIo::new(connector.connect(name, tcp).await?))
            }
        }))
        .await
        .unwrap()
}

/// Whether the master has closed `stream` (a read returns end of file or an
/// error instead of blocking).
fn closed_by_master(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    !matches!(stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

fn master_descriptors(master: &TestMaster) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", master.pid()))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_master_limited_to_1024_files_serves_a_node_while_1100_idle_connections_are_held() {
    raise_own_open_file_limit(4096);
    let master = TestMaster::start_with_open_file_limit(1024);
    assert!(
        master.log().contains("max_connections=896"),
        "the cap follows the open-file limit: {}",
        master.log()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let silent: Vec<TcpStream> = (0..SILENT)
        .map(|_| TcpStream::connect(&master.addr).unwrap())
        .collect();
    let connector = tls_connector(&master);
    let mut idle_tls = Vec::with_capacity(IDLE_TLS);
    rt.block_on(async {
        for _ in 0..IDLE_TLS {
            let tcp = tokio::net::TcpStream::connect(&master.addr).await.unwrap();
            let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
            let tls = connector.connect(name, tcp).await.expect("TLS handshake");
            idle_tls.push(tls);
        }
    });
    let opened_in = started.elapsed();

    // A node enrolls and applies its catalog while all of them are open.
    let node = TestAgent::new("node-abuse");
    let run_started = Instant::now();
    let out = node.enroll(&master, &["--role", "is"]);
    let run_took = run_started.elapsed();
    assert_eq!(out.code, 2, "the node's first run: {}", out.all());
    let listed = master.ctl(&["node", "list"]);
    assert_eq!(listed.code, 0, "masterctl: {}", listed.all());
    assert!(listed.stdout.contains("node-abuse"), "{}", listed.all());
    let descriptors = master_descriptors(&master);
    assert!(descriptors <= 1024, "{descriptors} descriptors");
    let made_room = silent.iter().filter(|s| closed_by_master(s)).count();

    // Connections that send no RPC are closed by the master.
    let tls_closed = rt.block_on(async {
        use tokio::io::AsyncReadExt;
        let mut closed = 0;
        for stream in &mut idle_tls {
            // The server's HTTP/2 settings come first, then the end.
            let mut sent = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut sent)).await;
            if read.is_ok() {
                closed += 1;
            }
        }
        closed
    });
    let all_closed_after = started.elapsed();
    assert_eq!(tls_closed, IDLE_TLS, "every idle TLS connection is closed");
    let silent_closed = silent.iter().filter(|s| closed_by_master(s)).count();
    assert_eq!(silent_closed, SILENT, "every silent connection is closed");
    eprintln!(
        "held {} connections (opened in {:.2?}); the master closed {made_room} silent ones to make room, \
         had {descriptors} descriptors open; the node's first run took {run_took:.2?}; \
         every idle connection was closed {all_closed_after:.2?} after the first was opened",
        SILENT + IDLE_TLS,
        opened_in
    );
}

#[test]
fn a_flood_of_bad_token_enrollments_is_refused_and_logged_in_a_few_lines() {
    let master = TestMaster::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "flood");
    let csr_pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let flood_started = Instant::now();
    let codes = rt.block_on(async {
        let mut client =
            EnrollmentServiceClient::new(channel_from(&master, [127, 0, 0, 9].into()).await);
        let mut codes = Vec::new();
        for i in 0..300 {
            let request = EnrollRequest {
                csr_pem: csr_pem.clone(),
                token: format!("guess-{i}"),
                ..Default::default()
            };
            codes.push(client.enroll(request).await.unwrap_err().code());
        }
        codes
    });
    let unauthenticated = codes
        .iter()
        .filter(|c| **c == tonic::Code::Unauthenticated)
        .count();
    let exhausted = codes
        .iter()
        .filter(|c| **c == tonic::Code::ResourceExhausted)
        .count();
    assert_eq!(unauthenticated + exhausted, 300, "{codes:?}");
    // A burst of 20, then two a second.
    let allowed = 20 + 2 * flood_started.elapsed().as_secs() as usize + 2;
    assert!(
        (20..=allowed).contains(&unauthenticated),
        "the address gets its burst and its pace, no more: {unauthenticated} tokens checked, {allowed} allowed"
    );
    let log = master.log();
    let lines = log.matches("enrollment refused").count();
    assert!(
        (1..=3).contains(&lines),
        "300 refusals in {lines} log lines:\n{log}"
    );
    // Another address enrolls at once.
    let node = TestAgent::new("node-after-flood");
    let out = node.enroll(&master, &["--role", "is"]);
    assert_eq!(out.code, 2, "{}", out.all());
    eprintln!(
        "300 bad-token enrollments: {unauthenticated} checked, {exhausted} refused unchecked, {lines} log line(s)"
    );
}
