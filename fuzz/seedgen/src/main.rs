//! Writes `fuzz/seeds/<target>/<name>`: valid encodings of every message the
//! fuzz targets decode, each prefixed with the target's selector byte where
//! the target has one (see the target sources). Deterministic apart from
//! the freshly generated MLS keys and signatures.
//!
//! Usage: `cargo run --manifest-path fuzz/Cargo.toml -p mimi-fuzz-seedgen`
//! (writes next to this crate, whatever the working directory).

use std::fs;
use std::path::{Path, PathBuf};

// The real openmls fixtures of the protocol tests (one KeyPackage, Welcome,
// GroupInfo, ratchet tree, Public/PrivateMessage of every content type).
#[path = "../../../crates/mimi-protocol/tests/common/mod.rs"]
mod common;

use common::{CS, fx};
use mimi_protocol::components::policy_components::{
    AppMessagePolicy, AssetUploadLocation, Bot, DomainName, DownloadPrivacy, DownloadPrivacyType,
    ExpirationDurations, ExtendedCapabilities, Gated, HistorySharing, JoinLink, LoggingSettings,
    MediaType, MinDefaultMaxTime, Parameter, PendingProposalPolicy, ProviderAssetUploadDomains,
};
use mimi_protocol::components::room_policy::{
    Claim, ClaimId, Optionality, PreAuthRoleEntry, StatusNotificationPolicy,
};
use mimi_protocol::components::{
    AssetPolicy, BaseRoomPolicy, BotPolicy, FRANK_AAD, FrankAAD, FrankingAgentData, HistoryPolicy,
    JoinLinkPolicy, JoinLinksData, JoinLinksUpdate, LinkPreviewPolicy, LoggingPolicy,
    MessageExpiration, OperationalParameters, PARTICIPANT_LIST, ParticipantListData,
    ParticipantListUpdate, PreAuthData, ROLES_LIST, ROOM_METADATA, RichDescription, Role, RoleData,
    RoomMetaData, SingleSourceRoleChangeTargets, UTF8String, Uri, UserRolePair, UserindexRolePair,
    write_component,
};
use mimi_protocol::msgs::fanout::encode_fanout_batch;
use mimi_protocol::msgs::{
    AbuseReport, AbuseType, AbusiveMessage, CipherSuite, ClientKeyMaterial, ClientMaterial,
    ConsentEntry, ConsentOperation, FanoutBody, FanoutMessage, FieldSource, Frank,
    FrankingIntegrityTbs, GroupInfoCode, GroupInfoOption, GroupInfoRatchetTreeTbe,
    GroupInfoRequestTbs, GroupInfoResponse, GroupInfoResponseBody, GroupInfoResponseTbs,
    HandshakeBody, HandshakeBundle, IdentifierQueryCode, IdentifierRequest, IdentifierResponse,
    KeyMaterialRequestTbs, KeyMaterialResponse, KeyMaterialUserCode, PartialGroupInfo,
    PendingProposal, ProfileField, QueryElement, RatchetTreeOption, RatchetTreePresence,
    SearchType, ServerFrankingContext, SubmitMessageRequest, SubmitMessageResponse, SubmitStatus,
    TlsString, UpdateRequest, UpdateResult, UpdateRoomResponse, UserProfile,
};
use mimi_protocol::{Directory, IdentifierUri, Protocol, encode};
use openmls::prelude::{AppDataDictionary, CredentialType, Extension, MlsMessageIn};
use openmls_traits::types::HpkeCiphertext;
use tls_codec::{Serialize, VLBytes};

struct Seeds {
    root: PathBuf,
    count: usize,
}

impl Seeds {
    fn write(&mut self, target: &str, name: &str, selector: Option<u8>, body: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("create seed directory");
        let mut bytes = Vec::with_capacity(body.len() + 1);
        bytes.extend(selector);
        bytes.extend_from_slice(body);
        fs::write(dir.join(name), bytes).expect("write seed");
        self.count += 1;
    }

    fn tls<T: Serialize>(&mut self, target: &str, name: &str, selector: Option<u8>, value: &T) {
        let body = encode(value).expect("seed encodes");
        self.write(target, name, selector, &body);
    }
}

fn uri(s: &str) -> IdentifierUri {
    IdentifierUri::new(s)
}

fn bytes(b: &[u8]) -> VLBytes {
    VLBytes::new(b.to_vec())
}

