//! `POST /requestConsent`, `POST /updateConsent` (-06 §5.7): the
//! `ConsentEntry` body (`clientKeyPackages` only for `grant`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::consent::run(data));
