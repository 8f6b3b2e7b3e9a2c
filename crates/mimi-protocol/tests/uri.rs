//! `mimi://` URI parsing (draft-mahy-mimi-identity, -06 §3).

use mimi_protocol::IdentifierUri;
use mimi_protocol::uri::{DomainError, MAX_MIMI_URI_LEN, MimiUri, MimiUriError, MimiUriKind};
use proptest::prelude::*;

fn p(s: &str) -> Result<MimiUri, MimiUriError> {
    s.parse()
}

#[test]
fn draft_examples_parse_and_round_trip() {
    let cases = [
        ("mimi://a.example", MimiUriKind::Provider, None),
        ("mimi://a.example/u/alice", MimiUriKind::User, Some("alice")),
        (
            "mimi://a.example/p/crazykoala75",
            MimiUriKind::Pseudonym,
            Some("crazykoala75"),
        ),
        (
            "mimi://a.example/d/ClientA1",
            MimiUriKind::Device,
            Some("ClientA1"),
        ),
        (
            "mimi://a.example/d/alice/ClientA1",
            MimiUriKind::Device,
            Some("alice/ClientA1"),
        ),
        (
            "mimi://a.example/r/clubhouse",
            MimiUriKind::Room,
            Some("clubhouse"),
        ),
        (
            "mimi://a.example/g/TII9t5viBrXiXc",
            MimiUriKind::Group,
            Some("TII9t5viBrXiXc"),
        ),
        (
            "mimi://a.example/t/engineering",
            MimiUriKind::Team,
            Some("engineering"),
        ),
        (
            "mimi://hub.example/r/Rl33FWLCYWOwxHrYnpWDQg",
            MimiUriKind::Room,
            Some("Rl33FWLCYWOwxHrYnpWDQg"),
        ),
        ("mimi://b.example/u/alice", MimiUriKind::User, Some("alice")),
        (
            "mimi://example.com/d/juliet/balcony",
            MimiUriKind::Device,
            Some("juliet/balcony"),
        ),
        (
            "mimi://irc.example.com/u/jcapulet1583@example.com",
            MimiUriKind::User,
            Some("jcapulet1583@example.com"),
        ),
        (
            "mimi://irc.example.com/r/local_announcements_channel",
            MimiUriKind::Room,
            Some("local_announcements_channel"),
        ),
        (
            "mimi://local.invalid/u/alice.smith",
            MimiUriKind::User,
            Some("alice.smith"),
        ),
        ("mimi://mimi.example.com", MimiUriKind::Provider, None),
        ("mimi://localhost/u/dev", MimiUriKind::User, Some("dev")),
    ];
    for (s, kind, id) in cases {
        let u = p(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(u.kind(), kind, "{s}");
        assert_eq!(u.id(), id, "{s}");
        assert_eq!(u.to_string(), s);
        assert_eq!(p(u.as_str()).unwrap(), u);
    }
    let d = p("mimi://a.example/d/alice/ClientA1").unwrap();
    assert_eq!(d.domain(), "a.example");
    assert_eq!(d.id_segments(), vec!["alice", "ClientA1"]);
    assert_eq!(d.provider_uri().to_string(), "mimi://a.example");
}

#[test]
fn normalisation() {
    // Scheme and host are case-insensitive; path is not.
    let u = p("MIMI://A.Example/u/Alice").unwrap();
    assert_eq!(u.to_string(), "mimi://a.example/u/Alice");
    assert_eq!(u.domain(), "a.example");
    // Escaped unreserved characters are decoded, hex is uppercased.
    let u = p("mimi://a.example/u/%61lice%2fx%c3%a9").unwrap();
    assert_eq!(u.to_string(), "mimi://a.example/u/alice%2Fx%C3%A9");
    assert_eq!(u.id_decoded().unwrap(), "alice/xé");
    assert_eq!(u.id_segments(), vec!["alice/xé"]);
    assert_eq!(u, p("mimi://a.example/u/alice%2Fx%C3%A9").unwrap());
}

#[test]
fn canonical_only() {
    assert!(MimiUri::parse_canonical("mimi://a.example/u/alice%2F").is_ok());
    for s in [
        "MIMI://a.example/u/alice",
        "mimi://A.example/u/alice",
        "mimi://a.example/u/%61lice",
        "mimi://a.example/u/a%2f",
    ] {
        assert!(
            matches!(
                MimiUri::parse_canonical(s),
                Err(MimiUriError::NotCanonical(_))
            ),
            "{s}"
        );
    }
}

#[test]
fn constructors_encode() {
    let u = MimiUri::user("A.EXAMPLE", "alice smith/é").unwrap();
    assert_eq!(u.to_string(), "mimi://a.example/u/alice%20smith%2F%C3%A9");
    assert_eq!(u.id_decoded().unwrap(), "alice smith/é");
    let d = MimiUri::device_of_user("a.example", "alice", "phone 1").unwrap();
    assert_eq!(d.to_string(), "mimi://a.example/d/alice/phone%201");
    assert_eq!(
        MimiUri::room("hub.example", "clubhouse").unwrap().kind(),
        MimiUriKind::Room
    );
    assert_eq!(
        MimiUri::provider("a.example").unwrap().to_string(),
        "mimi://a.example"
    );
    assert!(MimiUri::user("a.example", "").is_err());
    assert!(MimiUri::user("a.example", "\u{1}").is_err());
    assert!(MimiUri::new(MimiUriKind::Provider, "a.example", "x").is_err());
}

#[test]
fn rejections() {
    use MimiUriError as E;
    let cases: Vec<(&str, E)> = vec![
        ("https://a.example/u/alice", E::WrongScheme),
        ("mimi:a.example/u/alice", E::WrongScheme),
        ("mimi:/a.example", E::WrongScheme),
        ("", E::WrongScheme),
        ("mimi://a.example/u/", E::EmptyId),
        ("mimi://a.example/u", E::MalformedPath),
        ("mimi://a.example/", E::MalformedPath),
        ("mimi://a.example//alice", E::MalformedPath),
        ("mimi://a.example/x/alice", E::UnknownKind("x".into())),
        ("mimi://b.example/b/bob", E::UnknownKind("b".into())), // -06 §3.3 typo
        ("mimi://a.example/U/alice", E::UnknownKind("U".into())),
        ("mimi://a.example/user/alice", E::UnknownKind("user".into())),
        ("mimi://a.example/u/alice/phone", E::TooManySegments),
        ("mimi://a.example/d/a/b/c", E::TooManySegments),
        ("mimi://a.example/d/alice/", E::EmptySegment),
        ("mimi://a.example/d//x", E::EmptySegment),
        ("mimi://alice@a.example/u/alice", E::UserinfoNotAllowed),
        ("mimi://a.example:443/u/alice", E::PortNotAllowed),
        ("mimi://a.example/u/alice?x=1", E::QueryNotAllowed),
        ("mimi://a.example/u/alice#frag", E::FragmentNotAllowed),
        ("mimi://a.example?x", E::QueryNotAllowed),
        ("mimi://a.example/u/al%2", E::BadPercentEncoding { pos: 21 }),
        (
            "mimi://a.example/u/al%zz",
            E::BadPercentEncoding { pos: 21 },
        ),
        ("mimi://a.example/u/al%00", E::EncodedControlChar),
        ("mimi://a.example/u/al%7F", E::EncodedControlChar),
        ("mimi://a.example/u/al%FF", E::IdNotUtf8),
        (
            "mimi://a.example/u/al ice",
            E::InvalidChar { ch: ' ', pos: 21 },
        ),
        (
            "mimi://a.example/u/al\nice",
            E::InvalidChar { ch: '\n', pos: 21 },
        ),
        (
            "mimi://a.example/u/al\0",
            E::InvalidChar { ch: '\0', pos: 21 },
        ),
        (
            "mimi://a.example/u/alicé",
            E::InvalidChar { ch: 'é', pos: 23 },
        ),
        (
            "mimi://a.example/u/a<b>",
            E::InvalidChar { ch: '<', pos: 20 },
        ),
        ("mimi://", E::InvalidDomain(DomainError::Empty)),
        ("mimi:///u/alice", E::InvalidDomain(DomainError::Empty)),
        (
            "mimi://a..example",
            E::InvalidDomain(DomainError::EmptyLabel),
        ),
        (
            "mimi://a.example.",
            E::InvalidDomain(DomainError::EmptyLabel),
        ),
        (
            "mimi://-a.example",
            E::InvalidDomain(DomainError::HyphenAtLabelEdge),
        ),
        (
            "mimi://a_b.example",
            E::InvalidDomain(DomainError::InvalidChar('_')),
        ),
        (
            "mimi://192.0.2.1/u/x",
            E::InvalidDomain(DomainError::NumericTld),
        ),
    ];
    for (s, want) in cases {
        assert_eq!(p(s), Err(want), "{s:?}");
    }
    assert!(matches!(
        p("mimi://[2001:db8::1]/u/x"),
        Err(E::InvalidChar { ch: '[', .. })
    ));
    let long_label = format!("mimi://{}.example", "a".repeat(64));
    assert_eq!(
        p(&long_label),
        Err(E::InvalidDomain(DomainError::LabelTooLong))
    );
    let long_domain = format!("mimi://{}example", "abcdefghi.".repeat(25));
    assert_eq!(p(&long_domain), Err(E::InvalidDomain(DomainError::TooLong)));
    let long = format!("mimi://a.example/u/{}", "x".repeat(MAX_MIMI_URI_LEN));
    assert!(matches!(p(&long), Err(E::TooLong { .. })));
    let max = format!("mimi://a.example/u/{}", "x".repeat(MAX_MIMI_URI_LEN - 19));
    assert_eq!(max.len(), MAX_MIMI_URI_LEN);
    assert!(p(&max).is_ok());
}

#[test]
fn identifier_uri_conversions() {
    let u = p("mimi://a.example/u/alice").unwrap();
    let wire: IdentifierUri = (&u).into();
    assert_eq!(wire.as_str(), Some("mimi://a.example/u/alice"));
    assert_eq!(MimiUri::try_from(&wire).unwrap(), u);
    assert_eq!(MimiUri::try_from(wire).unwrap(), u);
    let bad = IdentifierUri {
        uri: vec![0x6d, 0xff].into(),
    };
    assert_eq!(MimiUri::try_from(&bad), Err(MimiUriError::NotUtf8));
    assert_eq!(
        MimiUri::try_from(&IdentifierUri::new("mimi://a.example/q/x")),
        Err(MimiUriError::UnknownKind("q".into()))
    );
}

#[test]
fn serde_as_string() {
    let u = p("mimi://a.example/r/clubhouse").unwrap();
    let j = serde_json::to_string(&u).unwrap();
    assert_eq!(j, "\"mimi://a.example/r/clubhouse\"");
    let back: MimiUri = serde_json::from_str(&j).unwrap();
    assert_eq!(back, u);
    assert!(serde_json::from_str::<MimiUri>("\"mimi://a.example/z/x\"").is_err());
    assert!(serde_json::from_str::<MimiUri>("42").is_err());
}

fn arb_domain() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", 1..4)
        .prop_flat_map(|labels| ("[a-z][a-z0-9]{0,5}", Just(labels)))
        .prop_map(|(tld, mut labels)| {
            labels.push(tld);
            labels.join(".")
        })
}