fn dictionary(entries: &[(u16, &[u8])]) -> AppDataDictionary {
    let mut d = AppDataDictionary::new();
    for (k, v) in entries {
        d.insert(*k, v.to_vec());
    }
    d
}

fn frank() -> Frank {
    FrankingIntegrityTbs {
        server_frank: [0x5a; 32],
        franking_signature_ciphersuite: CS.into(),
        context: ServerFrankingContext {
            sender_uri: uri("mimi://a.example/u/alice"),
            room_uri: uri("mimi://a.example/r/room"),
            accepted_timestamp: 1_700_000_000_000,
        },
    }
    .sign(&fx().signer)
    .expect("sign frank")
}

fn key_material(s: &mut Seeds) {
    let f = fx();
    let request = KeyMaterialRequestTbs {
        protocol: Protocol::Mls10,
        requesting_user: uri("mimi://a.example/u/alice"),
        target_user: uri("mimi://b.example/u/bob"),
        room_id: uri("mimi://a.example/r/room"),
        acceptable_ciphersuites: vec![CS.into(), CipherSuite(0x0a0a)],
        required_capabilities: f.required_capabilities[1].clone(),
        requester_signature_key: f.signature_keys[0].clone(),
        requester_credential: f.credentials[0].clone(),
    }
    .sign(&f.signer)
    .expect("sign");
    s.tls("key_material", "request", Some(0), &request);
    let response = KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::PartialSuccess,
        user_uri: uri("mimi://b.example/u/bob"),
        clients: vec![
            ClientKeyMaterial {
                client_uri: uri("mimi://b.example/d/bob/phone"),
                material: ClientMaterial::Success(f.key_packages[0].clone()),
            },
            ClientKeyMaterial {
                client_uri: uri("mimi://b.example/d/bob/laptop"),
                material: ClientMaterial::KeyMaterialExhausted,
            },
            ClientKeyMaterial {
                client_uri: uri("mimi://b.example/d/bob/tablet"),
                material: ClientMaterial::NothingCompatible(Some(f.capabilities[1].clone())),
            },
        ],
    };
    s.tls("key_material", "response", Some(1), &response);
    let refused = KeyMaterialResponse {
        protocol: Protocol::Mls10,
        user_status: KeyMaterialUserCode::NoConsent,
        user_uri: uri("mimi://b.example/u/bob"),
        clients: vec![],
    };
    s.tls("key_material", "response-no-consent", Some(1), &refused);
}

fn update(s: &mut Seeds) {
    let f = fx();
    let commit = UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: f.commits[0].clone(),
            body: HandshakeBody::Commit {
                welcome: Some(f.welcome.clone()),
                group_info_option: GroupInfoOption::Full(f.group_info.clone()),
                ratchet_tree_option: RatchetTreeOption::Full(f.ratchet_tree.clone()),
            },
        },
    };
    s.tls("update", "commit-full", Some(0), &commit);
    let partial = UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: f.commits[1].clone(),
            body: HandshakeBody::Commit {
                welcome: None,
                group_info_option: GroupInfoOption::Partial(PartialGroupInfo {
                    ratchet_tree_presence: RatchetTreePresence::Present,
                    group_info_extensions: vec![Extension::Unknown(
                        0xff00,
                        openmls::prelude::UnknownExtension(vec![1, 2, 3]),
                    )],
                    signature: bytes(&[9; 64]),
                }),
                ratchet_tree_option: RatchetTreeOption::HttpsUri {
                    ratchet_tree_url: bytes(b"https://a.example/tree"),
                    tree_signature: bytes(&[7; 64]),
                },
            },
        },
    };
    s.tls("update", "commit-partial", Some(0), &partial);
    let proposal = UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: f.proposals[0].clone(),
            body: HandshakeBody::Proposal {
                more_proposals: vec![f.proposals[0].clone()],
            },
        },
    };
    s.tls("update", "proposal", Some(0), &proposal);
    let responses = [
        (
            "response-success",
            UpdateResult::Success {
                accepted_timestamp: 1_700_000_000_000,
            },
        ),
        (
            "response-wrong-epoch",
            UpdateResult::WrongEpoch { current_epoch: 3 },
        ),
        ("response-not-allowed", UpdateResult::NotAllowed),
        (
            "response-invalid-proposal",
            UpdateResult::InvalidProposal {
                invalid_proposals: f.proposal_refs.clone(),
            },
        ),
    ];
    for (name, result) in responses {
        let response = UpdateRoomResponse {
            error_description: TlsString::from("why"),
            result,
        };
        s.tls("update", name, Some(1), &response);
    }
}

