//! `mimi://` identifiers (draft-mahy-mimi-identity).
