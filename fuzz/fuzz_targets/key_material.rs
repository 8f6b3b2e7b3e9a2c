//! `POST /keyMaterial/{targetUser}` (-06 §5.2): `KeyMaterialRequest` (the
//! request body a provider receives) and `KeyMaterialResponse` (the
//! response body it gets back from a target or hub).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::key_material::run(data));