fn submit(s: &mut Seeds) {
    let f = fx();
    for (i, app) in f.applications.iter().enumerate() {
        let request = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: app.clone(),
            sending_uri: uri("mimi://a.example/d/alice/phone"),
        };
        s.tls("submit", &format!("request-{i}"), Some(0), &request);
    }
    let statuses = [
        (
            "response-franked",
            SubmitStatus::Accepted {
                accepted_timestamp: 1_700_000_000_000,
                frank: Some(frank()),
            },
        ),
        (
            "response-accepted",
            SubmitStatus::Accepted {
                accepted_timestamp: 1,
                frank: None,
            },
        ),
        ("response-not-allowed", SubmitStatus::NotAllowed),
        (
            "response-epoch-too-old",
            SubmitStatus::EpochTooOld { current_epoch: 9 },
        ),
    ];
    for (name, status) in statuses {
        let response = SubmitMessageResponse {
            protocol: Protocol::Mls10,
            status,
        };
        s.tls("submit", name, Some(1), &response);
    }
}

fn fanout_messages() -> Vec<(&'static str, FanoutMessage)> {
    let f = fx();
    let m = |message: &MlsMessageIn, body| FanoutMessage {
        timestamp: 1_700_000_000_000,
        message: message.clone(),
        body,
    };
    vec![
        (
            "application",
            m(
                &f.applications[1],
                FanoutBody::Application {
                    frank: Some(frank()),
                },
            ),
        ),
        (
            "welcome",
            m(
                &f.welcome_message,
                FanoutBody::Welcome {
                    ratchet_tree_option: RatchetTreeOption::Full(f.ratchet_tree.clone()),
                },
            ),
        ),
        (
            "proposal",
            m(
                &f.proposals[1],
                FanoutBody::Proposal {
                    more_proposals: vec![],
                },
            ),
        ),
        (
            "commit",
            m(
                &f.commits[0],
                FanoutBody::Commit {
                    external_proposals: vec![f.proposals[0].clone()],
                },
            ),
        ),
    ]
}

fn fanout(s: &mut Seeds) {
    let messages = fanout_messages();
    for (name, message) in &messages {
        s.tls("fanout", name, Some(0), message);
    }
    let batch: Vec<FanoutMessage> = messages.into_iter().map(|(_, m)| m).collect();
    let body = encode_fanout_batch(&batch).expect("batch");
    s.write("fanout", "batch", Some(1), &body);
    let one = encode_fanout_batch(&batch[..1]).expect("batch");
    s.write("fanout", "batch-one", Some(1), &one);
}

fn group_info(s: &mut Seeds) {
    let f = fx();
    let request = GroupInfoRequestTbs {
        protocol: Protocol::Mls10,
        cipher_suite: CS.into(),
        requesting_signature_key: f.signature_keys[0].clone(),
        requesting_credential: f.credentials[0].clone(),
        group_info_public_key: bytes(&[3; 32]),
        joining_code: Some(bytes(b"join")),
    }
    .sign(&f.signer)
    .expect("sign");
    s.tls("group_info", "request", Some(0), &request);
    let response = GroupInfoResponseTbs {
        protocol: Protocol::Mls10,
        room_id: bytes(b"mimi://a.example/r/room"),
        status: GroupInfoCode::Success,
        cipher_suite: CS.into(),
        hub_sender: f.external_senders[0].clone(),
        encrypted_groupinfo_and_tree: HpkeCiphertext {
            kem_output: bytes(&[1; 32]),
            ciphertext: bytes(&[2; 80]),
        },
    }
    .sign(&f.signer)
    .expect("sign");
    s.tls("group_info", "response-success", Some(1), &response);
    for (name, body) in [
        (
            "response-not-authorized",
            GroupInfoResponseBody::NotAuthorized,
        ),
        ("response-no-such-room", GroupInfoResponseBody::NoSuchRoom),
    ] {
        let response = GroupInfoResponse {
            protocol: Protocol::Mls10,
            room_id: bytes(b"mimi://a.example/r/room"),
            body,
        };
        s.tls("group_info", name, Some(1), &response);
    }
    let tbe = GroupInfoRatchetTreeTbe {
        group_info: f.group_info.clone(),
        ratchet_tree_option: RatchetTreeOption::Full(f.ratchet_tree.clone()),
        pending_proposals: vec![PendingProposal {
            proposal: f.proposals[0].clone(),
            hub_accepted_time: 1_700_000_000_000,
        }],
    };
    s.tls("group_info", "tbe", Some(2), &tbe);
    let tbe = GroupInfoRatchetTreeTbe {
        group_info: f.group_info.clone(),
        ratchet_tree_option: RatchetTreeOption::OutOfBand {
            tree_signature: bytes(&[4; 64]),
        },
        pending_proposals: vec![],
    };
    s.tls("group_info", "tbe-out-of-band", Some(2), &tbe);
}

