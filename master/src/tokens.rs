//! Bootstrap tokens: random, shown once, stored only as a sha256 hash.

use sha2::{Digest, Sha256};

/// A fresh token: 32 random bytes, hex.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The hash under which a token is stored.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, b) = (super::generate(), super::generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(super::hash(&a), super::hash(&format!("{a}\n")));
        assert_ne!(super::hash(&a), super::hash(&b));
    }
}
