//! A stand-in for AWS's signing of instance identity documents: a test
//! RSA-2048 certificate (made by `openssl`, like AWS's own) signs
//! documents into the `rsa2048` form IMDS serves (a PKCS#7 SignedData
//! carrying the document, SHA-256, signed attributes, no certificates),
//! and the master is given that certificate as the region's.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;

/// An instance identity document's fields.
#[derive(Debug, Clone)]
pub struct Document {
    /// `accountId`.
    pub account: String,
    /// `region`.
    pub region: String,
    /// `instanceId`.
    pub instance_id: String,
    /// `imageId`.
    pub image: String,
    /// `privateIp`.
    pub private_ip: String,
    /// `pendingTime`, RFC 3339.
    pub pending_time: String,
}

impl Document {
    /// An instance of account 111111111111 in us-east-1, launched a
    /// minute ago.
    pub fn new(instance_id: &str, private_ip: &str) -> Self {
        let launched = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        Self {
            account: "111111111111".into(),
            region: "us-east-1".into(),
            instance_id: instance_id.into(),
            image: "ami-0rigger".into(),
            private_ip: private_ip.into(),
            pending_time: humantime::format_rfc3339_seconds(launched).to_string(),
        }
    }

    /// The JSON IMDS serves, laid out as AWS does.
    pub fn json(&self) -> String {
        format!(
            "{{\n  \"accountId\" : \"{}\",\n  \"architecture\" : \"x86_64\",\n  \"availabilityZone\" : \"{}a\",\n  \"billingProducts\" : null,\n  \"devpayProductCodes\" : null,\n  \"marketplaceProductCodes\" : null,\n  \"imageId\" : \"{}\",\n  \"instanceId\" : \"{}\",\n  \"instanceType\" : \"m5.large\",\n  \"kernelId\" : null,\n  \"pendingTime\" : \"{}\",\n  \"privateIp\" : \"{}\",\n  \"ramdiskId\" : null,\n  \"region\" : \"{}\",\n  \"version\" : \"2017-09-30\"\n}}",
            self.account,
            self.region,
            self.image,
            self.instance_id,
            self.pending_time,
            self.private_ip,
            self.region
        )
    }
}

/// A test signing certificate standing in for AWS's RSA-2048 one.
pub struct TestAws {
    dir: tempfile::TempDir,
}

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Default for TestAws {
    fn default() -> Self {
        Self::new()
    }
}

impl TestAws {
    /// A new key and self-signed certificate. Needs `openssl`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/C=US/O=Rigger tests/CN=Test AWS RSA-2048",
            ],
            dir.path(),
        );
        Self { dir }
    }

    /// The certificate, PEM.
    pub fn certificate(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("cert.pem")).unwrap()
    }

    /// A directory for the master's `aws_certificates`, holding this
    /// certificate as each of `regions`' (`<region>.pem`).
    pub fn certificates_dir(&self, regions: &[&str]) -> PathBuf {
        let dir = self.dir.path().join("aws-certificates");
        std::fs::create_dir_all(&dir).unwrap();
        for region in regions {
            std::fs::write(dir.join(format!("{region}.pem")), self.certificate()).unwrap();
        }
        dir
    }

    /// `document` and its `rsa2048` signature, as IMDS serves them.
    pub fn sign(&self, document: &Document) -> (String, String) {
        let json = document.json();
        std::fs::write(self.dir.path().join("document"), &json).unwrap();
        let der = openssl(
            &[
                "smime",
                "-sign",
                "-binary",
                "-nodetach",
                "-nocerts",
                "-md",
                "sha256",
                "-signer",
                "cert.pem",
                "-inkey",
                "key.pem",
                "-in",
                "document",
                "-outform",
                "DER",
            ],
            self.dir.path(),
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(der);
        // IMDS wraps it in lines of 64.
        let wrapped = encoded
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        (json, wrapped)
    }
}