fn consent(s: &mut Seeds) {
    let f = fx();
    let entry = |op, room: Option<&str>, kps| ConsentEntry {
        consent_operation: op,
        requester_uri: uri("mimi://a.example/u/alice"),
        target_uri: uri("mimi://b.example/u/bob"),
        room_id: room.map(uri),
        client_key_packages: kps,
        consent_extensions: dictionary(&[(0x0100, b"x")]),
    };
    s.tls(
        "consent",
        "request",
        None,
        &entry(
            ConsentOperation::Request,
            Some("mimi://a.example/r/room"),
            vec![],
        ),
    );
    s.tls(
        "consent",
        "grant",
        None,
        &entry(ConsentOperation::Grant, None, f.key_packages.clone()),
    );
    s.tls(
        "consent",
        "revoke",
        None,
        &entry(ConsentOperation::Revoke, None, vec![]),
    );
}

fn identifier(s: &mut Seeds) {
    let request = IdentifierRequest {
        query_elements: vec![
            QueryElement {
                search_type: SearchType::Handle,
                search_value: bytes(b"@bob"),
            },
            QueryElement {
                search_type: SearchType::OidcStdClaim {
                    claim_name: bytes(b"email"),
                },
                search_value: bytes(b"bob@b.example"),
            },
            QueryElement {
                search_type: SearchType::VcardField {
                    property_name: bytes(b"TEL"),
                },
                search_value: bytes(b"+15555550100"),
            },
        ],
        id_request_extensions: dictionary(&[]),
    };
    s.tls("identifier", "request", Some(0), &request);
    let response = IdentifierResponse {
        response_code: IdentifierQueryCode::Success,
        uri: vec![uri("mimi://b.example/u/bob")],
        found_profiles: vec![UserProfile {
            stable_uri: uri("mimi://b.example/u/bob"),
            fields: vec![ProfileField {
                field_source: FieldSource::VcardField,
                field_name: TlsString::from("FN"),
                field_value: bytes("Böb".as_bytes()),
            }],
        }],
        id_response_extensions: dictionary(&[(7, b"ext")]),
    };
    s.tls("identifier", "response", Some(1), &response);
    let not_found = IdentifierResponse {
        response_code: IdentifierQueryCode::NotFound,
        uri: vec![],
        found_profiles: vec![],
        id_response_extensions: dictionary(&[]),
    };
    s.tls("identifier", "response-not-found", Some(1), &not_found);
}

fn abuse(s: &mut Seeds, content: &[u8]) {
    let report = AbuseReport {
        reporting_user: uri("mimi://a.example/u/alice"),
        alleged_abuser_uri: uri("mimi://b.example/u/bob"),
        reason_code: AbuseType::RESERVED,
        note: bytes(b"spam"),
        messages: vec![AbusiveMessage {
            message_content: bytes(content),
            frank: frank(),
            accepted_timestamp: 1_700_000_000_000,
        }],
        abuse_extensions: dictionary(&[]),
    };
    s.tls("abuse", "report", None, &report);
}

