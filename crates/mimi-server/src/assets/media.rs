//! Which plaintext media types this provider accepts for upload
//! (`[assets] media_types`).
//!
//! The uploaded bytes are ciphertext (draft-ietf-mimi-content §External
//! content), so the provider cannot see what they are; the client names
//! the plaintext's type in the `mimi-asset-media-type` header, the same
//! type its `ExternalPart` carries. Refusing types here is the operator's
//! policy, and the room's `asset_policy` is enforced by clients
//! (draft-ietf-mimi-room-policy §Asset policies).

/// One allowed pattern: a type and a subtype, either of them `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    kind: String,
    subtype: Option<String>,
}

/// The allowed media types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTypes {
    patterns: Vec<Pattern>,
    listed: String,
}

/// RFC 9110 §5.6.2 `token` characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The essence `type/subtype` of a media type (RFC 9110 §8.3.1),
/// lowercased, without parameters; `None` when it is not one.
pub fn essence(value: &str) -> Option<String> {
    let essence = value.split(';').next()?.trim();
    let (kind, subtype) = essence.split_once('/')?;
    (is_token(kind) && is_token(subtype) && !kind.contains('*') && !subtype.contains('*'))
        .then(|| essence.to_ascii_lowercase())
}

impl MediaTypes {
    /// Parses `type/subtype`, `type/*` and `*/*` entries.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim().to_ascii_lowercase();
            let bad = || format!("{entry:?} is not type/subtype, type/* or */*");
            let (kind, subtype) = entry.split_once('/').ok_or_else(bad)?;
            let pattern = match (kind, subtype) {
                ("*", "*") => Pattern {
                    kind: "*".into(),
                    subtype: None,
                },
                (k, "*") if is_token(k) && !k.contains('*') => Pattern {
                    kind: k.into(),
                    subtype: None,
                },
                (k, s) if essence(&entry).is_some() => Pattern {
                    kind: k.into(),
                    subtype: Some(s.into()),
                },
                _ => return Err(bad()),
            };
            patterns.push(pattern);
        }
        let listed = entries
            .iter()
            .map(|e| e.as_ref().trim())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self { patterns, listed })
    }

    /// Whether the essence `type/subtype` (see [`essence`]) is allowed.
    pub fn allows(&self, essence: &str) -> bool {
        let Some((kind, subtype)) = essence.split_once('/') else {
            return false;
        };
        self.patterns.iter().any(|p| {
            (p.kind == "*" || p.kind == kind) && p.subtype.as_deref().is_none_or(|s| s == subtype)
        })
    }

    /// The configured entries, for refusal messages.
    pub fn listed(&self) -> &str {
        &self.listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_types_and_wildcards() {
        let types = MediaTypes::new(&["image/*", "text/plain", "application/PDF"]).unwrap();
        for ok in [
            "image/png",
            "image/svg+xml",
            "text/plain",
            "application/pdf",
        ] {
            assert!(types.allows(ok), "{ok}");
        }
        for no in ["text/html", "video/mp4", "application/x-pdf", "imagepng"] {
            assert!(!types.allows(no), "{no}");
        }
        let any = MediaTypes::new(&["*/*"]).unwrap();
        assert!(any.allows("model/gltf+json"));
        assert!(MediaTypes::new::<&str>(&[]).unwrap().listed().is_empty());
    }

    #[test]
    fn essence_strips_parameters_and_refuses_garbage() {
        assert_eq!(
            essence("Text/Plain; charset=utf-8").as_deref(),
            Some("text/plain")
        );
        for bad in [
            "",
            "text",
            "text/",
            "/plain",
            "image/*",
            "a b/c",
            "text/plain/x",
        ] {
            assert_eq!(essence(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["image", "*/png", "im age/png", "image/", "/*", "a/b/c"] {
            assert!(MediaTypes::new(&[bad]).is_err(), "{bad}");
        }
    }
}
