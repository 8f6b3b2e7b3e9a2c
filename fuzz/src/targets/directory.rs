//! The directory document fetched from a peer (-06 §5.1): JSON with one
//! URI template per endpoint.

use mimi_protocol::directory::UriTemplate;
use mimi_protocol::endpoints::{
    GroupInfo, IdentifierQuery, KeyMaterial, Notify, ProxyDownload, ReportAbuse, RequestConsent,
    SubmitMessage, Update, UpdateConsent,
};
use mimi_protocol::{Directory, MimiUri};

/// One fuzz input (the `directory` target, docs/fuzzing.md).
pub fn run(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(directory) = Directory::from_json(json) else {
        return;
    };
    // Serialising keeps the usable templates (an unusable entry is left
    // out) and parses back to exactly them.
    let again = Directory::from_json(&directory.to_json()).expect("to_json output parses");
    assert!(again.unusable().next().is_none());
    assert!(again.endpoints().eq(directory.endpoints()));
    for endpoint in directory.endpoints() {
        assert_eq!(again.get(endpoint), directory.get(endpoint));
    }

    // Expansion only inserts percent-encoded values into the path, so every
    // expanded URL is a valid https URL without expressions.
    let user = MimiUri::parse("mimi://b.example/u/b%C3%B6b").expect("valid URI");
    let room = MimiUri::parse("mimi://a.example/r/room").expect("valid URI");
    let urls = [
        directory.url::<KeyMaterial>(&user),
        directory.url::<RequestConsent>(&user),
        directory.url::<UpdateConsent>(&user),
        directory.url::<IdentifierQuery>("b.example"),
        directory.url::<ProxyDownload>("https://a.example/asset?x={y}#z"),
        directory.url::<Update>(&room),
        directory.url::<Notify>(&room),
        directory.url::<SubmitMessage>(&room),
        directory.url::<GroupInfo>(&room),
        directory.url::<ReportAbuse>(&room),
    ];
    // A missing or unusable key is an endpoint the peer does not offer.
    let urls = urls.into_iter().flatten();
    for url in urls {
        if let Err(e) = UriTemplate::parse(&url, &[]) {
            panic!("expanded URL {url:?} is invalid: {e}");
        }
    }
    let _ = directory.used_variables();
}
