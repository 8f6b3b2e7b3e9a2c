//! Which capability an AppDataUpdate of a room component needs
//! (room-policy §Role Capabilities), at the granularity the draft gives:
//! each room metadata field its own capability (§Adjust metadata), each
//! policy component the capability of its kind (§Disruptive Policy
//! Changes).

use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::room_policy::{CapabilityType, RoomPolicyError};
use mimi_protocol::components::{
    ASSET_POLICY, AssetPolicy, BASE_ROOM_POLICY, BOT_POLICY, BaseRoomPolicy, BotPolicy,
    CHAT_HISTORY_POLICY, ComponentId, HistoryPolicy, JOIN_LINK_POLICY, JoinLinkPolicy,
    LINK_PREVIEW_POLICY, LOGGING_POLICY, LinkPreviewPolicy, LoggingPolicy,
    MESSAGE_EXPIRATION_POLICY, MLS_OPERATIONAL_POLICY, MessageExpiration, OperationalParameters,
    PREAUTH_LIST, PreAuthData, ROLES_LIST, RoleData, RoomMetaData, STATUS_NOTIFICATION_POLICY,
    StatusNotificationPolicy, decode_component,
};

use crate::rejection::PolicyViolation;

/// The capability that allows replacing component `id`, for the
/// components whose update is all-or-nothing. `None`: the component has
/// finer rules (participant list, room metadata) or takes no updates.
pub fn capability_for(id: ComponentId) -> Option<CapabilityType> {
    match id {
        ROLES_LIST => Some(cap::CAN_CHANGE_ROLE_DEFINITIONS),
        PREAUTH_LIST => Some(cap::CAN_CHANGE_PREAUTHORIZED_USER_LIST),
        BASE_ROOM_POLICY => Some(cap::CAN_CHANGE_ROOM_MEMBERSHIP_STYLE),
        MLS_OPERATIONAL_POLICY => Some(cap::CAN_CHANGE_MLS_OPERATIONAL_POLICIES),
        // The draft names no capability for these; its reserved
        // canChangeOtherPolicyAttribute says what they are (C22).
        STATUS_NOTIFICATION_POLICY
        | JOIN_LINK_POLICY
        | LINK_PREVIEW_POLICY
        | ASSET_POLICY
        | LOGGING_POLICY
        | CHAT_HISTORY_POLICY
        | BOT_POLICY
        | MESSAGE_EXPIRATION_POLICY => Some(cap::CAN_CHANGE_OTHER_POLICY_ATTRIBUTE),
        _ => None,
    }
}

/// Whether `bytes` is a valid replacement of component `id` (one of
/// [`capability_for`]'s): it decodes exactly and passes the component's
/// own consistency rules. A malformed policy would bind every client.
pub fn check_replacement(id: ComponentId, bytes: &[u8]) -> Result<(), String> {
    fn valid<T: tls_codec::Deserialize>(
        bytes: &[u8],
        validate: impl Fn(&T) -> Result<(), RoomPolicyError>,
    ) -> Result<(), String> {
        let value = decode_component::<T>(bytes).map_err(|e| e.to_string())?;
        validate(&value).map_err(|e| e.to_string())
    }
    match id {
        ROLES_LIST => valid(bytes, RoleData::validate),
        PREAUTH_LIST => valid::<PreAuthData>(bytes, |_| Ok(())),
        BASE_ROOM_POLICY => valid(bytes, BaseRoomPolicy::validate),
        MLS_OPERATIONAL_POLICY => valid(bytes, OperationalParameters::validate),
        STATUS_NOTIFICATION_POLICY => valid::<StatusNotificationPolicy>(bytes, |_| Ok(())),
        JOIN_LINK_POLICY => valid::<JoinLinkPolicy>(bytes, |_| Ok(())),
        LINK_PREVIEW_POLICY => valid(bytes, LinkPreviewPolicy::validate),
        ASSET_POLICY => valid(bytes, AssetPolicy::validate),
        LOGGING_POLICY => valid(bytes, LoggingPolicy::validate),
        CHAT_HISTORY_POLICY => valid(bytes, HistoryPolicy::validate),
        BOT_POLICY => valid(bytes, BotPolicy::validate),
        MESSAGE_EXPIRATION_POLICY => valid(bytes, MessageExpiration::validate),
        _ => Ok(()),
    }
}

