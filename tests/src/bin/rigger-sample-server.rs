//! `rigger-sample-server CARBON_HOME`: the stand-in WSO2 server the sample
//! pack's start scripts run. It reads the configuration as a WSO2 server
//! would (`deployment.toml`, or the XML files of IS 5.4–5.8 and EI 6.x) and
//! exits non-zero if it is not valid (`rigger_tests::server_config`),
//! listens on the node's own IP (`[server] node_ip`, or axis2.xml's
//! `localMemberHost`) at 9763+offset (HTTP)
//! and 9443+offset, answers the health URLs, serves `/rigger/hostname`
//! (the configured host name, so tests see new values after a restart) and
//! `/rigger/environment` (its environment, `NAME=value` lines, sorted: the
//! heap options it was started with, its HOME), and writes `wso2carbon.pid`. An empty `[server] hostname` is an invalid
//! configuration: it exits with an error, as WSO2 would not start.
//! `RIGGER_SAMPLE_STARTUP_MS` delays its start the way a real server's
//! start-up does. `/rigger/slow?ms=N` answers after N ms; on SIGTERM it
//! stops accepting and finishes the requests in flight before it exits.
//! It refuses to start when its host name is `fail.invalid`. After
//! `/rigger/sick` it keeps running but answers every other path with 503
//! (a server that went bad: its readiness check fails).

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;

fn main() -> ExitCode {
    let Some(home) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: rigger-sample-server CARBON_HOME");
        return ExitCode::from(64);
    };
    let config = match rigger_tests::server_config::read(&home) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sample server: {e}");
            return ExitCode::from(1);
        }
    };
    let (hostname, ip, offset) = (config.hostname, config.ip, config.offset);
    // WSO2 takes a while to come up: `RIGGER_SAMPLE_STARTUP_MS` plays that.
    if let Some(ms) = std::env::var("RIGGER_SAMPLE_STARTUP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let mut environment: Vec<String> = std::env::vars()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    environment.sort();
    let answers = std::sync::Arc::new(Answers {
        hostname: hostname.clone(),
        environment: environment.concat(),
        in_flight: Default::default(),
        sick: Default::default(),
    });
    let _ = std::fs::write(
        home.join("wso2carbon.pid"),
        format!("{}\n", std::process::id()),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let http = match tokio::net::TcpListener::bind((ip.as_str(), 9763 + offset)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "sample server: cannot listen on {ip}:{}: {e}",
                    9763 + offset
                );
                return ExitCode::from(1);
            }
        };
        let https = tokio::net::TcpListener::bind((ip.as_str(), 9443 + offset))
            .await
            .ok();
        println!(
            "sample server for {hostname} listening on {ip}:{} and https://{ip}:{} (pid {})",
            9763 + offset,
            9443 + offset,
            std::process::id()
        );
        if let Some(https) = https {
            // HTTPS with a self-signed certificate, as a fresh WSO2 pack has.
            let acceptor = match tls_acceptor(&ip) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("sample server: cannot set up TLS: {e}");
                    return ExitCode::from(1);
                }
            };
            let answers = answers.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = https.accept().await else {
                        continue;
                    };
                    let (acceptor, answers) = (acceptor.clone(), answers.clone());
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve(stream, answers).await;
                        }
                    });
                }
            });
        }
        // SIGTERM: stop accepting, let the requests in flight finish (as a
        // WSO2 server drains on a graceful stop), then exit.
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("sample server: cannot handle SIGTERM: {e}");
                    return ExitCode::from(1);
                }
            };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                accepted = http.accept() => {
                    let Ok((stream, _)) = accepted else {
                        continue;
                    };
                    tokio::spawn(serve(stream, answers.clone()));
                }
            }
        }
        drop(http);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let draining = answers.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0;
        while answers.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if draining {
            // The last responses leave the socket (the count drops as each
            // response is handed to hyper, before it is written).
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        println!("sample server: stopped after finishing the requests in flight");
        ExitCode::SUCCESS
    })
}

/// What the server tells about itself, and the requests it is serving.
struct Answers {
    hostname: String,
    environment: String,
    in_flight: std::sync::atomic::AtomicUsize,
    /// Set by `/rigger/sick`: everything else answers 503.
    sick: std::sync::atomic::AtomicBool,
}

/// Answers HTTP/1.1 on one connection: `/rigger/hostname` gives the
/// configured host name, `/rigger/environment` the environment, every other
/// path "ok".
async fn serve<S>(stream: S, answers: std::sync::Arc<Answers>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        use std::sync::atomic::Ordering::SeqCst;
        if req.uri().path() == "/rigger/sick" {
            answers.sick.store(true, SeqCst);
        }
        let status = if answers.sick.load(SeqCst) && req.uri().path() != "/rigger/sick" {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        let body = match req.uri().path() {
            "/rigger/hostname" => answers.hostname.clone(),
            "/rigger/environment" => answers.environment.clone(),
            _ => "ok".to_string(),
        };
        // `/rigger/slow?ms=N`: a request that takes N ms (at most 10 s).
        let delay = (req.uri().path() == "/rigger/slow")
            .then(|| {
                req.uri()
                    .query()
                    .and_then(|q| q.strip_prefix("ms="))
                    .and_then(|ms| ms.parse::<u64>().ok())
            })
            .flatten()
            .map(|ms| std::time::Duration::from_millis(ms.min(10_000)));
        let answers = answers.clone();
        answers
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            answers
                .in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from(body)))
                    .expect("response"),
            )
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A TLS acceptor with a fresh self-signed certificate for `ip`.
fn tls_acceptor(ip: &str) -> Result<tokio_rustls::TlsAcceptor, Box<dyn std::error::Error>> {
    let certified = rcgen::generate_simple_self_signed(vec![ip.to_string(), "localhost".into()])?;
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}
