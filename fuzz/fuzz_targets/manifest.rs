//! Manifest decoding (a tree's entries as the master stores and an agent
//! reads them). Must refuse, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = rigger_common::manifest::Manifest::from_json(data) {
        let _ = manifest.digest();
    }
});
