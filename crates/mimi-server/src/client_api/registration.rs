//! Device registration (docs/client-api.md).

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use mimi_protocol::{MimiUri, MimiUriKind};
use openmls_traits::random::OpenMlsRand;
use serde::{Deserialize, Serialize};

use super::auth::{Admin, token_hash};
use crate::error::ApiError;
use crate::state::{AppState, now_ms};

pub fn routes() -> Router<AppState> {
    Router::new().route("/client/v1/devices", post(register_device))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterDevice {
    pub user: String,
    pub device: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Registered {
    pub token: String,
}

/// Registration is open in development (`open_registration`), otherwise
/// it needs the operator's admin token.
struct MayRegister;

impl FromRequestParts<AppState> for MayRegister {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.config.client_api.open_registration {
            return Ok(MayRegister);
        }
        Admin::from_request_parts(parts, state)
            .await
            .map(|_| MayRegister)
    }
}

async fn register_device(
    _: MayRegister,
    State(state): State<AppState>,
    Json(req): Json<RegisterDevice>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let parse = |s: &str, what| {
        MimiUri::parse(s).map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
    };
    let user = parse(&req.user, "user")?;
    let device = parse(&req.device, "device")?;
    if user.kind() != MimiUriKind::User || device.kind() != MimiUriKind::Device {
        return Err(ApiError::bad_request(
            "expected a user URI (…/u/…) and a device URI (…/d/…)",
        ));
    }
    if user.domain() != state.domain() || device.domain() != state.domain() {
        return Err(ApiError::bad_request(format!(
            "user and device must be in {}",
            state.domain()
        )));
    }
    // The hub derives a device's user from its URI (mimi-room identity).
    if mimi_room::identity::user_of_device(&device).as_ref() != Some(&user) {
        return Err(ApiError::bad_request(
            "the device URI must be mimi://<domain>/d/<user>/<device> of that user",
        ));
    }
    let token = {
        use openmls_traits::OpenMlsProvider as _;
        let rand = openmls_rust_crypto::OpenMlsRustCrypto::default();
        let bytes: [u8; 32] = rand.rand().random_array().map_err(ApiError::internal)?;
        hex::encode(bytes)
    };
    match state
        .store
        .register_device(user.as_str(), device.as_str(), token_hash(&token), now_ms())
        .await
    {
        Ok(()) => Ok((StatusCode::CREATED, Json(Registered { token }))),
        Err(mimi_store::StoreError::ClientOwnedByOtherUser { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "the device belongs to another user",
        )),
        Err(e) => Err(e.into()),
    }
}
