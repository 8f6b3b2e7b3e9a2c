//! The JSON shapes and paths of docs/client-api.md.

use mimi_client_api::paths::{self, RoomAction};
use mimi_client_api::*;
use serde_json::json;

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

#[test]
fn request_bodies_match_the_contract() {
    assert_eq!(
        to_json(&RegisterDevice {
            user: "mimi://a.example/u/alice".into(),
            device: "mimi://a.example/d/alice/laptop".into(),
            replace: false,
        }),
        json!({"user": "mimi://a.example/u/alice", "device": "mimi://a.example/d/alice/laptop"})
    );
    assert_eq!(
        to_json(&RegisterDevice {
            user: "mimi://a.example/u/alice".into(),
            device: "mimi://a.example/d/alice/laptop".into(),
            replace: true,
        }),
        json!({"user": "mimi://a.example/u/alice", "device": "mimi://a.example/d/alice/laptop", "replace": true})
    );
    assert_eq!(
        to_json(&UploadKeyPackages {
            key_packages: vec!["AAE=".into()],
            last_resort: false,
        }),
        json!({"key_packages": ["AAE="], "last_resort": false})
    );
    assert_eq!(
        to_json(&CreateRoom {
            room_id: "mimi://a.example/r/x".into(),
            group_info: "Zw==".into(),
            ratchet_tree: "cg==".into(),
        }),
        json!({"room_id": "mimi://a.example/r/x", "group_info": "Zw==", "ratchet_tree": "cg=="})
    );
    assert_eq!(to_json(&Ack { up_to: 7 }), json!({"up_to": 7}));
    assert_eq!(
        to_json(&ConsentRequest {
            operation: "request".into(),
            requester: "mimi://a.example/u/alice".into(),
            target: "mimi://b.example/u/bob".into(),
            room: None,
        }),
        json!({"operation": "request", "requester": "mimi://a.example/u/alice", "target": "mimi://b.example/u/bob"})
    );
    assert_eq!(
        to_json(&Profile {
            nick: Some("al".into()),
            discoverability: Some("exact".into()),
            ..Profile::default()
        }),
        json!({"nick": "al", "discoverability": "exact", "consent_required": false})
    );
}

#[test]
fn requests_reject_unknown_fields_and_default_optional_ones() {
    assert!(serde_json::from_value::<Ack>(json!({"up_to": 1, "x": 2})).is_err());
    assert!(
        serde_json::from_value::<RegisterDevice>(json!({"user": "u", "device": "d", "token": "t"}))
            .is_err()
    );
    let upload: UploadKeyPackages = serde_json::from_value(json!({"key_packages": []})).unwrap();
    assert!(!upload.last_resort);
    let profile: Profile = serde_json::from_value(json!({"handle": null})).unwrap();
    assert_eq!(profile, Profile::default());
}

#[test]
fn answers_match_the_contract() {
    let events: Events = serde_json::from_value(json!({
        "events": [{"seq": 7, "room_id": "mimi://a.example/r/x", "fanout": "AA=="}]
    }))
    .unwrap();
    assert_eq!(events.events[0].seq, 7);
    assert_eq!(
        to_json(&Registered { token: "t".into() }),
        json!({"token": "t"})
    );
    assert_eq!(to_json(&Stored { stored: 2 }), json!({"stored": 2}));
    assert_eq!(to_json(&Acked { deleted: 2 }), json!({"deleted": 2}));
    assert_eq!(
        to_json(&HubKeys {
            ciphersuite: 2,
            external_sender: "e".into(),
            franking_agent: "f".into()
        }),
        json!({"ciphersuite": 2, "external_sender": "e", "franking_agent": "f"})
    );
    let old: HubKeys =
        serde_json::from_value(json!({"external_sender": "e", "franking_agent": "f"})).unwrap();
    assert_eq!(old.ciphersuite, 1);
    let query: HubQuery = serde_json::from_value(json!({})).unwrap();
    assert_eq!(query, HubQuery::default());
    assert_eq!(query.ciphersuite, 1);
    assert_eq!(
        paths::hub(HubQuery { ciphersuite: 2 }),
        "/client/v1/hub?ciphersuite=2"
    );
}

#[test]
fn paths() {
    assert_eq!(
        RoomAction::GroupInfo.path("mimi://a.example/r/club-house_1"),
        "/client/v1/rooms/mimi%3A%2F%2Fa.example%2Fr%2Fclub-house_1/group-info"
    );
    for action in RoomAction::ALL {
        assert!(action.route().starts_with(paths::ROOMS));
        assert!(action.path("x").starts_with("/client/v1/rooms/x/"));
    }
    assert_eq!(
        paths::events(EventsQuery {
            after: 3,
            limit: Some(256)
        }),
        "/client/v1/events?after=3&limit=256"
    );
    assert_eq!(
        paths::events(EventsQuery::default()),
        "/client/v1/events?after=0"
    );
}
