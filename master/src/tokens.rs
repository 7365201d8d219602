//! Bootstrap tokens: random, shown once, stored only as a sha256 hash.

use rigger_common::time::now_ms;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::state::MasterState;

/// A fresh token: 32 random bytes, hex.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The hash under which a token is stored.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// How a token is named on the screens: the start of its hash (the token
/// itself is never shown again).
pub fn id(hash: &str) -> String {
    hash.chars().take(ID_LEN).collect()
}

/// Hex digits of a token id.
pub const ID_LEN: usize = 12;

/// A token as `masterctl token list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    /// [`id`].
    pub id: String,
    /// The stored record.
    pub record: crate::store::TokenRecord,
    /// When it was made, Unix ms.
    pub created_at_ms: i64,
}

/// Every token, newest first.
pub async fn list(state: &MasterState) -> Result<Vec<TokenView>> {
    Ok(state
        .store
        .tokens()
        .await?
        .into_iter()
        .map(|(hash, record, created_at_ms)| TokenView {
            id: id(&hash),
            record,
            created_at_ms,
        })
        .collect())
}

/// Revokes the one token whose hash starts with `id` (at least 8 hex
/// digits); returns it as it is after.
pub async fn revoke(state: &MasterState, id_or_prefix: &str) -> Result<TokenView> {
    let prefix = id_or_prefix.trim().to_ascii_lowercase();
    if prefix.len() < 8 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::InvalidArgument(format!(
            "{id_or_prefix:?} is not a token id: give the {ID_LEN} hex digits `masterctl token list` shows"
        )));
    }
    let matching: Vec<(String, crate::store::TokenRecord, i64)> = state
        .store
        .tokens()
        .await?
        .into_iter()
        .filter(|(hash, _, _)| hash.starts_with(&prefix))
        .collect();
    let [(hash, _, created_at_ms)] = matching.as_slice() else {
        return Err(if matching.is_empty() {
            Error::NotFound(format!("no token has the id {prefix}"))
        } else {
            Error::InvalidArgument(format!(
                "{} tokens have ids starting with {prefix}: give more digits",
                matching.len()
            ))
        });
    };
    state.store.revoke_token(hash, now_ms()).await?;
    tracing::warn!(token = %id(hash), "bootstrap token revoked");
    let record = state
        .store
        .token(hash)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no token has the id {prefix}")))?;
    Ok(TokenView {
        id: id(hash),
        record,
        created_at_ms: *created_at_ms,
    })
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
