//! `POST /groupInfo/{roomId}` (-06 §5.6): `GroupInfoRequest`,
//! `GroupInfoResponse`, and the decrypted `GroupInfoRatchetTreeTBE` (its
//! plaintext comes from the hub, so it is untrusted input too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::group_info::run(data));
