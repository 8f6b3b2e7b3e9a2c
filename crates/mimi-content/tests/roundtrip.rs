//! Property tests: arbitrary messages encode → decode → encode to the same
//! bytes; arbitrary input never panics and, when accepted, is canonical.

use mimi_content::{
    Disposition, Expiration, ExtensionKey, Extensions, ExternalPart, MessageId, MimiContent,
    MultiPart, NestedPart, Part, PartSemantics, SinglePart, Value,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z/;=.-]{1,20}", any::<String>()]
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..40)
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::Unsigned),
        any::<u64>().prop_map(Value::Negative),
        arb_bytes().prop_map(Value::Bytes),
        arb_text().prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        Just(Value::Undefined),
        prop_oneof![0u8..20, 32u8..=255].prop_map(Value::Simple),
        any::<f64>().prop_map(Value::Float),
        any::<f32>().prop_map(|f| Value::Float(f64::from(f))),
        (-70000i32..70000).prop_map(|i| Value::Float(f64::from(i) / 4.0)),
    ]
}

fn arb_nested_key() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..=mimi_content::MAX_SAFE_INTEGER).prop_map(Value::Unsigned),
        (0u64..mimi_content::MAX_SAFE_INTEGER).prop_map(Value::Negative),
        arb_text().prop_map(Value::Text),
        arb_bytes().prop_map(Value::Bytes),
    ]
}

/// Values that may nest `levels` more containers.
fn arb_value(levels: u32) -> BoxedStrategy<Value> {
    if levels == 0 {
        return arb_scalar().boxed();
    }
    let inner = arb_value(levels - 1);
    prop_oneof![
        3 => arb_scalar(),
        1 => vec(inner.clone(), 0..4).prop_map(Value::Array),
        1 => vec((arb_nested_key(), inner.clone()), 0..4).prop_map(|entries| {
            // Drop duplicate keys (by encoding); order is left arbitrary.
            let mut seen = std::collections::BTreeSet::new();
            Value::Map(entries.into_iter().filter(|(k, _)| seen.insert(k.to_cbor())).collect())
        }),
        1 => ((0u64..1_000_000).prop_filter("no bignum tags", |t| *t != 2 && *t != 3), inner)
            .prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
    ]
    .boxed()
}

fn arb_ext_key() -> impl Strategy<Value = ExtensionKey> {
    let max = mimi_content::MAX_SAFE_INTEGER as i64;
    prop_oneof![
        (3i64..=max).prop_map(ExtensionKey::Int),
        (-max..0).prop_map(ExtensionKey::Int),
        "[a-zA-Z0-9_]{1,30}".prop_map(ExtensionKey::Text),
    ]
}

fn arb_extensions() -> impl Strategy<Value = Extensions> {
    (
        proptest::option::of(arb_text()),
        proptest::option::of(arb_text()),
        vec((arb_ext_key(), arb_value(3)), 0..5),
    )
        .prop_map(|(sender, room, others)| {
            let mut e = Extensions::new();
            if let Some(s) = sender {
                e.set_sender_uri(s);
            }
            if let Some(r) = room {
                e.set_room_uri(r);
            }
            for (k, v) in others {
                e.insert(k, v).expect("generated entries are valid");
            }
            e
        })
}

fn arb_external() -> impl Strategy<Value = ExternalPart> {
    (
        (
            arb_text(),
            arb_text(),
            any::<u32>(),
            any::<u64>(),
            any::<u16>(),
        ),
        (
            arb_bytes(),
            arb_bytes(),
            arb_bytes(),
            any::<u8>(),
            arb_bytes(),
        ),
        (arb_text(), arb_text()),
    )
        .prop_map(
            |(
                (content_type, url, expires, size, enc_alg),
                (key, nonce, aad, hash_alg, content_hash),
                (description, filename),
            )| ExternalPart {
                content_type,
                url,
                expires,
                size,
                enc_alg,
                key,
                nonce,
                aad,
                hash_alg,
                content_hash,
                description,
                filename,
            },
        )
}

fn arb_semantics() -> impl Strategy<Value = PartSemantics> {
    prop_oneof![
        Just(PartSemantics::ChooseOne),
        Just(PartSemantics::SingleUnit),
        Just(PartSemantics::ProcessAll),
    ]
}

