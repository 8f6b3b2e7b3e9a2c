//! `POST /reportAbuse/{roomId}` (-06 §5.9): the `AbuseReport` body, with
//! its `AbusiveMessage`s and their `Frank`s.

use crate::{check_identifier_uri, decode_canonical};
use mimi_protocol::msgs::AbuseReport;

/// One fuzz input (the `abuse` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    if let Some(report) = decode_canonical::<AbuseReport>(data) {
        check_identifier_uri(&report.reporting_user);
        check_identifier_uri(&report.alleged_abuser_uri);
        // The reported content is usually MIMI content (-06 §5.9).
        for message in &report.messages {
            let _ = mimi_content::MimiContent::from_cbor(message.message_content.as_slice());
        }
    }
}
