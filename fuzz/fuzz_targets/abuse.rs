//! `POST /reportAbuse/{roomId}` (-06 §5.9): the `AbuseReport` body, with
//! its `AbusiveMessage`s and their `Frank`s.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mimi_fuzz::{check_identifier_uri, decode_canonical};
use mimi_protocol::msgs::AbuseReport;

fuzz_target!(|data: &[u8]| {
    if let Some(report) = decode_canonical::<AbuseReport>(data) {
        check_identifier_uri(&report.reporting_user);
        check_identifier_uri(&report.alleged_abuser_uri);
        // The reported content is usually MIMI content (-06 §5.9).
        for message in &report.messages {
            let _ = mimi_content::MimiContent::from_cbor(message.message_content.as_slice());
        }
    }
});
