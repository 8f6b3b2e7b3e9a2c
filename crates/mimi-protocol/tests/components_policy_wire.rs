//! Wire format of the room policy components of
//! draft-ietf-mimi-room-policy beyond roles, preauthorization, base policy
//! and status notifications: join links, link preview, assets, logging,
//! chat history, bots, message expiration and MLS operational parameters.
//!
//! Every type has a hand-written encoding (so the bytes are pinned, not
//! only self-consistent), round trips, refuses every strict prefix and a
//! trailing byte through `decode_component` (what the dictionary readers
//! use), and refuses enum and selector values the draft does not define.
//! The readings of the draft's broken syntax are divergences C12a–C12j.

use std::fmt::Debug;

use mimi_protocol::components::policy_components::{
    AppMessagePolicy, AssetUploadLocation, Bot, DomainName, DownloadPrivacy, DownloadPrivacyType,
    ExpirationDurations, ExtendedCapabilities, Gated, HistorySharing, JoinLink, LoggingSettings,
    MediaType, MinDefaultMaxTime, Parameter, PendingProposalPolicy, PendingProposalStrategy,
    ProviderAssetUploadDomains,
};
use mimi_protocol::components::room_policy::{Optionality, RoomPolicyError};
use mimi_protocol::components::{
    self as c, AssetPolicy, BotPolicy, Component, ComponentUpdate, HistoryPolicy, JoinLinkPolicy,
    JoinLinksData, JoinLinksError, JoinLinksUpdate, LinkPreviewPolicy, LoggingPolicy,
    MessageExpiration, OperationalParameters, StatusNotificationPolicy, Uri, decode_component,
    read_component, update_proposal, write_component,
};
use mimi_protocol::msgs::CipherSuite;
use mimi_protocol::{DecodeError, encode};
use openmls::extensions::AppDataDictionary;
use proptest::prelude::*;
use tls_codec::{Deserialize, Serialize, Size, VLBytes};

// --- helpers ------------------------------------------------------------

/// Hex with spaces allowed, for readable vectors.
fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn vl(b: &[u8]) -> VLBytes {
    VLBytes::new(b.to_vec())
}

/// Round trip, byte-identical re-encoding, every strict prefix refused and
/// a trailing byte refused, all through `decode_component`.
fn check_codec<T>(value: &T) -> Result<Vec<u8>, TestCaseError>
where
    T: Serialize + Deserialize + Size + PartialEq + Debug,
{
    let bytes = encode(value).unwrap();
    prop_assert_eq!(bytes.len(), value.tls_serialized_len());
    let back: T = decode_component(&bytes).unwrap();
    prop_assert_eq!(&back, value);
    prop_assert_eq!(encode(&back).unwrap(), bytes.clone());
    for cut in 0..bytes.len() {
        prop_assert!(
            decode_component::<T>(&bytes[..cut]).is_err(),
            "prefix of {} of {} octets decoded",
            cut,
            bytes.len()
        );
    }
    for extra in [0x00, 0x01, 0xff] {
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert!(
            matches!(
                decode_component::<T>(&longer),
                Err(DecodeError::TrailingBytes(1))
            ),
            "trailing {:02x} accepted",
            extra
        );
    }
    Ok(bytes)
}

/// [`check_codec`], plus the same bytes under the component's id in an
/// `app_data_dictionary`: read back, and refused with a trailing byte.
fn check_component<T>(value: &T) -> Result<Vec<u8>, TestCaseError>
where
    T: Component + Size + PartialEq + Debug,
{
    let bytes = check_codec(value)?;
    let mut dict = AppDataDictionary::new();
    write_component(&mut dict, value).unwrap();
    prop_assert_eq!(dict.get(&T::ID), Some(&bytes[..]));
    let read = read_component::<T>(&dict).unwrap();
    prop_assert_eq!(read.as_ref(), Some(value));
    let mut longer = bytes.clone();
    longer.push(0);
    dict.insert(T::ID, longer);
    prop_assert!(matches!(
        read_component::<T>(&dict),
        Err(DecodeError::TrailingBytes(1))
    ));
    Ok(bytes)
}

/// Pins the encoding of `value` to `expected` and runs every check.
fn pinned<T>(value: &T, expected: &[u8])
where
    T: Component + Size + PartialEq + Debug,
{
    assert_eq!(encode(value).unwrap(), expected, "{value:?}");
    check_component(value).unwrap();
}

/// `bytes` is refused as `T` with `UnknownValue(v)`, not a panic.
fn unknown<T: Deserialize + Debug>(bytes: &[u8], v: u64) {
    match decode_component::<T>(bytes) {
        Err(DecodeError::Malformed(tls_codec::Error::UnknownValue(got))) => assert_eq!(got, v),
        other => panic!("{bytes:02x?}: expected UnknownValue({v}), got {other:?}"),
    }
}

/// `bytes` is refused as `T` (any error, no panic).
fn refused<T: Deserialize + Debug>(bytes: &[u8]) {
    assert!(
        decode_component::<T>(bytes).is_err(),
        "{bytes:02x?} decoded"
    );
}

