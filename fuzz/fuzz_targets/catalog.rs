//! Catalog decoding and validation as an agent does it: bytes signed by
//! the pinned key (so that the fuzzer reaches past the signature), then
//! JSON decoding, the digest check and the structural validation of every
//! resource and path. Must refuse, never panic.
#![no_main]

use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;
use rigger_common::signing::{SignedCatalog, verify_catalog};

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let signed = SignedCatalog {
        catalog_json: data.to_vec(),
        signature: key.sign(data).to_bytes().to_vec(),
    };
    if let Ok(catalog) = verify_catalog(&key.verifying_key().to_bytes(), &signed) {
        let _ = catalog.content.apply_order();
    }
    // Past a digest the fuzzer cannot forge: the structure itself.
    if let Ok(catalog) = serde_json::from_slice::<rigger_common::catalog::Catalog>(data) {
        let _ = catalog.content.apply_order();
        let _ = catalog.content.digest();
    }
});
