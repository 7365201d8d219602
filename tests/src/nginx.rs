//! nginx as a cluster's load balancer (the ALB of a real deployment):
//! started on a free loopback port in its own temporary directory, with
//! the cluster's servers as upstreams, passive health checks (a server
//! that refused a connection is left alone for 1 s: `max_fails=1
//! fail_timeout=1s`) and `proxy_next_upstream`, so that a request a server
//! refuses goes to another one; stopped when dropped. A cluster behind it
//! needs a `rollout.settle` longer than that second.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::wait_for;

/// A running nginx.
pub struct Nginx {
    dir: TempDir,
    child: Child,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
}

impl Nginx {
    /// Starts `program` balancing over `upstreams` (`IP:PORT` each).
    pub fn start(program: &Path, upstreams: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::free_port();
        let addr = format!("127.0.0.1:{port}");
        let d = dir.path().display();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("    server {u} max_fails=1 fail_timeout=1s;\n"))
            .collect();
        let user = if nix::unistd::geteuid().is_root() {
            "user root;\n"
        } else {
            ""
        };
        let config = format!(
            "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
events {{ worker_connections 512; }}\n\
http {{\n\
  access_log off;\n\
  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
  upstream cluster {{\n{servers}  }}\n\
  server {{\n\
    listen {addr};\n\
    location / {{\n\
      proxy_pass http://cluster;\n\
      proxy_connect_timeout 1s;\n\
      proxy_read_timeout 10s;\n\
      proxy_next_upstream error timeout http_502 http_503 http_504;\n\
      proxy_next_upstream_tries 0;\n\
    }}\n\
  }}\n\
}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = Command::new(program)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let mut nginx = Self { dir, child, addr };
        wait_for("nginx to listen", Duration::from_secs(20), || {
            if let Some(status) = nginx.child.try_wait().ok().flatten() {
                panic!("nginx exited with {status}: {}", nginx.error_log());
            }
            std::net::TcpStream::connect(&nginx.addr).ok()
        });
        nginx
    }

    /// Its error log (the upstreams it gave up on, say).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        crate::process::stop_child(&mut self.child);
    }
}
