//! Room state components carried in the MLS `app_data_dictionary` and in
//! AppDataUpdate proposals (-06 §7, §5.4.1; draft-ietf-mimi-room-policy):
//! participant list and its update (§7.5), room metadata (§7.6), roles,
//! pre-authorisation, base room policy, status notifications, join link
//! policy, join links and their update, link preview, asset, logging, chat
//! history, bot and message expiration policies, MLS operational
//! parameters, and the franking components (`frank_aad`,
//! `franking_signature_key`) plus the `Frank` struct. Also the dictionary
//! itself, read component by component.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::components::run(data));
