//! Facts validation: what a node sends with each catalog request. Must
//! refuse, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rigger_master::facts::parse(text);
    }
});