// --- registration -------------------------------------------------------

#[test]
fn component_ids_and_names() {
    fn reg<T: Component>() -> (u16, &'static str) {
        (T::ID, T::NAME)
    }
    assert_eq!(
        reg::<OperationalParameters>(),
        (0x0024, "mls_operational_policy")
    );
    assert_eq!(
        reg::<StatusNotificationPolicy>(),
        (0x0028, "status_notification_policy")
    );
    assert_eq!(reg::<JoinLinkPolicy>(), (0x0029, "join_link_policy"));
    assert_eq!(reg::<JoinLinksData>(), (0x002A, "join_links"));
    assert_eq!(reg::<LinkPreviewPolicy>(), (0x002B, "link_preview_policy"));
    assert_eq!(reg::<AssetPolicy>(), (0x002C, "asset_policy"));
    assert_eq!(reg::<LoggingPolicy>(), (0x002D, "logging_policy"));
    assert_eq!(reg::<HistoryPolicy>(), (0x002E, "chat_history_policy"));
    assert_eq!(reg::<BotPolicy>(), (0x002F, "bot_policy"));
    assert_eq!(
        reg::<MessageExpiration>(),
        (0x0030, "message_expiration_policy")
    );
    assert_eq!(c::JOIN_LINK_POLICY, 0x0029);
    assert_eq!(c::JOIN_LINKS, 0x002A);
    assert_eq!(c::LINK_PREVIEW_POLICY, 0x002B);
    assert_eq!(c::ASSET_POLICY, 0x002C);
    assert_eq!(c::LOGGING_POLICY, 0x002D);
    assert_eq!(c::CHAT_HISTORY_POLICY, 0x002E);
    assert_eq!(c::BOT_POLICY, 0x002F);

    // Update formats: join_links has its own, the others replace the data.
    assert_eq!(<JoinLinksUpdate as ComponentUpdate>::ID, 0x002A);
    assert_eq!(<JoinLinkPolicy as ComponentUpdate>::ID, 0x0029);
    assert_eq!(<LinkPreviewPolicy as ComponentUpdate>::ID, 0x002B);
    assert_eq!(<AssetPolicy as ComponentUpdate>::ID, 0x002C);
    assert_eq!(<LoggingPolicy as ComponentUpdate>::ID, 0x002D);
    assert_eq!(<HistoryPolicy as ComponentUpdate>::ID, 0x002E);
    assert_eq!(<BotPolicy as ComponentUpdate>::ID, 0x002F);
    assert_eq!(<MessageExpiration as ComponentUpdate>::ID, 0x0030);
    assert_eq!(<OperationalParameters as ComponentUpdate>::ID, 0x0024);
    assert_eq!(<StatusNotificationPolicy as ComponentUpdate>::ID, 0x0028);
    let p = update_proposal(&JoinLinksUpdate::default()).unwrap();
    assert_eq!(p.component_id(), 0x002A);
}

// --- join_link_policy, join_links ----------------------------------------

fn join_link_policy_example() -> JoinLinkPolicy {
    JoinLinkPolicy {
        on_request: true,
        join_link: Uri::new("https://a.example/j"),
        multiuser: false,
        expiration: 86_400,
    }
}

#[test]
fn join_link_policy_known_encoding() {
    let p = join_link_policy_example();
    // on_request | join_link (uri<V>, 19 octets) | multiuser | expiration
    pinned(
        &p,
        &cat(&[&h("01 13"), b"https://a.example/j", &h("00 00015180")]),
    );
    // No request URI: an empty Uri (C12b).
    let p = JoinLinkPolicy {
        on_request: false,
        join_link: Uri::default(),
        multiuser: true,
        expiration: 0,
    };
    pinned(&p, &h("00 00 01 00000000"));
}

#[test]
fn join_link_policy_refuses_bad_bools() {
    let ok = encode(&join_link_policy_example()).unwrap();
    let mut bad = ok.clone();
    bad[0] = 2;
    unknown::<JoinLinkPolicy>(&bad, 2);
    let mut bad = ok.clone();
    bad[21] = 0xff; // multiuser, after 1 + 1 + 19 octets
    unknown::<JoinLinkPolicy>(&bad, 0xff);
}

#[test]
fn join_links_known_encoding() {
    let d = JoinLinksData {
        join_links: vec![JoinLink::new("abc"), JoinLink::new("")],
    };
    // One vector (5 octets) of JoinLink = opaque join_link<V> (C12c, C12d).
    pinned(&d, &h("05 03616263 00"));
    pinned(&JoinLinksData::default(), &h("00"));

    let u = JoinLinksUpdate {
        removed_indices: vec![2],
        added_links: vec![JoinLink::new("x")],
    };
    // removedIndices<V> (4 octets) | added_links<V> (2 octets)
    assert_eq!(encode(&u).unwrap(), h("04 00000002 02 0178"));
    check_codec(&u).unwrap();
    assert_eq!(encode(&JoinLinksUpdate::default()).unwrap(), h("00 00"));
    // A JoinLink whose length claims more than follows.
    refused::<JoinLinksData>(&h("02 05 61"));
}