fn directory(s: &mut Seeds) {
    let ours = Directory::for_base_url(
        "https://mimi.a.example:8443/api",
        mimi_protocol::endpoints::Endpoint::ALL,
    )
    .expect("directory");
    s.write("directory", "ours", None, ours.to_json().as_bytes());
    // The example document of -06 §5.1 (compact, with an unknown key).
    let example = r#"{"keyMaterial":"https://mimi.example.com/v1/keyMaterial/{targetUser}","update":"https://mimi.example.com/v1/update/{roomId}","notify":"https://mimi.example.com/v1/notify/{roomId}","submitMessage":"https://mimi.example.com/v1/submitMessage/{roomId}","groupInfo":"https://mimi.example.com/v1/groupInfo/{roomId}","requestConsent":"https://mimi.example.com/v1/requestConsent/{targetDomain}","updateConsent":"https://mimi.example.com/v1/updateConsent/{requesterDomain}","identifierQuery":"https://mimi.example.com/v1/identifierQuery/{domain}","reportAbuse":"https://mimi.example.com/v1/reportAbuse/{roomId}","proxyDownload":"https://mimi.example.com/v1/proxyDownload/{downloadUrl}","x":1}"#;
    s.write("directory", "example", None, example.as_bytes());
}

fn uris(s: &mut Seeds) {
    let examples = [
        "mimi://a.example/u/alice",
        "MIMI://A.Example/d/alice/Client%41",
        "mimi://a.example",
        "mimi://a.example/r/caf%c3%a9",
        "mimi://a.example/u/a%2Fb",
        "mimi://a-b.c.example/g/group!$&'()*+,;=:@",
        "a.example",
    ];
    for (i, text) in examples.iter().enumerate() {
        s.write("uri", &format!("uri-{i}"), None, text.as_bytes());
    }
}

fn components(s: &mut Seeds) {
    let f = fx();
    let list = ParticipantListData::new(vec![
        UserRolePair::new("mimi://a.example/u/alice", 1),
        UserRolePair::new("mimi://b.example/u/bob", 2),
    ]);
    s.tls("components", "participant-list", Some(0), &list);
    let update = ParticipantListUpdate {
        changed_role_participants: vec![UserindexRolePair {
            user_index: 1,
            role_index: 1,
        }],
        removed_indices: vec![0],
        added_participants: vec![UserRolePair::new("mimi://c.example/u/carol", 2)],
    };
    s.tls("components", "participant-list-update", Some(1), &update);
    let mut pair = encode(&list).expect("list");
    pair.extend(encode(&update).expect("update"));
    s.write("components", "participant-list-and-update", Some(2), &pair);
    let metadata = RoomMetaData {
        room_uri: Uri::new("mimi://a.example/r/room"),
        room_name: UTF8String::new("Room").expect("utf8"),
        room_descriptions: vec![RichDescription::plain("en", "A room")],
        room_avatar: Uri::new("https://a.example/avatar.png"),
        room_subject: UTF8String::new("Subject").expect("utf8"),
        room_mood: UTF8String::default(),
    };
    s.tls("components", "room-metadata", Some(3), &metadata);
    let role = Role {
        role_index: 1,
        role_name: bytes(b"admin"),
        role_description: bytes(b"Admin"),
        role_capabilities: vec![0x0000, 0x0001, 0x0100],
        minimum_participants_constraint: 1,
        maximum_participants_constraint: Some(3),
        minimum_active_participants_constraint: 0,
        maximum_active_participants_constraint: None,
        authorized_role_changes: vec![SingleSourceRoleChangeTargets {
            from_role_index: 0,
            target_role_indexes: vec![1, 2],
        }],
    };
    let roles = RoleData {
        roles: vec![role.clone()],
    };
    s.tls("components", "roles", Some(4), &roles);
    let preauth = PreAuthData {
        preauthorized_entries: vec![PreAuthRoleEntry {
            claimset: vec![Claim {
                claim_id: ClaimId {
                    credential_type: CredentialType::Basic,
                    id: bytes(b"domain"),
                },
                claim_value: bytes(b"a.example"),
            }],
            target_role: role,
        }],
    };
    s.tls("components", "preauth", Some(5), &preauth);
    let policy = BaseRoomPolicy {
        parent_dependant: true,
        parent_room: vec![Uri::new("mimi://a.example/r/parent")],
        max_users: Some(10),
        policy_component_ids: vec![PARTICIPANT_LIST, ROLES_LIST],
        ..BaseRoomPolicy::default()
    };
    s.tls("components", "base-room-policy", Some(6), &policy);
    let status = StatusNotificationPolicy {
        delivery_notifications: Optionality::Optional,
        read_receipts: Optionality::Forbidden,
    };
    s.tls("components", "status-notification", Some(7), &status);
    let aad = FrankAAD {
        franking_tag: [0x11; 32],
    };
    s.tls("components", "frank-aad", Some(8), &aad);
    let agent = FrankingAgentData {
        franking_signature_key: f.signature_keys[0].clone(),
        credential: f.credentials[0].clone(),
    };
    s.tls("components", "franking-agent", Some(9), &agent);
    s.tls("components", "frank", Some(10), &frank());
    let dict = dictionary(&[
        (PARTICIPANT_LIST, &encode(&list).expect("list")),
        (ROOM_METADATA, &encode(&metadata).expect("metadata")),
    ]);
    s.tls("components", "dictionary", Some(11), &dict);
    policy_components(s, &status);
}