/// The name of a capability as the draft writes it, for refusals and the
/// CLI.
pub fn capability_name(capability: CapabilityType) -> &'static str {
    match capability {
        cap::CAN_ADD_PARTICIPANT => "canAddParticipant",
        cap::CAN_REMOVE_PARTICIPANT => "canRemoveParticipant",
        cap::CAN_ADD_OWN_CLIENT => "canAddOwnClient",
        cap::CAN_REMOVE_OWN_CLIENT => "canRemoveOwnClient",
        cap::CAN_OPEN_JOIN => "canOpenJoin",
        cap::CAN_JOIN_IF_PREAUTHORIZED => "canJoinIfPreauthorized",
        cap::CAN_REMOVE_SELF => "canRemoveSelf",
        cap::CAN_CREATE_JOIN_CODE => "canCreateJoinCode",
        cap::CAN_DELETE_JOIN_CODE => "canDeleteJoinCode",
        cap::CAN_USE_JOIN_CODE => "canUseJoinCode",
        cap::CAN_BAN => "canBan",
        cap::CAN_UN_BAN => "canUnban",
        cap::CAN_KICK => "canKick",
        cap::CAN_KNOCK => "canKnock",
        cap::CAN_ACCEPT_KNOCK => "canAcceptKnock",
        cap::CAN_CHANGE_USER_ROLE => "canChangeUserRole",
        cap::CAN_CHANGE_OWN_ROLE => "canChangeOwnRole",
        cap::CAN_CREATE_SUBGROUP => "canCreateSubgroup",
        cap::CAN_SEND_MESSAGE => "canSendMessage",
        cap::CAN_RECEIVE_MESSAGE => "canReceiveMessage",
        cap::CAN_COPY_MESSAGE => "canCopyMessage",
        cap::CAN_REPORT_ABUSE => "canReportAbuse",
        cap::CAN_REPLY_TO_MESSAGE => "canReplyToMessage",
        cap::CAN_REACT_TO_MESSAGE => "canReactToMessage",
        cap::CAN_EDIT_REACTION => "canEditReaction",
        cap::CAN_DELETE_OWN_REACTION => "canDeleteOwnReaction",
        cap::CAN_DELETE_OTHER_REACTION => "canDeleteOtherReaction",
        cap::CAN_EDIT_OWN_MESSAGE => "canEditOwnMessage",
        cap::CAN_DELETE_OWN_MESSAGE => "canDeleteOwnMessage",
        cap::CAN_DELETE_OTHER_MESSAGE => "canDeleteOtherMessage",
        cap::CAN_START_TOPIC => "canStartTopic",
        cap::CAN_REPLY_IN_TOPIC => "canReplyInTopic",
        cap::CAN_EDIT_OWN_TOPIC => "canEditOwnTopic",
        cap::CAN_EDIT_OTHER_TOPIC => "canEditOtherTopic",
        cap::CAN_SEND_DIRECT_MESSAGE => "canSendDirectMessage",
        cap::CAN_TARGET_MESSAGE => "canTargetMessage",
        cap::CAN_UPLOAD_IMAGE => "canUploadImage",
        cap::CAN_UPLOAD_AUDIO => "canUploadAudio",
        cap::CAN_UPLOAD_VIDEO => "canUploadVideo",
        cap::CAN_UPLOAD_ATTACHMENT => "canUploadAttachment",
        cap::CAN_DOWNLOAD_IMAGE => "canDownloadImage",
        cap::CAN_DOWNLOAD_AUDIO => "canDownloadAudio",
        cap::CAN_DOWNLOAD_VIDEO => "canDownloadVideo",
        cap::CAN_DOWNLOAD_ATTACHMENT => "canDownloadAttachment",
        cap::CAN_SEND_LINK => "canSendLink",
        cap::CAN_SEND_LINK_PREVIEW => "canSendLinkPreview",
        cap::CAN_FOLLOW_LINK => "canFollowLink",
        cap::CAN_COPY_LINK => "canCopyLink",
        cap::CAN_CHANGE_ROOM_NAME => "canChangeRoomName",
        cap::CAN_CHANGE_ROOM_DESCRIPTION => "canChangeRoomDescription",
        cap::CAN_CHANGE_ROOM_AVATAR => "canChangeRoomAvatar",
        cap::CAN_CHANGE_ROOM_SUBJECT => "canChangeRoomSubject",
        cap::CAN_CHANGE_ROOM_MOOD => "canChangeRoomMood",
        cap::CAN_CHANGE_OWN_NAME => "canChangeOwnName",
        cap::CAN_CHANGE_OWN_PRESENCE => "canChangeOwnPresence",
        cap::CAN_CHANGE_OWN_MOOD => "canChangeOwnMood",
        cap::CAN_CHANGE_OWN_AVATAR => "canChangeOwnAvatar",
        cap::CAN_START_CALL => "canStartCall",
        cap::CAN_JOIN_CALL => "canJoinCall",
        cap::CAN_SEND_AUDIO => "canSendAudio",
        cap::CAN_RECEIVE_AUDIO => "canReceiveAudio",
        cap::CAN_SEND_VIDEO => "canSendVideo",
        cap::CAN_RECEIVE_VIDEO => "canReceiveVideo",
        cap::CAN_SHARE_SCREEN => "canShareScreen",
        cap::CAN_VIEW_SHARED_SCREEN => "canViewSharedScreen",
        cap::CAN_CREATE_ROOM => "canCreateRoom",
        cap::CAN_DESTROY_ROOM => "canDestroyRoom",
        cap::CAN_CHANGE_ROOM_MEMBERSHIP_STYLE => "canChangeRoomMembershipStyle",
        cap::CAN_CHANGE_ROLE_DEFINITIONS => "canChangeRoleDefinitions",
        cap::CAN_CHANGE_PREAUTHORIZED_USER_LIST => "canChangePreauthorizedUserList",
        cap::CAN_CHANGE_OTHER_POLICY_ATTRIBUTE => "canChangeOtherPolicyAttribute",
        cap::CAN_CHANGE_MLS_OPERATIONAL_POLICIES => "canChangeMlsOperationalPolicies",
        cap::CAN_SEND_MLS_REINIT_PROPOSAL => "canSendMLSReinitProposal",
        cap::CAN_SEND_MLS_UPDATE_PROPOSAL => "canSendMLSUpdateProposal",
        cap::CAN_SEND_MLS_PSK_PROPOSAL => "canSendMLSPSKProposal",
        cap::CAN_SEND_MLS_EXTERNAL_PROPOSAL => "canSendMLSExternalProposal",
        cap::CAN_SEND_MLS_EXTERNAL_COMMIT => "canSendMLSExternalCommit",
        _ => "an unregistered capability",
    }
}

