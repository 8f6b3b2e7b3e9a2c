//! Why a federation could not be started or reached.

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("dev CA: {0}")]
    Tls(#[from] mimi_server::tls::TlsError),
    #[error("{0}")]
    Postgres(#[from] crate::postgres::PostgresError),
    #[error("starting {domain}: {source}")]
    Start {
        domain: String,
        source: mimi_server::StartError,
    },
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("client API connection: {0}")]
    Client(#[from] mimi_client::http::ClientError),
}
