//! A `/notify` body as a batch: one or more concatenated `FanoutMessage`s
//! of one room (-06 §5.5 "The hub can include multiple concatenated
//! FanoutMessage objects relevant to the same room").
//!
//! Used by the follower's `/notify` endpoint, the hub's in-process
//! delivery ([`crate::fanout`]) and delivery observers; it depends on no
//! other module of this crate.

use mimi_protocol::DecodeError;
use mimi_protocol::msgs::fanout::FanoutMessage;
use tls_codec::Deserialize as _;

/// One `FanoutMessage` of a batch with its exact encoding.
#[derive(Debug, Clone)]
pub struct FanoutItem {
    pub message: FanoutMessage,
    pub encoded: Vec<u8>,
}

/// Splits a `/notify` body into its concatenated `FanoutMessage`s (-06
/// §5.5), keeping each message's bytes. An empty body is an error
/// (docs/divergences.md M16), as in `decode_fanout_batch`.
pub fn split_batch(body: &[u8]) -> Result<Vec<FanoutItem>, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::Malformed(tls_codec::Error::DecodingError(
            "empty notify body".into(),
        )));
    }
    let mut rest = body;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let before = rest.len();
        let message = FanoutMessage::tls_deserialize(&mut rest)?;
        let used = before - rest.len();
        let start = body.len() - before;
        items.push(FanoutItem {
            message,
            encoded: body[start..start + used].to_vec(),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_bodies_are_rejected() {
        assert!(split_batch(&[]).is_err());
        assert!(split_batch(&[0, 1, 2, 3]).is_err());
    }
}
