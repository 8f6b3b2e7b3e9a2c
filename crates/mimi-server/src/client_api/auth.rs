//! Client API module `auth` (docs/client-api.md).