#[test]
fn join_links_updates_remove_by_position_then_append() {
    let list = JoinLinksData {
        join_links: vec![JoinLink::new("a"), JoinLink::new("b"), JoinLink::new("c")],
    };
    let update = JoinLinksUpdate {
        removed_indices: vec![2, 0],
        added_links: vec![JoinLink::new("d")],
    };
    let after = list.apply(&update).unwrap();
    assert_eq!(
        after.join_links,
        vec![JoinLink::new("b"), JoinLink::new("d")]
    );
    assert_eq!(after.index_of(b"d"), Some(1));
    assert_eq!(after.index_of(b"a"), None);

    let bad = |removed: Vec<u32>, added: Vec<&str>| {
        list.apply(&JoinLinksUpdate {
            removed_indices: removed,
            added_links: added.into_iter().map(JoinLink::new).collect(),
        })
    };
    assert_eq!(bad(vec![3], vec![]), Err(JoinLinksError::NoSuchIndex(3)));
    assert_eq!(
        bad(vec![1, 1], vec![]),
        Err(JoinLinksError::RemovedTwice(1))
    );
    assert_eq!(bad(vec![], vec!["a"]), Err(JoinLinksError::Duplicate));
    assert_eq!(bad(vec![], vec!["e", "e"]), Err(JoinLinksError::Duplicate));
    // A link removed and added again in one update is the same link.
    assert!(bad(vec![0], vec!["a"]).is_ok());
}

// --- link_preview_policy -------------------------------------------------

fn link_preview_example() -> LinkPreviewPolicy {
    LinkPreviewPolicy {
        autodetect_hyperlinks_in_text: Optionality::Optional,
        send_link_previews: Optionality::Required,
        automatic_link_previews: Optionality::Forbidden,
        link_preview_proxy: Gated::Required(vec![Uri::new("p")]),
    }
}

#[test]
fn link_preview_policy_known_encoding() {
    // Three Optionality octets, then link_preview_proxy_use = required(1)
    // (the draft's `mandatory`, C12a) and the Uri vector (2 octets).
    pinned(&link_preview_example(), &h("00 01 02 01 02 0170"));
    let mut p = link_preview_example();
    p.link_preview_proxy = Gated::Optional(vec![]);
    pinned(&p, &h("00 01 02 00 00"));
    // Forbidden: nothing follows the octet.
    p.link_preview_proxy = Gated::Forbidden;
    pinned(&p, &h("00 01 02 02"));
    assert_eq!(p.link_preview_proxy.optionality(), Optionality::Forbidden);
    assert_eq!(p.link_preview_proxy.settings(), None);
    // A forbidden proxy with bytes after it is a trailing byte, not a URI.
    assert!(matches!(
        decode_component::<LinkPreviewPolicy>(&h("00 01 02 02 00")),
        Err(DecodeError::TrailingBytes(1))
    ));
}

#[test]
fn link_preview_policy_refuses_unknown_values() {
    for i in 0..3 {
        for v in [3u8, 0xff] {
            let mut b = h("00 01 02 02");
            b[i] = v;
            unknown::<LinkPreviewPolicy>(&b, u64::from(v));
        }
    }
    // No `mandatory(3)`: the selector octet 3 is refused.
    unknown::<LinkPreviewPolicy>(&h("00 01 02 03 00"), 3);
}

#[test]
fn link_preview_policy_validation() {
    let mut p = link_preview_example();
    assert_eq!(p.validate(), Ok(()));
    p.autodetect_hyperlinks_in_text = Optionality::Required;
    assert_eq!(p.validate(), Err(RoomPolicyError::AutodetectRequired));
    p.autodetect_hyperlinks_in_text = Optionality::Forbidden;
    p.link_preview_proxy = Gated::Optional(vec![]);
    assert_eq!(p.validate(), Err(RoomPolicyError::MissingLinkPreviewProxy));
    p.link_preview_proxy = Gated::Forbidden;
    assert_eq!(p.validate(), Ok(()));
}

// --- asset_policy --------------------------------------------------------

fn asset_policy_example() -> AssetPolicy {
    AssetPolicy {
        asset_upload_location: AssetUploadLocation::Hub,
        upload_domains: vec![ProviderAssetUploadDomains {
            provider: DomainName::new("h"),
            asset_upload_destinations: vec![DomainName::new("u")],
        }],
        download_privacy: DownloadPrivacy {
            allowed_download_types: vec![DownloadPrivacyType::Direct, DownloadPrivacyType::Ohttp],
            forbidden_download_types: vec![DownloadPrivacyType::HubProxy],
            default_download_type: DownloadPrivacyType::Direct,
        },
        max_image: 1,
        max_audio: 2,
        max_video: 3,
        max_attachment: 0x100,
        forbidden_media_types: vec![MediaType {
            media_type: vl(b"a/b"),
            parameters: vec![Parameter {
                parameter_name: vl(b"c"),
                parameter_value: vl(b"d"),
            }],
        }],
        permitted_media_types: Some(vec![]),
    }
}

