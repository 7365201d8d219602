//! A fake EC2 instance metadata service (IMDSv2) on 127.0.0.1, so that
//! agents under test get EC2 facts without leaving loopback.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

const TOKEN: &str = "fake-imds-session-token";

/// What the fake instance reports.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `instance-id`.
    pub instance_id: String,
    /// `local-ipv4` (give each test node its own loopback address).
    pub private_ip: String,
    /// `placement/availability-zone`.
    pub availability_zone: String,
    /// Instance tags.
    pub tags: BTreeMap<String, String>,
    /// The signed identity document (`dynamic/instance-identity/document`
    /// and its `rsa2048` signature); none unless a test signs one
    /// ([`crate::aws::TestAws::sign`]).
    pub identity: Option<(String, String)>,
}

impl Instance {
    /// An untagged instance in us-east-1a with this id and private IP.
    pub fn at(instance_id: &str, private_ip: &str) -> Self {
        Self {
            instance_id: instance_id.to_string(),
            private_ip: private_ip.to_string(),
            availability_zone: "us-east-1a".into(),
            tags: Default::default(),
            identity: None,
        }
    }

    /// The same instance serving `document` signed as `rsa2048`.
    pub fn with_identity(mut self, signed: (String, String)) -> Self {
        self.identity = Some(signed);
        self
    }
}

/// A fake IMDS server running on its own thread and runtime.
pub struct FakeImds {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeImds {
    /// Serves `instance` on 127.0.0.1 at a free port.
    pub fn start(instance: Instance) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let instance = Arc::new(instance);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let instance = instance.clone();
                            let counter = counter.clone();
                            tokio::spawn(async move {
                                let service = service_fn(move |req| {
                                    counter.fetch_add(1, Ordering::SeqCst);
                                    let instance = instance.clone();
                                    async move { Ok::<_, Infallible>(answer(&instance, req)) }
                                });
                                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                            });
                        }
                    }
                }
            });
        });
        Self {
            addr,
            requests,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `--imds-endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(instance: &Instance, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let path = req.uri().path().to_string();
    if req.method() == Method::PUT && path == "/latest/api/token" {
        return if req
            .headers()
            .contains_key("x-aws-ec2-metadata-token-ttl-seconds")
        {
            reply(StatusCode::OK, TOKEN.into())
        } else {
            reply(StatusCode::BAD_REQUEST, "missing ttl header".into())
        };
    }
    // IMDSv2 only: every GET must carry the session token.
    let authorized = req
        .headers()
        .get("x-aws-ec2-metadata-token")
        .is_some_and(|v| v == TOKEN);
    if !authorized {
        return reply(StatusCode::UNAUTHORIZED, String::new());
    }
    if let Some(what) = path.strip_prefix("/latest/dynamic/instance-identity/") {
        return match (&instance.identity, what) {
            (Some((document, _)), "document") => reply(StatusCode::OK, document.clone()),
            (Some((_, rsa2048)), "rsa2048") => reply(StatusCode::OK, rsa2048.clone()),
            _ => reply(StatusCode::NOT_FOUND, String::new()),
        };
    }
    let Some(key) = path.strip_prefix("/latest/meta-data/") else {
        return reply(StatusCode::NOT_FOUND, String::new());
    };
    let az = &instance.availability_zone;
    let value = match key {
        "instance-id" => Some(instance.instance_id.clone()),
        "instance-type" => Some("m5.large".into()),
        "placement/availability-zone" => Some(az.clone()),
        "placement/region" => Some(
            az.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                .to_string(),
        ),
        "local-ipv4" => Some(instance.private_ip.clone()),
        "local-hostname" => Some(format!(
            "ip-{}.ec2.internal",
            instance.private_ip.replace('.', "-")
        )),
        "tags/instance" => Some(instance.tags.keys().cloned().collect::<Vec<_>>().join("\n")),
        other => other
            .strip_prefix("tags/instance/")
            .and_then(|t| instance.tags.get(t).cloned()),
    };
    match value {
        Some(v) => reply(StatusCode::OK, v),
        None => reply(StatusCode::NOT_FOUND, String::new()),
    }
}