/// The room policy components of `mimi_protocol::components::policy_components`
/// (selectors 12–21), and a dictionary holding all of them.
fn policy_components(s: &mut Seeds, status: &StatusNotificationPolicy) {
    let join_link_policy = JoinLinkPolicy {
        on_request: true,
        join_link: Uri::new("https://a.example/join-requests"),
        multiuser: false,
        expiration: 86_400,
    };
    s.tls(
        "components",
        "join-link-policy",
        Some(12),
        &join_link_policy,
    );
    let join_links = JoinLinksData {
        join_links: vec![
            JoinLink::new("https://a.example/j/7f3a"),
            JoinLink::new("https://a.example/j/91c2"),
        ],
    };
    s.tls("components", "join-links", Some(13), &join_links);
    let join_links_update = JoinLinksUpdate {
        removed_indices: vec![0],
        added_links: vec![JoinLink::new("https://a.example/j/0b5e")],
    };
    s.tls(
        "components",
        "join-links-update",
        Some(14),
        &join_links_update,
    );
    let link_preview = LinkPreviewPolicy {
        autodetect_hyperlinks_in_text: Optionality::Optional,
        send_link_previews: Optionality::Optional,
        automatic_link_previews: Optionality::Forbidden,
        link_preview_proxy: Gated::Required(vec![Uri::new("https://preview.a.example/")]),
    };
    s.tls("components", "link-preview-policy", Some(15), &link_preview);
    let assets = AssetPolicy {
        asset_upload_location: AssetUploadLocation::LocalProvider,
        upload_domains: vec![ProviderAssetUploadDomains {
            provider: DomainName::new("a.example"),
            asset_upload_destinations: vec![DomainName::new("assets.a.example")],
        }],
        download_privacy: DownloadPrivacy {
            allowed_download_types: vec![DownloadPrivacyType::Direct, DownloadPrivacyType::Ohttp],
            forbidden_download_types: vec![DownloadPrivacyType::HubProxy],
            default_download_type: DownloadPrivacyType::Ohttp,
        },
        max_image: 10_000_000,
        max_audio: 20_000_000,
        max_video: 100_000_000,
        max_attachment: 50_000_000,
        forbidden_media_types: vec![MediaType::new("application/x-msdownload")],
        permitted_media_types: Some(vec![MediaType {
            media_type: bytes(b"text/plain"),
            parameters: vec![Parameter {
                parameter_name: bytes(b"charset"),
                parameter_value: bytes(b"UTF-8"),
            }],
        }]),
    };
    s.tls("components", "asset-policy", Some(16), &assets);
    let logging = LoggingPolicy {
        logging: Gated::Optional(LoggingSettings {
            logging_clients: vec![Uri::new("mimi://a.example/d/logger/1")],
            machine_readable_policy: Uri::new("https://a.example/logging.json"),
            human_readable_policy: Uri::default(),
        }),
    };
    s.tls("components", "logging-policy", Some(17), &logging);
    let history = HistoryPolicy {
        history_sharing: Gated::Optional(HistorySharing {
            roles_that_can_share: vec![4, 5],
            automatically_share: false,
            max_time_period: 7 * 86_400,
        }),
    };
    s.tls("components", "chat-history-policy", Some(18), &history);
    let bots = BotPolicy {
        allowed_bots: vec![Bot {
            name: bytes(b"poker"),
            description: bytes(b"Deals cards"),
            homepage: Uri::new("https://bots.example/poker"),
            local_client_bot: false,
            bot_role_index: 3,
            can_target_message_in_group: true,
            per_user_content: true,
        }],
    };
    s.tls("components", "bot-policy", Some(19), &bots);
    let expiration = MessageExpiration {
        expiring_messages: Gated::Required(ExpirationDurations {
            min_expiration_duration: 60,
            max_expiration_duration: 7 * 86_400,
            default_expiration_duration: Some(86_400),
        }),
    };
    s.tls(
        "components",
        "message-expiration-policy",
        Some(20),
        &expiration,
    );
    let operational = OperationalParameters {
        mandatory_capabilities: ExtendedCapabilities {
            versions: vec![1],
            cipher_suites: vec![CS.into()],
            extensions: vec![0x0006],
            proposals: vec![0x0008],
            credentials: vec![0x0001],
            wire_formats: vec![0x0001, 0x0002],
            component_ids: vec![PARTICIPANT_LIST, ROOM_METADATA],
            safe_aad_types: vec![FRANK_AAD],
            media_types: vec![MediaType::new("message/mimi")],
            content_types: vec![1, 2, 3],
        },
        default_capabilities: ExtendedCapabilities::default(),
        forbidden_capabilities: ExtendedCapabilities {
            cipher_suites: vec![CipherSuite(0x0a0a)],
            ..ExtendedCapabilities::default()
        },
        handshake_formats: vec![0x0001],
        external_proposal_allowed: true,
        external_commit_allowed: false,
        pending_proposal_policy: PendingProposalPolicy::RandomDelay {
            minimum_delay_ms: 100,
            maximum_delay_ms: 2_000,
        },
        leaf_node_update_time: MinDefaultMaxTime {
            minimum_time: 3_600,
            default_time: 86_400,
            maximum_time: 30 * 86_400,
        },
        app_message_policy: AppMessagePolicy {
            epoch_tolerance: 2,
            pad_to_size: 256,
            max_generations_skipahead: 1_000,
        },
        max_kp_lifetime: 90 * 86_400,
        max_credential_lifetime: 365 * 86_400,
        resumption_psk_lifetime: 86_400,
        sender_nonce_keypair_lifetime: MinDefaultMaxTime {
            minimum_time: 0,
            default_time: 60,
            maximum_time: 600,
        },
        max_keypairs: 1_000,
        buffer_incoming_message_time: MinDefaultMaxTime {
            minimum_time: 0,
            default_time: 5,
            maximum_time: 30,
        },
        max_buffered_messages: 100,
    };
    s.tls(
        "components",
        "mls-operational-policy",
        Some(21),
        &operational,
    );

    let mut dict = AppDataDictionary::new();
    write_component(&mut dict, status).expect("status");
    write_component(&mut dict, &join_link_policy).expect("join link policy");
    write_component(&mut dict, &join_links).expect("join links");
    write_component(&mut dict, &link_preview).expect("link preview");
    write_component(&mut dict, &assets).expect("assets");
    write_component(&mut dict, &logging).expect("logging");
    write_component(&mut dict, &history).expect("history");
    write_component(&mut dict, &bots).expect("bots");
    write_component(&mut dict, &expiration).expect("expiration");
    write_component(&mut dict, &operational).expect("operational");
    s.tls("components", "dictionary-policy", Some(11), &dict);
}

