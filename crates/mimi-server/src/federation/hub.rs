//! Federation endpoint module `hub` (-06 §4).

use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