fn arb_kind() -> impl Strategy<Value = MimiUriKind> {
    prop::sample::select(vec![
        MimiUriKind::User,
        MimiUriKind::Device,
        MimiUriKind::Room,
        MimiUriKind::Group,
        MimiUriKind::Pseudonym,
        MimiUriKind::Team,
    ])
}

proptest! {
    /// Any (domain, kind, id) built by the constructor parses back to itself,
    /// and the decoded id is the original text.
    #[test]
    fn constructed_round_trip(domain in arb_domain(), kind in arb_kind(), id in "[^\\x00-\\x1f\\x7f-\\u{9f}]{1,40}") {
        let u = MimiUri::new(kind, &domain, &id).unwrap();
        prop_assert_eq!(u.kind(), kind);
        prop_assert_eq!(u.domain(), domain.as_str());
        prop_assert_eq!(u.id_decoded().unwrap(), id.as_str());
        let text = u.to_string();
        let back: MimiUri = text.parse().unwrap();
        prop_assert_eq!(&back, &u);
        prop_assert_eq!(back.to_string(), text);
        let wire = IdentifierUri::from(&u);
        prop_assert_eq!(MimiUri::try_from(&wire).unwrap(), u);
    }

    /// Parsing never panics, and whatever parses is a fixed point of
    /// Display ∘ parse.
    #[test]
    fn parse_is_total_and_idempotent(s in "(mimi|MIMI|http)://[a-zA-Z0-9.:@_-]{0,20}(/[a-z]{0,2}(/[a-zA-Z0-9%._~!$&'()*+,;=:@ /?#-]{0,20}){0,3})?") {
        if let Ok(u) = s.parse::<MimiUri>() {
            let t = u.to_string();
            let again: MimiUri = t.parse().unwrap();
            prop_assert_eq!(again.to_string(), t);
            prop_assert_eq!(again, u);
        }
    }
}
