//! Throwaway PostgreSQL databases, so tests can run in parallel on one
//! server, and the server's URL from `MIMI_TEST_POSTGRES_URL`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

/// The variable naming the PostgreSQL server for tests (CI sets it).
pub const POSTGRES_URL_VAR: &str = "MIMI_TEST_POSTGRES_URL";

/// Why a test database could not be made or dropped.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("PostgreSQL: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0:?} is not a database made by fresh_postgres_database")]
    NotATestDatabase(String),
}

type Result<T> = std::result::Result<T, PostgresError>;

/// The PostgreSQL server for tests, from `MIMI_TEST_POSTGRES_URL`.
///
/// Panics when the variable is unset: a test that needs the database fails
/// loudly rather than passing without having run.
pub fn postgres_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{POSTGRES_URL_VAR} is not set: this test needs PostgreSQL, e.g. \
             {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test (see README.md)"
        ),
    }
}

/// A fresh database on the server at [`postgres_url`] for one test;
/// panics with the reason when it cannot be made.
pub async fn fresh_test_database(label: &str) -> String {
    let admin = postgres_url();
    fresh_postgres_database(&admin, label)
        .await
        .unwrap_or_else(|e| panic!("creating a database on {admin}: {e}"))
}

/// `url` with its database name replaced by `database`.
pub fn postgres_url_with_database(url: &str, database: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let prefix = match main[authority_start..].find('/') {
        Some(i) => &main[..authority_start + i],
        None => main,
    };
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

/// Creates a uniquely named, empty database on the server at `admin_url`
/// (any database there the user may connect to) and returns its URL. The
/// name starts with `mimi_test_` and contains `label` reduced to `[a-z0-9_]`.
pub async fn fresh_postgres_database(admin_url: &str, label: &str) -> Result<String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let label: String = label
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(24)
        .collect();
    let name = format!(
        "mimi_test_{label}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnection::connect(admin_url).await?;
    // The name is made of ASCII letters, digits and underscores only.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(postgres_url_with_database(admin_url, &name))
}

/// Drops a database made by [`fresh_postgres_database`], closing its
/// remaining connections (PostgreSQL 13+).
pub async fn drop_postgres_database(admin_url: &str, database_url: &str) -> Result<()> {
    let name = database_url
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or_default();
    if !name.starts_with("mimi_test_")
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(PostgresError::NotATestDatabase(name.to_owned()));
    }
    let mut conn = PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::postgres_url_with_database as with;

    #[test]
    fn database_url_rewrite() {
        assert_eq!(
            with("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with("postgres://h:5432", "x"), "postgres://h:5432/x");
    }
}
