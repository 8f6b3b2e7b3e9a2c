//! Malformed, non-deterministic and out-of-model inputs are rejected with
//! an error, never a panic.

use mimi_content::{
    ContentError, Disposition, Extensions, MimiContent, MultiPart, NestedPart, Part, PartSemantics,
    Value,
};

const VECTORS: [&str; 14] = [
    "attachment",
    "conferencing",
    "delete",
    "edit",
    "expiring",
    "mention",
    "mention-html",
    "multipart-1",
    "multipart-2",
    "multipart-3",
    "original",
    "reaction",
    "reply",
    "unlike",
];

fn vector(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("{name}.cbor"));
    std::fs::read(p).expect("vector")
}

/// CBOR head in shortest form.
fn head(major: u8, arg: u64) -> Vec<u8> {
    let m = major << 5;
    match arg {
        0..=23 => vec![m | arg as u8],
        24..=0xff => vec![m | 24, arg as u8],
        0x100..=0xffff => [&[m | 25][..], &(arg as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[m | 26][..], &(arg as u32).to_be_bytes()].concat(),
        _ => [&[m | 27][..], &arg.to_be_bytes()].concat(),
    }
}

fn text(s: &str) -> Vec<u8> {
    [head(3, s.len() as u64), s.as_bytes().to_vec()].concat()
}

fn bytes(b: &[u8]) -> Vec<u8> {
    [head(2, b.len() as u64), b.to_vec()].concat()
}

/// `[salt, null, h'', null, null, ext, body]`.
fn message(ext: &[u8], body: &[u8]) -> Vec<u8> {
    [
        &[0x87][..],
        &bytes(&[7u8; 16]),
        &[0xf6, 0x40, 0xf6, 0xf6],
        ext,
        body,
    ]
    .concat()
}

/// `[1, "", 0]` — a NullPart.
const NULL_BODY: [u8; 4] = [0x83, 0x01, 0x60, 0x00];

fn single_body(disp: u8) -> Vec<u8> {
    [
        &[0x85][..],
        &head(0, disp.into()),
        &text(""),
        &[0x01],
        &text("text/plain"),
        &bytes(b"x"),
    ]
    .concat()
}

/// A MultiPart (chooseOne) of `parts`.
fn multi_body(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![0x85, 0x01, 0x60, 0x03, 0x00];
    v.extend(head(4, parts.len() as u64));
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

fn nested_multi(levels: usize) -> Vec<u8> {
    let mut body = single_body(1);
    for _ in 1..levels {
        body = multi_body(&[body.clone(), single_body(1)]);
    }
    body
}

fn decode(b: &[u8]) -> Result<MimiContent, ContentError> {
    MimiContent::from_cbor(b)
}

#[test]
fn baseline_messages_decode() {
    decode(&message(&[0xa0], &NULL_BODY)).expect("null part");
    decode(&message(&[0xa0], &single_body(200))).expect("unknown disposition");
    decode(&message(&[0xa0], &nested_multi(4))).expect("4 levels");
}

#[test]
fn every_truncation_is_an_error() {
    for name in VECTORS {
        let v = vector(name);
        for len in 0..v.len() {
            let e = decode(&v[..len]).expect_err("truncated must fail");
            assert!(
                matches!(e, ContentError::UnexpectedEof { .. }),
                "{name}[..{len}]: {e}"
            );
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    for name in VECTORS {
        let mut v = vector(name);
        let len = v.len();
        v.push(0x00);
        assert_eq!(
            decode(&v),
            Err(ContentError::TrailingBytes {
                offset: len,
                count: 1
            }),
            "{name}"
        );
    }
}

#[test]
fn indefinite_lengths_are_rejected() {
    // Indefinite top-level array.
    let mut v = vector("original");
    v[0] = 0x9f;
    v.push(0xff);
    assert!(matches!(
        decode(&v),
        Err(ContentError::IndefiniteLength { offset: 0 })
    ));
    // Indefinite extensions map.
    let ext = [&[0xbf, 0x01][..], &text("a"), &[0xff]].concat();
    assert!(matches!(
        decode(&message(&ext, &NULL_BODY)),
        Err(ContentError::IndefiniteLength { .. })
    ));
    // Indefinite (chunked) text string for the language.
    let body = [&[0x83, 0x01, 0x7f][..], &text("en"), &[0xff, 0x00]].concat();
    assert!(matches!(
        decode(&message(&[0xa0], &body)),
        Err(ContentError::IndefiniteLength { .. })
    ));
    // Indefinite byte string salt.
    let mut v = vector("original");
    v[1] = 0x5f;
    assert!(decode(&v).is_err());
}

#[test]
fn non_shortest_forms_are_rejected() {
    // Disposition 1 as 0x18 0x01.
    let body = [0x84, 0x18, 0x01, 0x60, 0x00];
    assert!(matches!(
        decode(&message(&[0xa0], &body)),
        Err(ContentError::NonDeterministic { .. })
    ));
    // Salt length as 0x58 0x10.
    let mut v = vector("original");
    v.splice(1..2, [0x58, 0x10]);
    assert!(matches!(
        decode(&v),
        Err(ContentError::NonDeterministic { .. })
    ));
    // Array length of the body as 0x98 0x03.
    let body = [0x98, 0x03, 0x01, 0x60, 0x00];
    assert!(matches!(
        decode(&message(&[0xa0], &body)),
        Err(ContentError::NonDeterministic { .. })
    ));
    // 4-byte form for a value that fits in 2 bytes (extension value).
    let ext = [0xa1, 0x03, 0x1a, 0x00, 0x00, 0x01, 0x00];
    assert!(matches!(
        decode(&message(&ext, &NULL_BODY)),
        Err(ContentError::NonDeterministic { .. })
    ));
    // Bignum that fits in a uint.
    let ext = [&[0xa1, 0x03, 0xc2][..], &bytes(&[1, 0])].concat();
    assert!(matches!(
        decode(&message(&ext, &NULL_BODY)),
        Err(ContentError::NonDeterministic { .. })
    ));
    // Float 1.5 as a single.
    let ext = [0xa1, 0x03, 0xfa, 0x3f, 0xc0, 0x00, 0x00];
    assert!(matches!(
        decode(&message(&ext, &NULL_BODY)),
        Err(ContentError::NonDeterministic { .. })
    ));
}

#[test]
fn extension_map_order_and_duplicates() {
    let ext = [&[0xa2, 0x02][..], &text("room"), &[0x01], &text("sender")].concat();
    assert!(matches!(
        decode(&message(&ext, &NULL_BODY)),
        Err(ContentError::UnsortedMap { .. })
    ));
    let ext = [&[0xa2, 0x01][..], &text("a"), &[0x01], &text("b")].concat();
    assert!(matches!(
        decode(&message(&ext, &NULL_BODY)),
        Err(ContentError::DuplicateKey { .. })
    ));
    // Length-first ordering: 24 (0x18 0x18) sorts after 23 (0x17) and -1
    // (0x20) after every unsigned key; "b" (0x61 62) before "aa" (0x62 ..).
    let ok = [
        &[0xa5, 0x17, 0xf6, 0x18, 0x18, 0xf6, 0x20, 0xf6][..],
        &text("b"),
        &[0xf6],
        &text("aa"),
        &[0xf6],
    ]
    .concat();
    let m = decode(&message(&ok, &NULL_BODY)).expect("sorted");
    assert_eq!(m.to_cbor().expect("enc"), message(&ok, &NULL_BODY));
    let bad = [&[0xa2][..], &text("aa"), &[0xf6], &text("b"), &[0xf6]].concat();
    assert!(decode(&message(&bad, &NULL_BODY)).is_err());
    // Nested map ordering too.
    let nested = [0xa1, 0x03, 0xa2, 0x02, 0xf6, 0x01, 0xf6];
    assert!(matches!(
        decode(&message(&nested, &NULL_BODY)),
        Err(ContentError::UnsortedMap { .. })
    ));
}

#[test]
fn invalid_extension_keys() {
    for key in [
        bytes(b"k"),            // byte string at top level
        text(""),               // empty text key
        text(&"k".repeat(256)), // too long text key
        head(0, 1 << 53),       // not a double-safe integer
        head(1, (1 << 53) - 1), // -(2^53)
        vec![0xf6],             // null
    ] {
        let ext = [&[0xa1][..], &key, &[0xf6]].concat();
        assert!(
            matches!(
                decode(&message(&ext, &NULL_BODY)),
                Err(ContentError::InvalidKey { .. })
            ),
            "{key:02x?}"
        );
    }
    // Nested map keys: float and array keys are not allowed, bytes are.
    let ext = [0xa1, 0x03, 0xa1, 0xf9, 0x3c, 0x00, 0xf6];
    assert!(matches!(
        decode(&message(&ext, &NULL_BODY)),
        Err(ContentError::InvalidKey { .. })
    ));
    let ext = [&[0xa1, 0x03, 0xa1][..], &bytes(b"k"), &[0xf6]].concat();
    decode(&message(&ext, &NULL_BODY)).expect("byte string nested key");
}

#[test]
fn excessive_nesting_is_rejected() {
    assert!(matches!(
        decode(&message(&[0xa0], &nested_multi(5))),
        Err(ContentError::TooDeep {
            what: "NestedPart",
            limit: 4
        })
    ));
    // The draft's 4-level extension example is accepted...
    let uri = [&[0xd8, 0x20][..], &text("http://example.com")].concat();
    let inner = [&[0x82][..], &bytes(&[0x12, 0x34]), &uri].concat();
    let ext = [
        &[0xa2, 0x01][..],
        &text("mimi://a.example/u/alice"),
        &[0x19, 0x01, 0x00, 0x82],
        &inner,
        &[0x82],
        &bytes(&[0x34, 0x56]),
        &[0x19, 0x16, 0x8b],
    ]
    .concat();
    decode(&message(&ext, &NULL_BODY)).expect("draft example depth");
    // ...one more level is not.
    let ext5 = [&[0xa1, 0x03, 0x81, 0x81, 0x81][..], &[0x80]].concat();
    assert!(matches!(
        decode(&message(&ext5, &NULL_BODY)),
        Err(ContentError::TooDeep { .. })
    ));
    // Deeply nested garbage never recurses far.
    let mut deep = vec![0xa1, 0x03];
    deep.extend(std::iter::repeat_n(0x81, 100_000));
    deep.push(0x00);
    assert!(matches!(
        decode(&message(&deep, &NULL_BODY)),
        Err(ContentError::TooDeep { .. })
    ));
    let mut deep_parts = Vec::new();
    for _ in 0..100_000 {
        deep_parts.extend([0x85, 0x01, 0x60, 0x03, 0x00, 0x82]);
    }
    assert!(matches!(
        decode(&message(&[0xa0], &deep_parts)),
        Err(ContentError::TooDeep { .. })
    ));
}

#[test]
fn wrong_types_and_values() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // salt as text / wrong size
        (
            [
                &[0x87][..],
                &text("0123456789abcdef"),
                &[0xf6, 0x40, 0xf6, 0xf6, 0xa0],
                &NULL_BODY,
            ]
            .concat(),
            "salt text",
        ),
        (
            [
                &[0x87][..],
                &bytes(&[0; 15]),
                &[0xf6, 0x40, 0xf6, 0xf6, 0xa0],
                &NULL_BODY,
            ]
            .concat(),
            "salt 15",
        ),
        // replaces of 31 bytes
        (
            [
                &[0x87][..],
                &bytes(&[0; 16]),
                &bytes(&[0; 31]),
                &[0x40, 0xf6, 0xf6, 0xa0],
                &NULL_BODY,
            ]
            .concat(),
            "replaces 31",
        ),
        // topicId as text
        (
            [
                &[0x87][..],
                &bytes(&[0; 16]),
                &[0xf6, 0x60, 0xf6, 0xf6, 0xa0],
                &NULL_BODY,
            ]
            .concat(),
            "topic text",
        ),
        // expires with 3 elements / time > u32 / relative not bool
        (
            [
                &[0x87][..],
                &bytes(&[0; 16]),
                &[0xf6, 0x40, 0x83, 0xf4, 0x01, 0x01, 0xf6, 0xa0],
                &NULL_BODY,
            ]
            .concat(),
            "expires len",
        ),
        (
            [
                &[0x87][..],
                &bytes(&[0; 16]),
                &[
                    0xf6, 0x40, 0x82, 0xf4, 0x1b, 0, 0, 0, 1, 0, 0, 0, 0, 0xf6, 0xa0,
                ],
                &NULL_BODY,
            ]
            .concat(),
            "expires range",
        ),
        (
            [
                &[0x87][..],
                &bytes(&[0; 16]),
                &[0xf6, 0x40, 0x82, 0x00, 0x01, 0xf6, 0xa0],
                &NULL_BODY,
            ]
            .concat(),
            "relative int",
        ),
        // 6- and 8-element containers
        (
            [
                &[0x86][..],
                &bytes(&[0; 16]),
                &[0xf6, 0x40, 0xf6, 0xf6, 0xa0],
            ]
            .concat(),
            "array 6",
        ),
        // extensions as array
        (message(&[0x80], &NULL_BODY), "extensions array"),
        // senderUri as an integer
        (message(&[0xa1, 0x01, 0x01], &NULL_BODY), "senderUri int"),
        // body fields
        (
            message(&[0xa0], &[0x83, 0x61, 0x31, 0x60, 0x00]),
            "disposition text",
        ),
        (
            message(&[0xa0], &[0x83, 0x19, 0x01, 0x00, 0x60, 0x00]),
            "disposition 256",
        ),
        (
            message(&[0xa0], &[0x83, 0x01, 0x40, 0x00]),
            "language bytes",
        ),
        (
            message(&[0xa0], &[0x83, 0x01, 0x62, 0xc3, 0x28, 0x00]),
            "language utf8",
        ),
        (message(&[0xa0], &[0x83, 0x01, 0x60, 0x04]), "cardinality 4"),
        (
            message(&[0xa0], &[0x84, 0x01, 0x60, 0x00, 0x00]),
            "null part with extra",
        ),
        (
            message(&[0xa0], &[0x83, 0x01, 0x60, 0x01]),
            "single part short",
        ),
        (
            message(&[0xa0], &[0x85, 0x01, 0x60, 0x01, 0x40, 0x40]),
            "contentType bytes",
        ),
        (
            message(
                &[0xa0],
                &[
                    0x85, 0x01, 0x60, 0x03, 0x03, 0x82, 0x83, 0x01, 0x60, 0x00, 0x83, 0x01, 0x60,
                    0x00,
                ],
            ),
            "partSemantics 3",
        ),
        (
            message(&[0xa0], &multi_body(&[NULL_BODY.to_vec()])),
            "one part",
        ),
        (
            message(&[0xa0], &[0x85, 0x01, 0x60, 0x03, 0x00, 0x80]),
            "zero parts",
        ),
        // top-level not an array
        (vec![0xa0], "map"),
        (vec![], "empty"),
        // reserved additional information / stray break
        (vec![0x9c], "ai 28"),
        (vec![0xff], "break"),
        // two-byte simple value below 32 in an extension
        (
            message(&[0xa1, 0x03, 0xf8, 0x10], &NULL_BODY),
            "simple 16 long",
        ),
        // NaN other than 0xf97e00
        (
            message(&[0xa1, 0x03, 0xf9, 0x7e, 0x01], &NULL_BODY),
            "nan payload",
        ),
        (
            message(
                &[0xa1, 0x03, 0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0],
                &NULL_BODY,
            ),
            "nan double",
        ),
        // invalid UTF-8 inside an extension value
        (message(&[0xa1, 0x03, 0x61, 0xff], &NULL_BODY), "ext utf8"),
    ];
    for (input, what) in cases {
        match decode(&input) {
            Ok(_) => panic!("{what} should be rejected"),
            Err(e) => eprintln!("{what}: {e}"),
        }
    }
    // The half-width quiet NaN is fine.
    let ok = message(&[0xa1, 0x03, 0xf9, 0x7e, 0x00], &NULL_BODY);
    assert_eq!(decode(&ok).expect("nan").to_cbor().expect("enc"), ok);
}

#[test]
fn utf8_errors_are_reported_as_such() {
    let e = decode(&message(&[0xa0], &[0x83, 0x01, 0x62, 0xc3, 0x28, 0x00])).expect_err("bad utf8");
    assert!(matches!(e, ContentError::InvalidUtf8 { .. }), "{e}");
}

#[test]
fn invalid_models_do_not_encode() {
    let ext = Extensions::with_uris("s", "r");
    let one_part = NestedPart {
        disposition: Disposition::RENDER,
        language: String::new(),
        part: Part::Multi(MultiPart {
            part_semantics: PartSemantics::ProcessAll,
            parts: vec![NestedPart::null(Disposition::RENDER)],
        }),
    };
    let m = MimiContent::new([0; 16], ext.clone(), one_part);
    assert!(matches!(m.to_cbor(), Err(ContentError::WrongLength { .. })));

    let mut part = NestedPart::single(Disposition::RENDER, "text/plain", &b"x"[..]);
    for _ in 0..4 {
        part = NestedPart {
            disposition: Disposition::RENDER,
            language: String::new(),
            part: Part::Multi(MultiPart {
                part_semantics: PartSemantics::ChooseOne,
                parts: vec![part.clone(), NestedPart::null(Disposition::RENDER)],
            }),
        };
    }
    let m = MimiContent::new([0; 16], ext.clone(), part);
    assert!(matches!(m.to_cbor(), Err(ContentError::TooDeep { .. })));

    let mut e = Extensions::new();
    assert!(e.insert(7, Value::Simple(24)).is_err());
    assert!(
        e.insert(7, Value::Tag(2, Box::new(Value::Bytes(vec![1]))))
            .is_err()
    );
}

#[test]
fn mutated_vectors_never_panic_and_stay_canonical() {
    for name in VECTORS {
        let v = vector(name);
        for i in 0..v.len() {
            for x in [
                0x00u8, 0x01, 0x17, 0x18, 0x1f, 0x20, 0x5f, 0x7f, 0x9f, 0xbf, 0xf6, 0xf9, 0xff,
            ] {
                let mut m = v.clone();
                m[i] = x;
                if let Ok(c) = decode(&m) {
                    assert_eq!(
                        c.to_cbor().expect("re-encodes"),
                        m,
                        "{name} byte {i} = {x:#x}"
                    );
                }
            }
        }
    }
}

#[test]
fn rfc7049_length_first_order_is_rejected() {
    // Bytewise order puts 256 (0x19 0x01 0x00) before -1 (0x20); the old
    // RFC 7049 "canonical" length-first order would put -1 first.
    let bytewise = [0xa2, 0x19, 0x01, 0x00, 0xf6, 0x20, 0xf6];
    let length_first = [0xa2, 0x20, 0xf6, 0x19, 0x01, 0x00, 0xf6];
    decode(&message(&bytewise, &NULL_BODY)).expect("bytewise order");
    assert!(matches!(
        decode(&message(&length_first, &NULL_BODY)),
        Err(ContentError::UnsortedMap { .. })
    ));
    let mut e = Extensions::new();
    e.insert(-1, Value::Null).expect("ok");
    e.insert(256, Value::Null).expect("ok");
    let m = MimiContent::new([7; 16], e, NestedPart::null(Disposition::RENDER));
    assert_eq!(m.to_cbor().expect("enc"), message(&bytewise, &NULL_BODY));
}

#[test]
fn sanity_check_flags_nonsensical_messages() {
    let ok = decode(&vector("multipart-3")).expect("vector");
    ok.sanity_check().expect("vectors are sane");
    let mut long_topic = ok.clone();
    long_topic.topic_id = vec![0; 4097];
    assert!(matches!(
        long_topic.sanity_check(),
        Err(ContentError::Suspicious { .. })
    ));
    let mut bad_alg = decode(&vector("reply")).expect("vector");
    bad_alg.sanity_check().expect("sane");
    if let Some(id) = bad_alg.in_reply_to.as_mut() {
        id.0[0] = 0x07;
    }
    assert!(matches!(
        bad_alg.sanity_check(),
        Err(ContentError::Suspicious { .. })
    ));
    let many = NestedPart {
        disposition: Disposition::RENDER,
        language: String::new(),
        part: Part::Multi(MultiPart {
            part_semantics: PartSemantics::ProcessAll,
            parts: vec![NestedPart::null(Disposition::RENDER); 1024],
        }),
    };
    let m = MimiContent::new([0; 16], Extensions::new(), many);
    assert!(matches!(
        m.sanity_check(),
        Err(ContentError::Suspicious { .. })
    ));
}