#[test]
fn asset_policy_known_encoding() {
    let expected = h(concat!(
        "02",                       // asset_upload_location = hub
        "05 0168 02 0175",          // upload_domains<V>: provider "h", destinations ["u"]
        "02 0002 01 01 00",         // allowed [direct, ohttp], forbidden [hubProxy], default direct
        "0000000000000001",         // max_image
        "0000000000000002",         // max_audio
        "0000000000000003",         // max_video
        "0000000000000100",         // max_attachment
        "09 03612f62 04 0163 0164", // forbidden_media_types: a/b; c=d
        "01 00",                    // permitted_media_types: present, empty (C12g)
    ));
    pinned(&asset_policy_example(), &expected);
    let mut p = asset_policy_example();
    p.permitted_media_types = None;
    let mut absent = expected[..expected.len() - 2].to_vec();
    absent.push(0);
    pinned(&p, &absent);
    p.permitted_media_types = Some(vec![MediaType::new("text/plain")]);
    let mut present = expected[..expected.len() - 2].to_vec();
    present.extend(cat(&[&h("01 0c 0a"), b"text/plain", &h("00")]));
    pinned(&p, &present);
}

#[test]
fn asset_policy_refuses_unknown_values() {
    let ok = encode(&asset_policy_example()).unwrap();
    let mut b = ok.clone();
    b[0] = 3;
    unknown::<AssetPolicy>(&b, 3);
    // allowed_download_types[0] (offset 1 + 6 + 1)
    let mut b = ok.clone();
    assert_eq!(b[8], 0);
    b[8] = 3;
    unknown::<AssetPolicy>(&b, 3);
    // default_download_type
    let mut b = ok.clone();
    assert_eq!(b[12], 0);
    b[12] = 0xff;
    unknown::<AssetPolicy>(&b, 0xff);
    // presence octet of permitted_media_types
    let mut b = ok.clone();
    let i = b.len() - 2;
    b[i] = 2;
    refused::<AssetPolicy>(&b);
}

#[test]
fn asset_policy_validation() {
    let mut p = asset_policy_example();
    assert_eq!(p.validate(), Ok(()));
    p.upload_domains.push(p.upload_domains[0].clone());
    assert_eq!(p.validate(), Err(RoomPolicyError::HubUploadDomains(2)));
    p.asset_upload_location = AssetUploadLocation::LocalProvider;
    assert_eq!(p.validate(), Ok(()));
    p.download_privacy.default_download_type = DownloadPrivacyType::HubProxy;
    assert_eq!(p.validate(), Err(RoomPolicyError::DownloadTypeConflict));
    p.download_privacy.default_download_type = DownloadPrivacyType::Direct;
    p.download_privacy
        .allowed_download_types
        .push(DownloadPrivacyType::HubProxy);
    assert_eq!(p.validate(), Err(RoomPolicyError::DownloadTypeConflict));
}

// --- logging_policy ------------------------------------------------------

#[test]
fn logging_policy_known_encoding() {
    let p = LoggingPolicy {
        logging: Gated::Required(LoggingSettings {
            logging_clients: vec![Uri::new("l")],
            machine_readable_policy: Uri::default(),
            human_readable_policy: Uri::new("h"),
        }),
    };
    // required(1) | logging_clients<V> | machine (empty, C12b) | human
    pinned(&p, &h("01 02016c 00 0168"));
    assert!(p.logging_active());
    let p = LoggingPolicy {
        logging: Gated::Optional(LoggingSettings {
            logging_clients: vec![],
            machine_readable_policy: Uri::new("m"),
            human_readable_policy: Uri::default(),
        }),
    };
    pinned(&p, &h("00 00 016d 00"));
    assert!(!p.logging_active());
    let p = LoggingPolicy {
        logging: Gated::Forbidden,
    };
    pinned(&p, &h("02"));
    assert!(!p.logging_active());
    unknown::<LoggingPolicy>(&h("03"), 3);
    unknown::<LoggingPolicy>(&h("ff 00 00 00"), 0xff);
}

#[test]
fn logging_policy_validation() {
    let mut p = LoggingPolicy {
        logging: Gated::Required(LoggingSettings {
            logging_clients: vec![],
            machine_readable_policy: Uri::default(),
            human_readable_policy: Uri::default(),
        }),
    };
    assert_eq!(p.validate(), Err(RoomPolicyError::MissingLoggingClient));
    if let Gated::Required(s) = &mut p.logging {
        s.logging_clients
            .push(Uri::new("mimi://a.example/d/logger/1"));
    }
    assert_eq!(p.validate(), Ok(()));
}

// --- chat_history_policy -------------------------------------------------

#[test]
fn history_policy_known_encoding() {
    let p = HistoryPolicy {
        history_sharing: Gated::Optional(HistorySharing {
            roles_that_can_share: vec![2, 3],
            automatically_share: true,
            max_time_period: 3600,
        }),
    };
    // optional(0) | roles<V> (8 octets) | automatically_share | max_time_period
    pinned(&p, &h("00 08 00000002 00000003 01 00000e10"));
    let mut b = encode(&p).unwrap();
    b[10] = 2; // automatically_share
    unknown::<HistoryPolicy>(&b, 2);
    let p = HistoryPolicy {
        history_sharing: Gated::Forbidden,
    };
    // Forbidden carries nothing (C12f).
    pinned(&p, &h("02"));
    unknown::<HistoryPolicy>(&h("03"), 3);
}

