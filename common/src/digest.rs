//! sha256, the only digest Rigger uses, written `sha256:<hex>`.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A sha256 digest, displayed and serialized as `sha256:<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Digest([u8; 32]);

/// Read from the text in place (a manifest holds thousands: no string is
/// made for each).
impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sha256:<hex> digest")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Digest, E> {
                Digest::parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// A string that is not a `sha256:<hex>` digest.
#[derive(Debug, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256: followed by 64 hex digits")]
pub struct ParseDigestError(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest of a file's content, read in 256 KiB pieces.
    pub fn of_file(path: &std::path::Path) -> std::io::Result<Self> {
        Self::of_reader(std::fs::File::open(path)?)
    }

    /// The digest of everything `reader` gives, read in 256 KiB pieces.
    pub fn of_reader(mut reader: impl std::io::Read) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Self(hasher.finalize().into()))
    }

    /// A digest from its raw bytes (e.g. a finished hasher).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `sha256:<hex>`; also accepts the colon-separated upper-case
    /// form `openssl x509 -fingerprint -sha256` prints.
    pub fn parse(text: &str) -> Result<Self, ParseDigestError> {
        // The form digests are written in (manifests hold thousands).
        if let Some(hex_part) = text.strip_prefix("sha256:").filter(|h| h.len() == 64) {
            let mut bytes = [0u8; 32];
            if hex::decode_to_slice(hex_part, &mut bytes).is_ok() {
                return Ok(Self(bytes));
            }
        }
        let err = || ParseDigestError(text.to_string());
        let trimmed = text.trim();
        let lower = trimmed.to_ascii_lowercase();
        let hex_part = ["sha256 fingerprint=", "sha256:"]
            .iter()
            .find_map(|prefix| lower.strip_prefix(prefix))
            .ok_or_else(err)?;
        let hex_part: String = hex_part.chars().filter(|c| *c != ':').collect();
        // const-hex takes a `0x` prefix; a digest has none.
        if hex_part.starts_with("0x") {
            return Err(err());
        }
        let bytes = hex::decode(hex_part).map_err(|_| err())?;
        Ok(Self(bytes.try_into().map_err(|_| err())?))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TryFrom<String> for Digest {
    type Error = ParseDigestError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Digest> for String {
    fn from(value: Digest) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let d = Digest::of(b"abc");
        let text = d.to_string();
        assert_eq!(
            text,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::parse(&text).unwrap(), d);
    }

    #[test]
    fn parses_openssl_fingerprint_form() {
        let d = Digest::of(b"abc");
        let colons: Vec<String> = d.as_bytes().iter().map(|b| format!("{b:02X}")).collect();
        let openssl = format!("sha256 Fingerprint={}", colons.join(":"));
        assert_eq!(Digest::parse(&openssl).unwrap(), d);
        assert_eq!(
            Digest::parse(&format!("SHA256:{}", colons.join(":"))).unwrap(),
            d
        );
    }

    #[test]
    fn rejects_malformed_digests() {
        let prefixed = format!("sha256:0x{}", "ab".repeat(32));
        let short_prefixed = format!("sha256:0x{}", "ab".repeat(31));
        for bad in [
            "",
            "sha256:",
            "md5:abcd",
            "sha256:zz",
            "sha256:abcd",
            &prefixed,
            &short_prefixed,
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