/// The content vectors of draft-ietf-mimi-content; returns `original.cbor`.
fn content(s: &mut Seeds, vectors: &Path) -> Vec<u8> {
    let mut entries: Vec<_> = fs::read_dir(vectors)
        .expect("content vectors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cbor"))
        .collect();
    entries.sort();
    let mut original = Vec::new();
    for path in entries {
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let body = fs::read(&path).expect("read vector");
        // implied-*.cbor are MessageDerivedValues, the rest MimiContent.
        let selector = if name.starts_with("implied") { 1 } else { 0 };
        if name == "original" {
            original = body.clone();
        }
        s.write("content", &name, Some(selector), &body);
    }
    original
}

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = fuzz.join("seeds");
    if root.exists() {
        fs::remove_dir_all(&root).expect("clear old seeds");
    }
    let mut s = Seeds { root, count: 0 };
    let original = content(&mut s, &fuzz.join("../crates/mimi-content/tests/vectors"));
    key_material(&mut s);
    update(&mut s);
    submit(&mut s);
    fanout(&mut s);
    group_info(&mut s);
    consent(&mut s);
    identifier(&mut s);
    abuse(&mut s, &original);
    directory(&mut s);
    uris(&mut s);
    components(&mut s);
    println!("wrote {} seeds to {}", s.count, s.root.display());
}