/// Parts at most `levels` deep (the body is level 1).
fn arb_part(levels: u32) -> BoxedStrategy<NestedPart> {
    let leaf = prop_oneof![
        Just(Part::Null),
        (arb_text(), arb_bytes()).prop_map(|(content_type, content)| Part::Single(SinglePart {
            content_type,
            content
        })),
        arb_external().prop_map(Part::External),
    ];
    let part = if levels <= 1 {
        leaf.boxed()
    } else {
        prop_oneof![
            2 => leaf,
            1 => (arb_semantics(), vec(arb_part(levels - 1), 2..4))
                .prop_map(|(part_semantics, parts)| Part::Multi(MultiPart { part_semantics, parts })),
        ]
        .boxed()
    };
    (any::<u8>(), arb_text(), part)
        .prop_map(|(d, language, part)| NestedPart {
            disposition: Disposition(d),
            language,
            part,
        })
        .boxed()
}

fn arb_id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 32]>().prop_map(MessageId)
}

fn arb_content() -> impl Strategy<Value = MimiContent> {
    (
        any::<[u8; 16]>(),
        proptest::option::of(arb_id()),
        arb_bytes(),
        proptest::option::of(
            (any::<bool>(), any::<u32>())
                .prop_map(|(relative, time)| Expiration { relative, time }),
        ),
        proptest::option::of(arb_id()),
        arb_extensions(),
        arb_part(4),
    )
        .prop_map(
            |(salt, replaces, topic_id, expires, in_reply_to, extensions, nested_part)| {
                MimiContent {
                    salt,
                    replaces,
                    topic_id,
                    expires,
                    in_reply_to,
                    extensions,
                    nested_part,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_decode_encode(msg in arb_content()) {
        let bytes = msg.to_cbor().expect("valid model encodes");
        let decoded = MimiContent::from_cbor(&bytes).expect("own encoding decodes");
        prop_assert_eq!(&decoded.to_cbor().expect("re-encodes"), &bytes);
        // Everything but generic values compares exactly.
        prop_assert_eq!(decoded.salt, msg.salt);
        prop_assert_eq!(decoded.replaces, msg.replaces);
        prop_assert_eq!(&decoded.topic_id, &msg.topic_id);
        prop_assert_eq!(decoded.expires, msg.expires);
        prop_assert_eq!(decoded.in_reply_to, msg.in_reply_to);
        prop_assert_eq!(&decoded.nested_part, &msg.nested_part);
        prop_assert_eq!(decoded.extensions.sender_uri(), msg.extensions.sender_uri());
        prop_assert_eq!(decoded.extensions.room_uri(), msg.extensions.room_uri());
        let keys = |e: &Extensions| e.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        prop_assert_eq!(keys(&decoded.extensions), keys(&msg.extensions));
    }

    #[test]
    fn message_id_depends_on_everything(msg in arb_content(), s in "[a-z]{1,10}", r in "[a-z]{1,10}") {
        let id = msg.message_id(&s, &r).expect("id");
        prop_assert_eq!(id.hash_alg(), 1);
        let other_room = format!("{r}x");
        prop_assert_ne!(id, msg.message_id(&s, &other_room).expect("id"));
        let mut salted = msg.clone();
        salted.salt[0] ^= 1;
        prop_assert_ne!(id, salted.message_id(&s, &r).expect("id"));
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in vec(any::<u8>(), 0..300)) {
        if let Ok(m) = MimiContent::from_cbor(&input) {
            prop_assert_eq!(m.to_cbor().expect("re-encodes"), input);
        }
    }

    #[test]
    fn prefixed_bytes_never_panic(tail in vec(any::<u8>(), 0..200)) {
        // A valid-looking prefix makes the decoder reach deeper states.
        let mut input = vec![0x87, 0x50];
        input.extend([0u8; 16]);
        input.extend([0xf6, 0x40, 0xf6, 0xf6]);
        input.extend(tail);
        if let Ok(m) = MimiContent::from_cbor(&input) {
            prop_assert_eq!(m.to_cbor().expect("re-encodes"), input);
        }
    }
}
