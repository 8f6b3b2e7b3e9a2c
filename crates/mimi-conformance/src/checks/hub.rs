//! Well-formed requests to the hub's message endpoints: submitMessage
//! (-06 §5.4) and reportAbuse (§5.9), at the fixture room.

use mimi_protocol::endpoints::{ReportAbuse, SubmitMessage};
use mimi_protocol::msgs::{AbuseReport, AbuseType, SubmitMessageRequest, SubmitMessageResponse};
use mimi_protocol::{IdentifierUri, Protocol, decode_exact, encode};
use openmls::prelude::AppDataDictionary;
use tls_codec::VLBytes;

use super::Check;
use crate::Context;
use crate::report::CheckResult;
use crate::wire::Request;

const FOREIGN_GROUP: Check = Check::must(
    "submitMessage.foreign-group",
    "§5.4",
    "a SubmitMessageRequest whose PrivateMessage is of another MLS group gets a SubmitMessageResponse that is not `accepted`",
);
const REPORT: Check = Check::should(
    "reportAbuse.accepted",
    "§5.9",
    "an AbuseReport from a participant's provider is accepted (2xx, no body)",
);

pub(crate) async fn run(ctx: &Context) -> Vec<CheckResult> {
    let Some(room) = &ctx.fixtures.room else {
        return vec![FOREIGN_GROUP.needs("--room"), REPORT.needs("--room")];
    };
    let mut out = Vec::new();

    // The tester's throw-away group is not the room's group, whatever its
    // epoch: a hub that accepted it would fan out what no member can read
    // from a sender it never authenticated (§5.4: the sender must be an
    // active participant).
    let request = SubmitMessageRequest {
        protocol: Protocol::Mls10,
        app_message: ctx.samples.application.clone(),
        sending_uri: IdentifierUri::new(ctx.requester.as_str()),
    };
    out.push(match (ctx.url::<SubmitMessage>(room), encode(&request)) {
        (Ok(url), Ok(body)) => {
            let answer = ctx.wire.send(&Request::post(url, body)).await;
            let sent = format!("message of another group as {}", ctx.requester.as_str());
            if answer.is(200) {
                match decode_exact::<SubmitMessageResponse>(&answer.body) {
                    Ok(resp) => FOREIGN_GROUP.verdict(
                        resp.status_code() != mimi_protocol::msgs::SubmitResponseCode::Accepted,
                        format!("{sent} → HTTP 200 {:?}", resp.status_code()),
                    ),
                    Err(e) => FOREIGN_GROUP.fail(format!(
                        "{sent} → HTTP 200, not a SubmitMessageResponse: {e}"
                    )),
                }
            } else {
                FOREIGN_GROUP.fail(format!("{sent} → {}", answer.describe()))
            }
        }
        (Err(e), _) => FOREIGN_GROUP.fail(e),
        (_, Err(e)) => FOREIGN_GROUP.fail(format!("encoding: {e}")),
    });

    let abuser = ctx
        .fixtures
        .user
        .as_ref()
        .unwrap_or(&ctx.requester)
        .as_str()
        .to_owned();
    let report = AbuseReport {
        reporting_user: IdentifierUri::new(ctx.requester.as_str()),
        alleged_abuser_uri: IdentifierUri::new(&abuser),
        reason_code: AbuseType { code: 0 },
        note: VLBytes::new(b"mimi conformance test report; please ignore".to_vec()),
        messages: Vec::new(),
        abuse_extensions: AppDataDictionary::new(),
    };
    out.push(match (ctx.url::<ReportAbuse>(room), encode(&report)) {
        (Ok(url), Ok(body)) => {
            let answer = ctx.wire.send(&Request::post(url, body)).await;
            REPORT.verdict(
                answer.is_success(),
                format!(
                    "report by {} about {abuser}, no messages → {}",
                    ctx.requester.as_str(),
                    answer.describe()
                ),
            )
        }
        (Err(e), _) => REPORT.fail(e),
        (_, Err(e)) => REPORT.fail(format!("encoding: {e}")),
    });
    out
}
