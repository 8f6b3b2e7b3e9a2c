//! `mimi://` URIs (-06 §3, draft-mahy-mimi-identity): parsing of URIs from
//! the wire (`IdentifierUri` bytes, path parameters), their normalisation,
//! and building URIs from arbitrary ids and domains.

use crate::{assert_mimi_uri, check_identifier_uri};
use mimi_protocol::uri::{MimiUriKind, parse_domain, pct_encode_unreserved, validate_domain};
use mimi_protocol::{IdentifierUri, MimiUri};

/// One fuzz input (the `uri` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    check_identifier_uri(&IdentifierUri {
        uri: data.to_vec().into(),
    });
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    match MimiUri::parse(s) {
        Ok(uri) => {
            assert_mimi_uri(&uri);
            assert_eq!(MimiUri::parse_canonical(s).is_ok(), uri.as_str() == s);
        }
        Err(_) => assert!(MimiUri::parse_canonical(s).is_err()),
    }

    // A validated domain makes a provider URI with the lowercased name.
    if validate_domain(s).is_ok() {
        assert_eq!(
            parse_domain(s).as_deref(),
            Ok(s.to_ascii_lowercase().as_str())
        );
        let provider = MimiUri::provider(s).expect("a valid domain makes a provider URI");
        assert_eq!(provider.domain(), s.to_ascii_lowercase());
        assert_mimi_uri(&provider);
    }

    // Any id is encoded so that decoding gives it back.
    for kind in [MimiUriKind::User, MimiUriKind::Room, MimiUriKind::Device] {
        if let Ok(uri) = MimiUri::new(kind, "a.example", s) {
            assert_mimi_uri(&uri);
            assert_eq!(uri.id_decoded().as_deref(), Some(s));
            assert_eq!(uri.id_segments(), vec![s]);
        }
    }
    // A device id from two arbitrary segments, split at the first U+0001.
    if let Some((user, client)) = s.split_once('\u{1}')
        && let Ok(uri) = MimiUri::device_of_user("a.example", user, client)
    {
        assert_mimi_uri(&uri);
        assert_eq!(uri.id_segments(), vec![user, client]);
    }

    let encoded = pct_encode_unreserved(s);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
    );
}