#[test]
fn history_policy_validation() {
    let mut s = HistorySharing {
        roles_that_can_share: vec![4, 1],
        automatically_share: false,
        max_time_period: 0,
    };
    let p = HistoryPolicy {
        history_sharing: Gated::Required(s.clone()),
    };
    assert_eq!(p.validate(), Err(RoomPolicyError::ReservedHistoryRole(1)));
    s.roles_that_can_share = vec![4, 5];
    let p = HistoryPolicy {
        history_sharing: Gated::Required(s),
    };
    assert_eq!(p.validate(), Ok(()));
}

// --- bot_policy ----------------------------------------------------------

fn bot_example() -> Bot {
    Bot {
        name: vl(b"b"),
        description: vl(b""),
        homepage: Uri::new("u"),
        local_client_bot: false,
        bot_role_index: 5,
        can_target_message_in_group: true,
        per_user_content: false,
    }
}

#[test]
fn bot_policy_known_encoding() {
    let p = BotPolicy {
        allowed_bots: vec![bot_example()],
    };
    // allowed_bots<V> (12 octets): name, description, homepage, local,
    // role index, can_target, per_user
    pinned(&p, &h("0c 0162 00 0175 00 00000005 01 00"));
    pinned(&BotPolicy::default(), &h("00"));
    let ok = encode(&p).unwrap();
    for i in [6, 11, 12] {
        let mut b = ok.clone();
        b[i] = 2;
        unknown::<BotPolicy>(&b, 2);
    }
}

#[test]
fn bot_policy_validation() {
    let mut p = BotPolicy {
        allowed_bots: vec![bot_example(), bot_example()],
    };
    assert_eq!(p.validate(), Ok(()));
    p.allowed_bots[1].local_client_bot = true;
    assert_eq!(p.validate(), Err(RoomPolicyError::LocalBotWithRole(1)));
    p.allowed_bots[1].bot_role_index = 0;
    assert_eq!(p.validate(), Ok(()));
}

// --- message_expiration_policy ------------------------------------------

#[test]
fn message_expiration_known_encoding() {
    let p = MessageExpiration {
        expiring_messages: Gated::Required(ExpirationDurations {
            min_expiration_duration: 60,
            max_expiration_duration: 604_800,
            default_expiration_duration: Some(86_400),
        }),
    };
    // required(1) | min | max | optional<uint32> default
    pinned(&p, &h("01 0000003c 00093a80 01 00015180"));
    let p = MessageExpiration {
        expiring_messages: Gated::Optional(ExpirationDurations {
            min_expiration_duration: 1,
            max_expiration_duration: 2,
            default_expiration_duration: None,
        }),
    };
    pinned(&p, &h("00 00000001 00000002 00"));
    pinned(
        &MessageExpiration {
            expiring_messages: Gated::Forbidden,
        },
        &h("02"),
    );
    unknown::<MessageExpiration>(&h("03"), 3);
    // presence octet of default_expiration_duration
    refused::<MessageExpiration>(&h("00 00000001 00000002 02 00000001"));
}

#[test]
fn message_expiration_validation() {
    let d = |min, max, default| MessageExpiration {
        expiring_messages: Gated::Optional(ExpirationDurations {
            min_expiration_duration: min,
            max_expiration_duration: max,
            default_expiration_duration: default,
        }),
    };
    assert_eq!(d(1, 5, Some(3)).validate(), Ok(()));
    assert_eq!(d(1, 5, None).validate(), Ok(()));
    let e = Err(RoomPolicyError::UnorderedBounds(
        "message_expiration_policy",
    ));
    assert_eq!(d(6, 5, None).validate(), e);
    assert_eq!(d(1, 5, Some(9)).validate(), e);
    assert_eq!(d(2, 5, Some(1)).validate(), e);
}

// --- mls_operational_policy ---------------------------------------------

fn operational_example() -> OperationalParameters {
    OperationalParameters {
        mandatory_capabilities: ExtendedCapabilities {
            versions: vec![1],
            cipher_suites: vec![CipherSuite(1)],
            extensions: vec![6],
            proposals: vec![],
            credentials: vec![1],
            wire_formats: vec![1, 2],
            component_ids: vec![0x22],
            safe_aad_types: vec![],
            media_types: vec![MediaType::new("t/p")],
            content_types: vec![1],
        },
        default_capabilities: ExtendedCapabilities::default(),
        forbidden_capabilities: ExtendedCapabilities::default(),
        handshake_formats: vec![1],
        external_proposal_allowed: true,
        external_commit_allowed: false,
        pending_proposal_policy: PendingProposalPolicy::RandomDelay {
            minimum_delay_ms: 10,
            maximum_delay_ms: 20,
        },
        leaf_node_update_time: MinDefaultMaxTime {
            minimum_time: 1,
            default_time: 2,
            maximum_time: 3,
        },
        app_message_policy: AppMessagePolicy {
            epoch_tolerance: 3,
            pad_to_size: 32,
            max_generations_skipahead: 1000,
        },
        max_kp_lifetime: 7,
        max_credential_lifetime: 8,
        resumption_psk_lifetime: 9,
        sender_nonce_keypair_lifetime: MinDefaultMaxTime {
            minimum_time: 0,
            default_time: 0,
            maximum_time: 0,
        },
        max_keypairs: 4,
        buffer_incoming_message_time: MinDefaultMaxTime {
            minimum_time: 0,
            default_time: 5,
            maximum_time: 10,
        },
        max_buffered_messages: 100,
    }
}

