//! `reportAbuse` (-06 §5.9): the hub verifies the frank of every reported
//! message before the report is stored for its operator.

use mimi_content::MimiContent;
use mimi_protocol::components::room_policy::capabilities::CAN_REPORT_ABUSE;
use mimi_protocol::msgs::{AbuseReport, AbusiveMessage, ServerFrankingContext};
use mimi_protocol::{IdentifierUri, MimiUri, MimiUriKind};

use super::HubEngine;
use crate::keys::FrankError;
use crate::rejection::{AbusiveMessageError, ReportRejection};
use crate::stored::StoredRoom;

/// A report the hub accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReport {
    /// Empty for an anonymous report (divergence M25).
    pub reporting_user: String,
    pub alleged_abuser: MimiUri,
    /// Whether the report carried messages and every frank verified. A
    /// report without messages has nothing to verify: it is accepted only
    /// from a provider with a participant in the room, and kept as
    /// unverified.
    pub franks_verified: bool,
}

impl HubEngine {
    /// Verifies a report about the room stored as `state`, received from
    /// the provider `source` (a peer, or this provider for its own users).
    ///
    /// -06 §5.9: "the hub finds the salt, sender URI, and room URI inside
    /// the `message_content` and the `accepted_timestamp` to recalculate
    /// the `franking_tag` and `context`", then regenerates `server_frank`
    /// and verifies the integrity signature. Each message must also belong
    /// to this room and to the alleged abuser, so a genuine frank cannot
    /// be replayed against another room or user.
    pub fn verify_report(
        &self,
        state: &[u8],
        room_id: &MimiUri,
        source: &str,
        report: &AbuseReport,
    ) -> Result<VerifiedReport, ReportRejection> {
        let reporting_user = text(&report.reporting_user, "reportingUser")?;
        // An empty reportingUser is an anonymous report (divergence M25).
        if !reporting_user.is_empty() {
            let user = user_uri(&reporting_user, "reportingUser")?;
            if !user.domain().eq_ignore_ascii_case(source) {
                return Err(ReportRejection::ReporterNotFromSource {
                    user: user.to_string(),
                    source_provider: source.to_owned(),
                });
            }
            // A participant's report is authorized by its role; one who
            // left may still report what it saw (docs/divergences.md C22).
            let policy = StoredRoom::decode(state)
                .ok()
                .and_then(|room| room.hub.policy_state().ok());
            if let Some(policy) = policy
                && policy.role_of(user.as_str()) != 0
                && !policy.has(user.as_str(), CAN_REPORT_ABUSE)
            {
                return Err(ReportRejection::MayNotReport {
                    user: user.to_string(),
                });
            }
        }
        let alleged_abuser = user_uri(
            &text(&report.alleged_abuser_uri, "allegedAbuserUri")?,
            "allegedAbuserUri",
        )?;
        if report.messages.is_empty() {
            if !self.has_participant_of(state, source) {
                return Err(ReportRejection::UnverifiableFromStranger {
                    source_provider: source.to_owned(),
                });
            }
            return Ok(VerifiedReport {
                reporting_user,
                alleged_abuser,
                franks_verified: false,
            });
        }
        for (index, message) in report.messages.iter().enumerate() {
            self.verify_abusive_message(room_id, &alleged_abuser, message)
                .map_err(|reason| ReportRejection::Message { index, reason })?;
        }
        Ok(VerifiedReport {
            reporting_user,
            alleged_abuser,
            franks_verified: true,
        })
    }

    /// Whether a user of `provider` is in the room's participant list.
    fn has_participant_of(&self, state: &[u8], provider: &str) -> bool {
        let Ok(room) = StoredRoom::decode(state) else {
            return false;
        };
        let Ok(policy) = room.hub.policy_state() else {
            return false;
        };
        policy.participants.participants.iter().any(|p| {
            std::str::from_utf8(p.user.as_slice())
                .ok()
                .and_then(|u| MimiUri::parse(u).ok())
                .is_some_and(|u| u.domain().eq_ignore_ascii_case(provider))
        })
    }

    fn verify_abusive_message(
        &self,
        room_id: &MimiUri,
        alleged_abuser: &MimiUri,
        message: &AbusiveMessage,
    ) -> Result<(), AbusiveMessageError> {
        let bytes = message.message_content.as_slice();
        let content = MimiContent::from_cbor(bytes).map_err(|e| AbusiveMessageError::Content {
            detail: e.to_string(),
        })?;
        let sender = content
            .extensions
            .sender_uri()
            .ok_or(AbusiveMessageError::NoSender)?;
        let room = content
            .extensions
            .room_uri()
            .ok_or(AbusiveMessageError::NoRoom)?;
        if room != room_id.as_str() {
            return Err(AbusiveMessageError::OtherRoom {
                room: room.to_owned(),
                expected: room_id.to_string(),
            });
        }
        if sender != alleged_abuser.as_str() {
            return Err(AbusiveMessageError::OtherSender {
                sender: sender.to_owned(),
                alleged: alleged_abuser.to_string(),
            });
        }
        let franking_tag = mimi_content::franking::franking_tag(&content.salt, bytes);
        let context = ServerFrankingContext {
            sender_uri: IdentifierUri::new(sender),
            room_uri: IdentifierUri::new(room),
            accepted_timestamp: message.accepted_timestamp,
        };
        // The frank names the suite it was made for; the hub's franking
        // key of that suite's signature scheme must have made it.
        let key = message
            .frank
            .franking_signature_ciphersuite
            .to_openmls()
            .and_then(|cs| self.franking_key(cs))
            .ok_or(AbusiveMessageError::Frank(FrankError::Ciphersuite))?;
        key.verify(self.crypto(), &franking_tag, &context, &message.frank)
            .map_err(AbusiveMessageError::Frank)
    }
}

fn text(uri: &IdentifierUri, field: &'static str) -> Result<String, ReportRejection> {
    uri.as_str()
        .map(str::to_owned)
        .ok_or(ReportRejection::NotUtf8 { field })
}

fn user_uri(text: &str, field: &'static str) -> Result<MimiUri, ReportRejection> {
    MimiUri::parse(text)
        .ok()
        .filter(|u| u.kind() == MimiUriKind::User)
        .ok_or(ReportRejection::NotAUser { field })
}
