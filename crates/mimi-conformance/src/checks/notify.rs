//! Fanout (-06 §5.5), with the tester as the hub of a room of its own
//! domain.
//!
//! What -06 makes observable: a duplicate request (same hub, same body)
//! MUST be answered 201. That the follower processes it only once is a
//! SHOULD whose effect reaches only the follower's clients, so it is not
//! checked here.

use mimi_protocol::endpoints::Notify;
use mimi_protocol::msgs::{FanoutBody, FanoutMessage};
use mimi_protocol::{MimiUri, encode};

use super::Check;
use crate::Context;
use crate::report::CheckResult;
use crate::wire::Request;

const DUPLICATE: Check = Check::must(
    "notify.duplicate",
    "§5.5",
    "a /notify request from the room's hub is answered 201, and so is the same body again",
);
const NOT_HUB: Check = Check::should(
    "notify.not-hub",
    "§5.5",
    "/notify for a room whose hub is another provider is refused",
);

pub(crate) async fn run(ctx: &Context) -> Vec<CheckResult> {
    let message = FanoutMessage {
        timestamp: 1_700_000_000_000,
        message: ctx.samples.application.clone(),
        body: FanoutBody::Application { frank: None },
    };
    let body = match encode(&message) {
        Ok(b) => b,
        Err(e) => return vec![DUPLICATE.fail(format!("encoding: {e}"))],
    };
    let mut out = Vec::new();
    let own_room = format!("mimi://{}/r/conformance-{}", ctx.tester_domain, ctx.run_id);
    out.push(match url(ctx, &own_room) {
        Ok(url) => {
            let first = ctx
                .wire
                .send(&Request::post(url.clone(), body.clone()))
                .await;
            let second = ctx.wire.send(&Request::post(url, body.clone())).await;
            DUPLICATE.verdict(
                first.is(201) && second.is(201),
                format!(
                    "application FanoutMessage for {own_room}: first → {}, same body again → {}",
                    first.describe(),
                    second.describe()
                ),
            )
        }
        Err(e) => DUPLICATE.fail(e),
    });
    // The target's own domain hosts this room (whether or not it exists),
    // so the tester cannot be its hub.
    let foreign_room = match &ctx.fixtures.room {
        Some(room) => room.as_str().to_owned(),
        None => format!("mimi://{}/r/conformance-{}", ctx.target_domain, ctx.run_id),
    };
    out.push(match url(ctx, &foreign_room) {
        Ok(url) => {
            let answer = ctx.wire.send(&Request::post(url, body)).await;
            NOT_HUB.verdict(
                answer.is_client_error(),
                format!("FanoutMessage for {foreign_room} → {}", answer.describe()),
            )
        }
        Err(e) => NOT_HUB.fail(e),
    });
    out
}

fn url(ctx: &Context, room: &str) -> Result<String, String> {
    let room = MimiUri::parse(room).map_err(|e| format!("{room}: {e}"))?;
    ctx.url::<Notify>(&room)
}