/// Offset of the pending proposal strategy octet in [`operational_example`].
const STRATEGY_AT: usize = 30 + 10 + 10 + 3 + 2;

#[test]
fn operational_parameters_known_encoding() {
    let expected = h(concat!(
        // mandatory_capabilities
        "02 0001",                                            // versions
        "02 0001",                                            // cipher_suites
        "02 0006",                                            // extensions
        "00",                                                 // proposals
        "02 0001",                                            // credentials
        "04 0001 0002",                                       // wire_formats (C12j)
        "02 0022",                                            // component_ids
        "00",                                                 // safe_aad_types
        "05 03742f70 00",                                     // media_types: t/p
        "01 01",                                              // content_types (uint8)
        "00000000000000000000", // default_capabilities: ten empty vectors
        "00000000000000000000", // forbidden_capabilities
        "02 0001",              // handshake_formats
        "01 00",                // external proposal / commit allowed
        "02 000000000000000a 0000000000000014", // random_delay 10..20 ms
        "0000000000000001 0000000000000002 0000000000000003", // LeafNode_update_time
        "03 0020 000003e8",     // app_message_policy
        "0000000000000007",     // max_kp_lifetime (`unit64`, C12h)
        "0000000000000008",     // max_credential_lifetime
        "0000000000000009",     // resumption_psk_lifetime
        "0000000000000000 0000000000000000 0000000000000000", // sender_nonce_keypair_lifetime
        "00000004",             // max_keypairs
        "0000000000000000 0000000000000005 000000000000000a", // buffer_incoming_message_time
        "00000064",             // max_buffered_messages
    ));
    let p = operational_example();
    pinned(&p, &expected);
    assert_eq!(expected[STRATEGY_AT], 2);

    // The other strategies, spliced in place of random_delay.
    let tail = &expected[STRATEGY_AT + 17..];
    for (policy, bytes) in [
        (PendingProposalPolicy::Unspecified, h("00")),
        (PendingProposalPolicy::ImmediateCommit, h("01")),
        (
            PendingProposalPolicy::Extension {
                id_of_strategy_params: 0x0030,
            },
            h("03 0030"),
        ),
    ] {
        let mut q = operational_example();
        q.pending_proposal_policy = policy;
        assert_eq!(policy.strategy() as u8, bytes[0]);
        pinned(&q, &cat(&[&expected[..STRATEGY_AT], &bytes, tail]));
    }
}

#[test]
fn operational_parameters_refuse_unknown_values() {
    let ok = encode(&operational_example()).unwrap();
    for v in [4u8, 0xff] {
        let mut b = ok.clone();
        b[STRATEGY_AT] = v;
        unknown::<OperationalParameters>(&b, u64::from(v));
        unknown::<PendingProposalPolicy>(&[v], u64::from(v));
    }
    for i in [STRATEGY_AT - 2, STRATEGY_AT - 1] {
        let mut b = ok.clone();
        b[i] = 2;
        unknown::<OperationalParameters>(&b, 2);
    }
    // Any code point of the open MLS registries decodes (C12j).
    let caps = ExtendedCapabilities {
        versions: vec![0xffff],
        cipher_suites: vec![CipherSuite(0x0a0a)],
        extensions: vec![0xfafa],
        proposals: vec![0xff00],
        credentials: vec![0x1234],
        wire_formats: vec![0xf000],
        component_ids: vec![0xffff],
        safe_aad_types: vec![0x8000],
        media_types: vec![],
        content_types: vec![0xff],
    };
    check_codec(&caps).unwrap();
    assert_eq!(
        decode_component::<PendingProposalStrategy>(&[3]).unwrap(),
        PendingProposalStrategy::Extension
    );
}

#[test]
fn operational_parameters_validation() {
    let mut p = operational_example();
    assert_eq!(p.validate(), Ok(()));
    p.pending_proposal_policy = PendingProposalPolicy::RandomDelay {
        minimum_delay_ms: 30,
        maximum_delay_ms: 20,
    };
    assert_eq!(
        p.validate(),
        Err(RoomPolicyError::UnorderedBounds("random_delay"))
    );
    p.pending_proposal_policy = PendingProposalPolicy::ImmediateCommit;
    p.buffer_incoming_message_time.default_time = 11;
    assert_eq!(
        p.validate(),
        Err(RoomPolicyError::UnorderedBounds(
            "buffer_incoming_message_time"
        ))
    );
}

