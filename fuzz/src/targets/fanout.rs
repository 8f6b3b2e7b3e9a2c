//! `POST /notify/{roomId}` (-06 §5.5): one `FanoutMessage`, and a whole
//! notify body (one or more concatenated `FanoutMessage`s, as the follower
//! splits it).

use crate::{assert_canonical, decode_canonical, split};
use mimi_protocol::msgs::FanoutMessage;
use mimi_protocol::msgs::fanout::{decode_fanout_batch, encode_fanout_batch, fanout_case};

fn check_case(message: &FanoutMessage) {
    assert_eq!(fanout_case(&message.message), Some(message.body.case()));
}

/// One fuzz input (the `fanout` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some((selector, body)) = split(data) else {
        return;
    };
    if selector % 2 == 0 {
        if let Some(message) = decode_canonical::<FanoutMessage>(body) {
            check_case(&message);
        }
    } else if let Ok(batch) = decode_fanout_batch(body) {
        assert!(!batch.is_empty());
        let mut offset = 0;
        for message in &batch {
            check_case(message);
            let encoded = mimi_protocol::encode(message).expect("re-encode");
            assert_canonical(message, &body[offset..offset + encoded.len()]);
            offset += encoded.len();
        }
        assert_eq!(offset, body.len());
        assert_eq!(encode_fanout_batch(&batch).expect("re-encode batch"), body);
    }
}
