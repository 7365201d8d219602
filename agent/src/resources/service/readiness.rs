//! Readiness probes: is the server answering? A plain TCP connect, or an
//! HTTP/1.0 GET over a blocking socket (the apply engine is synchronous);
//! HTTPS takes the server's certificate as it is (WSO2's is self-signed:
//! the probe asks whether the server answers, not who it is).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// One readiness probe: `tcp://HOST:PORT` connects; `http://` and
/// `https://` URLs must answer with a 2xx or 3xx status line. HTTPS takes
/// the server's certificate as it is (WSO2's is self-signed).
pub fn probe(health: &str) -> Result<(), String> {
    let timeout = Duration::from_secs(2);
    let (scheme, rest) = match health.split_once("://") {
        Some((scheme @ ("tcp" | "http" | "https"), rest)) => (scheme, rest),
        _ => {
            return Err(format!(
                "unsupported health check {health:?} (tcp://, http:// or https://)"
            ));
        }
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let head = match scheme {
        "tcp" => return Ok(()),
        "http" => exchange(stream, &request)?,
        _ => {
            let host = authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = rustls_pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("{host}: {e}"))?;
            let config = rigger_common::tls::health_check_client_config()
                .map_err(|e| rigger_common::error_chain(&e))?;
            let tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(rustls::StreamOwned::new(tls, stream), &request)?
        }
    };
    match head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
    {
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(code) => Err(format!("HTTP {code}")),
        None => Err("not an HTTP answer".into()),
    }
}

/// Sends `request` and returns the start of the answer (its status line).
fn exchange(mut stream: impl Read + Write, request: &str) -> Result<String, String> {
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut filled = 0;
    // The status line may arrive in pieces (TLS records); 64 bytes hold it.
    while filled < 16 {
        match stream.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if filled == 0 => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&head[..filled]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one HTTPS request with a self-signed certificate on loopback.
    fn one_https_answer(status: &'static str) -> (std::thread::JoinHandle<()>, u16) {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let key =
            rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(rigger_common::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut request = [0u8; 256];
            let _ = tls.read(&mut request).unwrap();
            write!(tls, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").unwrap();
            tls.flush().unwrap();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
        (server, port)
    }

    #[test]
    fn https_probes_accept_a_self_signed_certificate_and_read_the_status() {
        let (server, port) = one_https_answer("200 OK");
        probe(&format!("https://127.0.0.1:{port}/carbon/admin/login.jsp")).unwrap();
        server.join().unwrap();

        let (server, port) = one_https_answer("503 Service Unavailable");
        assert_eq!(
            probe(&format!("https://127.0.0.1:{port}/")).unwrap_err(),
            "HTTP 503"
        );
        server.join().unwrap();

        // A plain TCP listener that closes at once is not a ready HTTPS server.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let closer = std::thread::spawn(move || drop(listener.accept().unwrap()));
        assert!(probe(&format!("https://127.0.0.1:{port}/")).is_err());
        closer.join().unwrap();
        assert!(
            probe("ftp://127.0.0.1/")
                .unwrap_err()
                .contains("unsupported")
        );
    }
}