// --- generated values ---------------------------------------------------

fn vlbytes(max: usize) -> impl Strategy<Value = VLBytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(VLBytes::new)
}

fn uri() -> impl Strategy<Value = Uri> {
    "[ -~]{0,24}".prop_map(Uri::new)
}

fn optionality() -> impl Strategy<Value = Optionality> {
    prop_oneof![
        Just(Optionality::Optional),
        Just(Optionality::Required),
        Just(Optionality::Forbidden),
    ]
}

fn gated<T: Clone + Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Gated<T>> {
    (0u8..3, s).prop_map(|(o, t)| match o {
        0 => Gated::Optional(t),
        1 => Gated::Required(t),
        _ => Gated::Forbidden,
    })
}

fn join_link() -> impl Strategy<Value = JoinLink> {
    vlbytes(40).prop_map(|join_link| JoinLink { join_link })
}

fn domain() -> impl Strategy<Value = DomainName> {
    vlbytes(16).prop_map(|domain| DomainName { domain })
}

fn download_type() -> impl Strategy<Value = DownloadPrivacyType> {
    prop_oneof![
        Just(DownloadPrivacyType::Direct),
        Just(DownloadPrivacyType::HubProxy),
        Just(DownloadPrivacyType::Ohttp),
    ]
}

fn media_type() -> impl Strategy<Value = MediaType> {
    (
        vlbytes(16),
        prop::collection::vec(
            (vlbytes(8), vlbytes(8)).prop_map(|(parameter_name, parameter_value)| Parameter {
                parameter_name,
                parameter_value,
            }),
            0..3,
        ),
    )
        .prop_map(|(media_type, parameters)| MediaType {
            media_type,
            parameters,
        })
}

fn asset_policy() -> impl Strategy<Value = AssetPolicy> {
    (
        prop_oneof![
            Just(AssetUploadLocation::Unspecified),
            Just(AssetUploadLocation::LocalProvider),
            Just(AssetUploadLocation::Hub),
        ],
        prop::collection::vec(
            (domain(), prop::collection::vec(domain(), 0..3)).prop_map(
                |(provider, asset_upload_destinations)| ProviderAssetUploadDomains {
                    provider,
                    asset_upload_destinations,
                },
            ),
            0..3,
        ),
        (
            prop::collection::vec(download_type(), 0..4),
            prop::collection::vec(download_type(), 0..4),
            download_type(),
        )
            .prop_map(|(a, f, d)| DownloadPrivacy {
                allowed_download_types: a,
                forbidden_download_types: f,
                default_download_type: d,
            }),
        any::<[u64; 4]>(),
        prop::collection::vec(media_type(), 0..3),
        prop::option::of(prop::collection::vec(media_type(), 0..3)),
    )
        .prop_map(
            |(loc, upload_domains, download_privacy, m, forbidden, permitted)| AssetPolicy {
                asset_upload_location: loc,
                upload_domains,
                download_privacy,
                max_image: m[0],
                max_audio: m[1],
                max_video: m[2],
                max_attachment: m[3],
                forbidden_media_types: forbidden,
                permitted_media_types: permitted,
            },
        )
}

fn bot() -> impl Strategy<Value = Bot> {
    (
        vlbytes(12),
        vlbytes(20),
        uri(),
        any::<[bool; 3]>(),
        any::<u32>(),
    )
        .prop_map(|(name, description, homepage, b, bot_role_index)| Bot {
            name,
            description,
            homepage,
            local_client_bot: b[0],
            bot_role_index,
            can_target_message_in_group: b[1],
            per_user_content: b[2],
        })
}

fn extended_capabilities() -> impl Strategy<Value = ExtendedCapabilities> {
    let v16 = || prop::collection::vec(any::<u16>(), 0..4);
    (
        (v16(), v16(), v16(), v16(), v16(), v16()),
        (v16(), v16()),
        prop::collection::vec(media_type(), 0..2),
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(
            |(
                (versions, suites, extensions, proposals, credentials, wire_formats),
                (ids, aad),
                media_types,
                content_types,
            )| {
                ExtendedCapabilities {
                    versions,
                    cipher_suites: suites.into_iter().map(CipherSuite).collect(),
                    extensions,
                    proposals,
                    credentials,
                    wire_formats,
                    component_ids: ids,
                    safe_aad_types: aad,
                    media_types,
                    content_types,
                }
            },
        )
}

fn pending_proposal_policy() -> impl Strategy<Value = PendingProposalPolicy> {
    prop_oneof![
        Just(PendingProposalPolicy::Unspecified),
        Just(PendingProposalPolicy::ImmediateCommit),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| PendingProposalPolicy::RandomDelay {
            minimum_delay_ms: a,
            maximum_delay_ms: b,
        }),
        any::<u16>().prop_map(|id| PendingProposalPolicy::Extension {
            id_of_strategy_params: id
        }),
    ]
}

fn min_default_max() -> impl Strategy<Value = MinDefaultMaxTime> {
    any::<[u64; 3]>().prop_map(|t| MinDefaultMaxTime {
        minimum_time: t[0],
        default_time: t[1],
        maximum_time: t[2],
    })
}

