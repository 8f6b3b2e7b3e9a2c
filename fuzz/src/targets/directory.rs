//! The directory document fetched from a peer (-06 §5.1): JSON with one
//! URI template per endpoint.

use mimi_protocol::directory::{Endpoint, UriTemplate};
use mimi_protocol::{Directory, MimiUri};

/// One fuzz input (the `directory` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(directory) = Directory::from_json(json) else {
        return;
    };
    // Serialising and parsing again gives the same document.
    let again = Directory::from_json(&directory.to_json()).expect("to_json output parses");
    assert_eq!(again, directory);

    // Expansion only inserts percent-encoded values into the path, so every
    // expanded URL is a valid https URL without expressions.
    let user = MimiUri::parse("mimi://b.example/u/b%C3%B6b").expect("valid URI");
    let room = MimiUri::parse("mimi://a.example/r/room").expect("valid URI");
    let mut urls = vec![
        directory.key_material_url(&user),
        directory.request_consent_url(&user),
        directory.update_consent_url(&user),
        directory.identifier_query_url("b.example"),
        directory.proxy_download_url("https://a.example/asset?x={y}#z"),
    ];
    for endpoint in Endpoint::ALL {
        urls.push(directory.room_url(endpoint, &room));
    }
    for url in urls {
        if let Err(e) = UriTemplate::parse(&url, &[]) {
            panic!("expanded URL {url:?} is invalid: {e}");
        }
    }
    let _ = directory.used_variables();
}
