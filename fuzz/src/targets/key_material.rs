//! `POST /keyMaterial/{targetUser}` (-06 §5.2): `KeyMaterialRequest` (the
//! request body a provider receives) and `KeyMaterialResponse` (the
//! response body it gets back from a target or hub).

use crate::{assert_tbs_prefix, check_identifier_uri, decode_canonical, split};
use mimi_protocol::msgs::{ClientMaterial, KeyMaterialRequest, KeyMaterialResponse};
use openmls::prelude::SignatureScheme;
use openmls_rust_crypto::RustCrypto;

/// One fuzz input (the `key_material` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Some((selector, body)) = split(data) else {
        return;
    };
    if selector % 2 == 0 {
        let Some(request) = decode_canonical::<KeyMaterialRequest>(body) else {
            return;
        };
        assert_tbs_prefix(&request.tbs(), body);
        for uri in [
            &request.requesting_user,
            &request.target_user,
            &request.room_id,
        ] {
            check_identifier_uri(uri);
        }
        // As the target provider does (divergence M3): the scheme of the
        // first known suite, else Ed25519. Arbitrary keys must not panic.
        let scheme = request
            .acceptable_ciphersuites
            .iter()
            .find_map(|cs| cs.signature_scheme().ok())
            .unwrap_or(SignatureScheme::ED25519);
        let _ = request.verify(&RustCrypto::default(), scheme);
    } else {
        let Some(response) = decode_canonical::<KeyMaterialResponse>(body) else {
            return;
        };
        let _ = response.clients_allowed();
        check_identifier_uri(&response.user_uri);
        for client in &response.clients {
            check_identifier_uri(&client.client_uri);
            let status_matches = matches!(
                (&client.material, client.client_status() as u8),
                (ClientMaterial::Success(_), 0)
                    | (ClientMaterial::KeyMaterialExhausted, 1)
                    | (ClientMaterial::NothingCompatible(_), 2)
            );
            assert!(status_matches);
        }
    }
}