fn operational() -> impl Strategy<Value = OperationalParameters> {
    (
        (
            extended_capabilities(),
            extended_capabilities(),
            extended_capabilities(),
        ),
        prop::collection::vec(any::<u16>(), 0..3),
        any::<[bool; 2]>(),
        pending_proposal_policy(),
        (min_default_max(), min_default_max(), min_default_max()),
        (any::<u8>(), any::<u16>(), any::<u32>()),
        any::<[u64; 3]>(),
        any::<[u32; 2]>(),
    )
        .prop_map(
            |((m, d, f), handshake_formats, b, pending, (t1, t2, t3), (e, p, s), l, n)| {
                OperationalParameters {
                    mandatory_capabilities: m,
                    default_capabilities: d,
                    forbidden_capabilities: f,
                    handshake_formats,
                    external_proposal_allowed: b[0],
                    external_commit_allowed: b[1],
                    pending_proposal_policy: pending,
                    leaf_node_update_time: t1,
                    app_message_policy: AppMessagePolicy {
                        epoch_tolerance: e,
                        pad_to_size: p,
                        max_generations_skipahead: s,
                    },
                    max_kp_lifetime: l[0],
                    max_credential_lifetime: l[1],
                    resumption_psk_lifetime: l[2],
                    sender_nonce_keypair_lifetime: t2,
                    max_keypairs: n[0],
                    buffer_incoming_message_time: t3,
                    max_buffered_messages: n[1],
                }
            },
        )
}

proptest! {
    #[test]
    fn join_link_policy_rt(b in any::<[bool; 2]>(), join_link in uri(), expiration in any::<u32>()) {
        check_component(&JoinLinkPolicy {
            on_request: b[0],
            join_link,
            multiuser: b[1],
            expiration,
        })?;
    }

    #[test]
    fn join_links_rt(join_links in prop::collection::vec(join_link(), 0..5)) {
        check_component(&JoinLinksData { join_links })?;
    }

    #[test]
    fn join_links_update_rt(
        removed_indices in prop::collection::vec(any::<u32>(), 0..5),
        added_links in prop::collection::vec(join_link(), 0..4),
    ) {
        check_codec(&JoinLinksUpdate { removed_indices, added_links })?;
    }

    #[test]
    fn link_preview_policy_rt(
        o in (optionality(), optionality(), optionality()),
        link_preview_proxy in gated(prop::collection::vec(uri(), 0..3)),
    ) {
        check_component(&LinkPreviewPolicy {
            autodetect_hyperlinks_in_text: o.0,
            send_link_previews: o.1,
            automatic_link_previews: o.2,
            link_preview_proxy,
        })?;
    }

    #[test]
    fn asset_policy_rt(p in asset_policy()) {
        check_component(&p)?;
    }

    #[test]
    fn logging_policy_rt(logging in gated(
        (prop::collection::vec(uri(), 0..3), uri(), uri()).prop_map(|(c, m, h)| LoggingSettings {
            logging_clients: c,
            machine_readable_policy: m,
            human_readable_policy: h,
        }),
    )) {
        check_component(&LoggingPolicy { logging })?;
    }

    #[test]
    fn history_policy_rt(history_sharing in gated(
        (prop::collection::vec(any::<u32>(), 0..4), any::<bool>(), any::<u32>()).prop_map(
            |(r, a, m)| HistorySharing {
                roles_that_can_share: r,
                automatically_share: a,
                max_time_period: m,
            },
        ),
    )) {
        check_component(&HistoryPolicy { history_sharing })?;
    }

    #[test]
    fn bot_policy_rt(allowed_bots in prop::collection::vec(bot(), 0..3)) {
        check_component(&BotPolicy { allowed_bots })?;
    }

    #[test]
    fn message_expiration_rt(expiring_messages in gated(
        (any::<u32>(), any::<u32>(), any::<Option<u32>>()).prop_map(|(a, b, d)| {
            ExpirationDurations {
                min_expiration_duration: a,
                max_expiration_duration: b,
                default_expiration_duration: d,
            }
        }),
    )) {
        check_component(&MessageExpiration { expiring_messages })?;
    }

    #[test]
    fn operational_parameters_rt(p in operational()) {
        check_component(&p)?;
    }

    /// Decoding arbitrary bytes never panics.
    #[test]
    fn decode_garbage(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let _ = decode_component::<JoinLinkPolicy>(&bytes);
        let _ = decode_component::<JoinLinksData>(&bytes);
        let _ = decode_component::<JoinLinksUpdate>(&bytes);
        let _ = decode_component::<LinkPreviewPolicy>(&bytes);
        let _ = decode_component::<AssetPolicy>(&bytes);
        let _ = decode_component::<LoggingPolicy>(&bytes);
        let _ = decode_component::<HistoryPolicy>(&bytes);
        let _ = decode_component::<BotPolicy>(&bytes);
        let _ = decode_component::<MessageExpiration>(&bytes);
        let _ = decode_component::<OperationalParameters>(&bytes);
    }
}
