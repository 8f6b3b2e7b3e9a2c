//! Client API: rooms (docs/client-api.md).
//!
//! `POST /client/v1/rooms` creates a room hosted here. The update, submit
//! and group-info requests are handled by [`crate::hub`] when this
//! provider is the room's hub (the provider named by the room URI's
//! domain), and otherwise forwarded to the hub's federation endpoint; the
//! hub's status and body are relayed unchanged.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mimi_client_api::CreateRoom;
use mimi_client_api::paths::{self, RoomAction};
use mimi_protocol::MimiUri;
use mimi_protocol::endpoints::{FederationEndpoint, GroupInfo, ReportAbuse, SubmitMessage, Update};
use mimi_protocol::msgs::{
    AbuseReport, GroupInfoRequest, SubmitMessageRequest, UpdateRequest, UpdateResult,
    UpdateRoomResponse,
};

use crate::client_api::auth::AuthenticatedDevice;
use crate::error::{ApiError, decode_body, encode_body};
use crate::federation::hub::mimi_response;
use crate::hub::{self, parse_room_id};
use crate::state::AppState;
use mimi_room::engine::{Requester, is_external_commit, requesting_device, sending_user};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::ROOMS, post(create))
        .route(RoomAction::Update.route(), post(update))
        .route(RoomAction::Submit.route(), post(submit))
        .route(RoomAction::GroupInfo.route(), post(group_info))
        .route(RoomAction::Report.route(), post(report))
}

fn base64_field(name: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    B64.decode(value)
        .map_err(|e| ApiError::bad_request(format!("{name}: invalid base64: {e}")))
}

/// Creates a room hosted by this provider; the creating device must be a
/// member of the group (-06 §3.2).
async fn create(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    Json(body): Json<CreateRoom>,
) -> Result<Response, ApiError> {
    let group_info = base64_field("group_info", &body.group_info)?;
    let ratchet_tree = base64_field("ratchet_tree", &body.ratchet_tree)?;
    hub::create_room(&state, &device, &body.room_id, &group_info, &ratchet_tree).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// Whether this provider is the room's hub.
fn is_local(state: &AppState, room_id: &MimiUri) -> bool {
    room_id.domain().eq_ignore_ascii_case(state.domain())
}

/// A device's room request, answered here by `at_hub` when this provider
/// is the room's hub, else relayed as `body` to the hub's `endpoint` with
/// the hub's answer (refusals included) passed back unchanged.
async fn here_or_at_hub<E: FederationEndpoint<Target = MimiUri>>(
    state: &AppState,
    room_id: &MimiUri,
    body: Bytes,
    at_hub: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    if is_local(state, room_id) {
        at_hub.await
    } else {
        Ok(forward::<E>(state, room_id, body).await?.into_response())
    }
}

/// Forwards a request to the hub's federation endpoint and relays its
/// answer (status and body), without re-encoding either.
async fn forward<E: FederationEndpoint<Target = MimiUri>>(
    state: &AppState,
    room_id: &MimiUri,
    body: Bytes,
) -> Result<Relayed, ApiError> {
    let hub_domain = room_id.domain();
    let gateway = |e: crate::outbound::OutboundError| {
        tracing::warn!(hub = hub_domain, %e, "forwarding to the hub failed");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the hub {hub_domain} is unreachable"),
        )
    };
    let response = state
        .peers
        .send_raw::<E>(hub_domain, room_id, body.to_vec())
        .await
        .map_err(gateway)?;
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("reading the answer of {hub_domain}: {e}"),
        )
    })?;
    Ok(Relayed {
        status,
        content_type,
        body: bytes.to_vec(),
    })
}

/// The hub's answer to a forwarded request.
struct Relayed {
    status: StatusCode,
    content_type: Option<String>,
    body: Vec<u8>,
}

impl IntoResponse for Relayed {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        if let Some(value) = self
            .content_type
            .and_then(|v| axum::http::HeaderValue::from_str(&v).ok())
        {
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, value);
        }
        response
    }
}

/// `POST /client/v1/rooms/{roomId}/update`: TLS `UpdateRequest` (-06 §5.3).
/// A device that joined by external commit is subscribed to the room once
/// the hub accepted it.
async fn update(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room_id = parse_room_id(&room_id)?;
    let request: UpdateRequest = decode_body(&body)?;
    let external_join = is_external_commit(&request);
    let (status, response) = if is_local(&state, &room_id) {
        let response = hub::update(&state, &room_id, &Requester::from(&device), request).await?;
        (StatusCode::OK, response)
    } else {
        let relayed = forward::<Update>(&state, &room_id, body).await?;
        if !relayed.status.is_success() {
            return Ok(relayed.into_response());
        }
        let response: UpdateRoomResponse = decode_body(&relayed.body).map_err(|e| {
            ApiError::new(StatusCode::BAD_GATEWAY, format!("hub answer: {}", e.reason))
        })?;
        (relayed.status, response)
    };
    if external_join && matches!(response.result, UpdateResult::Success { .. }) {
        state
            .store
            .subscribe(room_id.as_str(), device.device.as_str())
            .await?;
    }
    Ok(mimi_response(status, encode_body(&response)?))
}

/// `POST /client/v1/rooms/{roomId}/submit`: TLS `SubmitMessageRequest`
/// (-06 §5.4); `sendingUri` must be the device's user.
async fn submit(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room_id = parse_room_id(&room_id)?;
    let request: SubmitMessageRequest = decode_body(&body)?;
    let sender = sending_user(&request).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if sender.as_str() != device.user.as_str() {
        return Err(ApiError::forbidden(format!(
            "sendingUri must be {}",
            device.user
        )));
    }
    let at_hub = async {
        let response =
            hub::submit_message(&state, &room_id, &Requester::from(&device), request).await?;
        Ok(mimi_response(StatusCode::OK, encode_body(&response)?))
    };
    here_or_at_hub::<SubmitMessage>(&state, &room_id, body, at_hub).await
}

/// `POST /client/v1/rooms/{roomId}/group-info`: TLS `GroupInfoRequest`
/// (-06 §5.6); the requesting credential must be the device's.
async fn group_info(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room_id = parse_room_id(&room_id)?;
    let request: GroupInfoRequest = decode_body(&body)?;
    let own =
        requesting_device(&request).is_some_and(|id| id.device.as_str() == device.device.as_str());
    if !own {
        return Err(ApiError::forbidden(format!(
            "requestingCredential must be {}",
            device.device
        )));
    }
    let at_hub = async {
        let (status, response) =
            hub::group_info(&state, &room_id, &Requester::from(&device), request).await?;
        Ok(mimi_response(status, encode_body(&response)?))
    };
    here_or_at_hub::<GroupInfo>(&state, &room_id, body, at_hub).await
}

/// `POST /client/v1/rooms/{roomId}/report`: TLS `AbuseReport` (-06 §5.9)
/// for the room's hub; `reportingUser` must be the device's user. The hub
/// (this provider, or the room's via `/reportAbuse`) verifies the franks
/// and answers 204.
async fn report(
    State(state): State<AppState>,
    device: AuthenticatedDevice,
    Path(room_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let room_id = parse_room_id(&room_id)?;
    let report: AbuseReport = decode_body(&body)?;
    if report.reporting_user.as_str() != Some(device.user.as_str()) {
        return Err(ApiError::forbidden(format!(
            "reportingUser must be {}",
            device.user
        )));
    }
    let at_hub = async {
        let domain = state.domain();
        crate::federation::report::receive_report(&state, &room_id, domain, &body).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    here_or_at_hub::<ReportAbuse>(&state, &room_id, body.clone(), at_hub).await
}
