//! Bearer-token authentication of a provider's own devices
//! (docs/client-api.md).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use mimi_protocol::MimiUri;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// The device a client API request acts as.
#[derive(Debug, Clone)]
pub struct AuthenticatedDevice {
    pub user: MimiUri,
    pub device: MimiUri,
}

/// SHA-256 of a bearer token: only the hash is stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for AuthenticatedDevice {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token =
            bearer_token(parts).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let registered = state
            .store
            .device_for_token(token_hash(token))
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
        let parse = |s: &str| MimiUri::parse(s).map_err(ApiError::internal);
        Ok(Self {
            user: parse(&registered.user_uri)?,
            device: parse(&registered.device_uri)?,
        })
    }
}

/// Operator requests: `Authorization: Bearer <client_api.admin_token>`.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let expected = state
            .config
            .client_api
            .admin_token
            .as_deref()
            .ok_or_else(|| {
                ApiError::forbidden(
                    "this provider has no admin token configured (client_api.admin_token)",
                )
            })?;
        // Missing and wrong are told apart: the caller knows whether it
        // sent one, so this reveals nothing.
        match bearer_token(parts) {
            // Compare hashes so the comparison time does not depend on
            // how much of the token matched.
            Some(token) if token_hash(token) == token_hash(expected) => Ok(Admin),
            Some(_) => Err(ApiError::unauthorized("wrong admin token")),
            None => Err(ApiError::unauthorized(
                "admin token required (Authorization: Bearer <client_api.admin_token>)",
            )),
        }
    }
}
