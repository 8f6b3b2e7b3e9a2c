//! Franking tag (draft-ietf-mimi-protocol-06 §5.4.1) and salt derivation
//! (draft-ietf-mimi-content "Generating the random salt").

use sha2::{Digest, Sha256};

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// `franking_tag = HMAC_SHA256(salt, application_data)`, where `salt` is the
/// MIMI content salt and `application_data` the MLS application data
/// carrying the content.
pub fn franking_tag(salt: &[u8; 16], application_data: &[u8]) -> [u8; 32] {
    hmac_sha256(salt, application_data)
}

/// `salt = HMAC_SHA256(salt_base_secret, nonce)[0..15]` (first 16 octets).
pub fn derive_salt(salt_base_secret: &[u8], nonce: &[u8]) -> [u8; 16] {
    let h = hmac_sha256(salt_base_secret, nonce);
    let mut s = [0u8; 16];
    s.copy_from_slice(&h[..16]);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_1_and_6() {
        let tag = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(
            hex::encode(tag),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let tag = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