/// The capabilities a room metadata update needs: one per field it
/// changes (room-policy §Adjust metadata). `old` is the current metadata
/// (`None`: the room has none; every field counts as empty), `new` the
/// update (`None`: the component is removed). The room URI never changes.
pub fn metadata_capabilities(
    old: Option<&RoomMetaData>,
    new: Option<&RoomMetaData>,
) -> Result<Vec<CapabilityType>, PolicyViolation> {
    let empty = RoomMetaData {
        room_uri: old.map(|m| m.room_uri.clone()).unwrap_or_default(),
        ..RoomMetaData::default()
    };
    let old = old.unwrap_or(&empty);
    let new = new.unwrap_or(&empty);
    if !old.room_uri.is_empty() && new.room_uri != old.room_uri {
        return Err(PolicyViolation::RoomUriChanged);
    }
    let mut needed = Vec::new();
    if new.room_name != old.room_name {
        needed.push(cap::CAN_CHANGE_ROOM_NAME);
    }
    if new.room_descriptions != old.room_descriptions {
        needed.push(cap::CAN_CHANGE_ROOM_DESCRIPTION);
    }
    if new.room_avatar != old.room_avatar {
        needed.push(cap::CAN_CHANGE_ROOM_AVATAR);
    }
    if new.room_subject != old.room_subject {
        needed.push(cap::CAN_CHANGE_ROOM_SUBJECT);
    }
    if new.room_mood != old.room_mood {
        needed.push(cap::CAN_CHANGE_ROOM_MOOD);
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use mimi_protocol::components::room_metadata::{UTF8String, Uri};

    use super::*;

    fn meta(name: &str, subject: &str) -> RoomMetaData {
        RoomMetaData {
            room_uri: Uri::new("mimi://a.example/r/room"),
            room_name: UTF8String::new(name).unwrap(),
            room_descriptions: Vec::new(),
            room_avatar: Uri::default(),
            room_subject: UTF8String::new(subject).unwrap(),
            room_mood: UTF8String::default(),
        }
    }

    #[test]
    fn each_changed_field_needs_its_own_capability() {
        let old = meta("Lunch", "Fridays");
        assert_eq!(
            metadata_capabilities(Some(&old), Some(&meta("Dinner", "Fridays"))),
            Ok(vec![cap::CAN_CHANGE_ROOM_NAME])
        );
        assert_eq!(
            metadata_capabilities(Some(&old), Some(&meta("Dinner", "Mondays"))),
            Ok(vec![
                cap::CAN_CHANGE_ROOM_NAME,
                cap::CAN_CHANGE_ROOM_SUBJECT
            ])
        );
        assert_eq!(metadata_capabilities(Some(&old), Some(&old)), Ok(vec![]));
        assert_eq!(
            metadata_capabilities(None, Some(&meta("", "topic"))),
            Ok(vec![cap::CAN_CHANGE_ROOM_SUBJECT])
        );
        assert_eq!(
            metadata_capabilities(Some(&old), None),
            Ok(vec![
                cap::CAN_CHANGE_ROOM_NAME,
                cap::CAN_CHANGE_ROOM_SUBJECT
            ])
        );
        let mut moved = old.clone();
        moved.room_uri = Uri::new("mimi://a.example/r/other");
        assert_eq!(
            metadata_capabilities(Some(&old), Some(&moved)),
            Err(PolicyViolation::RoomUriChanged)
        );
    }

    #[test]
    fn policy_replacements_must_decode_and_be_consistent() {
        use tls_codec::Serialize as _;
        let base = BaseRoomPolicy::default().tls_serialize_detached().unwrap();
        check_replacement(BASE_ROOM_POLICY, &base).unwrap();
        let mut trailing = base.clone();
        trailing.push(0);
        assert!(check_replacement(BASE_ROOM_POLICY, &trailing).is_err());
        // parent_dependant without a parent room breaks the component's rule.
        let orphan = BaseRoomPolicy {
            parent_dependant: true,
            ..BaseRoomPolicy::default()
        }
        .tls_serialize_detached()
        .unwrap();
        assert!(check_replacement(BASE_ROOM_POLICY, &orphan).is_err());
        assert!(check_replacement(LINK_PREVIEW_POLICY, &[9]).is_err());
        for id in [PREAUTH_LIST, BOT_POLICY, MLS_OPERATIONAL_POLICY] {
            assert!(capability_for(id).is_some(), "{id:#06x} has a capability");
        }
    }

    #[test]
    fn every_registered_capability_has_its_draft_name() {
        assert_eq!(capability_name(cap::CAN_UN_BAN), "canUnban");
        assert_eq!(
            capability_name(cap::CAN_CHANGE_ROOM_NAME),
            "canChangeRoomName"
        );
        assert_eq!(capability_name(0x7777), "an unregistered capability");
    }
}
