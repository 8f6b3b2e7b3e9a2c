//! The directory document (-06 §5.1).
//!
//! A provider publishes at `GET /.well-known/mimi-protocol-directory` a JSON
//! object mapping each endpoint to an `https` URI template (RFC 6570 level 1,
//! simple string expansion). Peers must reach endpoints only through these
//! URLs. Every key is optional ([`Directory`]); the endpoints themselves
//! are listed in [`crate::endpoints`].
//!
//! Readings of the draft's example (see `docs/divergences.md`):
//!
//! * `"update": ".../v1/update{roomId}"` lacks a `/`; our server publishes
//!   `/v1/update/{roomId}`. A peer's template is used verbatim either way.
//! * `"proxyDownload"` lacks its `:`; we read it as an ordinary key.
//! * `requestConsent`/`updateConsent` are templated with `{targetUser}` /
//!   `{requesterUser}` in the directory but addressed as
//!   `/requestConsent/{targetDomain}` / `/updateConsent/{requesterDomain}` in
//!   -06 §5.7. We publish the domain form (the endpoint definition; consent
//!   travels provider to provider, the users are in the `ConsentEntry` body,
//!   and a user id in the path adds nothing but exposure in access logs), and
//!   accept templates with either spelling (or both): the typed helpers
//!   always bind both variables.
//! * Values are the complete identifiers (e.g. `{roomId}` is the full room
//!   URI `mimi://hub.example/r/clubhouse`) percent-encoded by simple
//!   expansion, so `:` and `/` become `%3A` and `%2F`; the informal paths of
//!   the -06 §3 flow (`/notify/a.example/r/clubhouse`) are not used.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

pub use crate::endpoints::{Endpoint, FederationEndpoint, Method, vars};
use crate::uri::pct_encode_unreserved;

/// Well-known path of the directory (-06 §5.1).
pub const WELL_KNOWN_PATH: &str = "/.well-known/mimi-protocol-directory";

/// Why a directory document or template is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("invalid directory JSON: {0}")]
    Json(String),
    #[error("`{0}` is not a string")]
    NotAString(Endpoint),
    #[error("`{endpoint}`: {error}")]
    Template {
        endpoint: Endpoint,
        error: TemplateError,
    },
    #[error("invalid base URL: {0}")]
    BaseUrl(TemplateError),
}

/// Why a URI template is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("URL is not https")]
    NotHttps,
    #[error("URL has no host")]
    MissingHost,
    #[error("invalid host: {0}")]
    InvalidHost(String),
    #[error("invalid port")]
    InvalidPort,
    #[error("userinfo is not allowed")]
    Userinfo,
    #[error("template expressions are only allowed in the path")]
    ExpressionOutsidePath,
    #[error("fragment is not allowed")]
    Fragment,
    #[error("unbalanced `{{` or `}}`")]
    UnbalancedBraces,
    #[error("unsupported template operator or syntax in `{{{0}}}` (only level-1 `{{var}}`)")]
    UnsupportedExpression(String),
    #[error("variable `{0}` is not allowed here")]
    UnknownVariable(String),
    #[error("character {0:?} is not allowed in a URL")]
    InvalidChar(char),
    #[error("malformed percent-encoding")]
    BadPercentEncoding,
    #[error("base URL must not have a query, fragment or template")]
    BaseUrlNotPlain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

/// A validated `https` URI template with level-1 `{var}` expressions in the
/// path (RFC 6570 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    raw: String,
    parts: Vec<Part>,
}

impl UriTemplate {
    /// Parses a template, allowing only the given variable names.
    pub fn parse(s: &str, allowed_vars: &[&str]) -> Result<Self, TemplateError> {
        let (authority, _) = split_https(s)?;
        if authority.contains(['{', '}']) {
            return Err(TemplateError::ExpressionOutsidePath);
        }
        let mut parts = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(Part::Literal(rest.to_owned()));
                    rest = "";
                }
                Some(i) if rest.as_bytes()[i] == b'}' => {
                    return Err(TemplateError::UnbalancedBraces);
                }
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Literal(rest[..i].to_owned()));
                    }
                    let after = &rest[i + 1..];
                    let end = after.find('}').ok_or(TemplateError::UnbalancedBraces)?;
                    let name = &after[..end];
                    if name.contains('{') {
                        return Err(TemplateError::UnbalancedBraces);
                    }
                    if name.is_empty()
                        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        return Err(TemplateError::UnsupportedExpression(name.to_owned()));
                    }
                    if !allowed_vars.contains(&name) {
                        return Err(TemplateError::UnknownVariable(name.to_owned()));
                    }
                    parts.push(Part::Var(name.to_owned()));
                    rest = &after[end + 1..];
                }
            }
        }
        Ok(Self {
            raw: s.to_owned(),
            parts,
        })
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The variables used, in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Simple string expansion: each `{var}` is replaced by its value with
    /// every non-`unreserved` octet percent-encoded; an undefined variable
    /// expands to the empty string (RFC 6570 §3.2.1).
    pub fn expand(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(self.raw.len() + 64);
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Var(name) => {
                    if let Some((_, v)) = values.iter().find(|(n, _)| n == name) {
                        out.push_str(&pct_encode_unreserved(v));
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for UriTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Checks `https://host[:port]...` and the URL characters; returns the
/// authority and the rest (path, possibly with a query).
fn split_https(s: &str) -> Result<(&str, &str), TemplateError> {
    const P: &str = "https://";
    if s.len() < P.len() || !s.is_char_boundary(P.len()) || !s[..P.len()].eq_ignore_ascii_case(P) {
        return Err(TemplateError::NotHttps);
    }
    if let Some(c) = s.chars().find(|&c| !is_template_char(c)) {
        return Err(TemplateError::InvalidChar(c));
    }
    if s.contains('#') {
        return Err(TemplateError::Fragment);
    }
    let b = s.as_bytes();
    for (i, _) in s.match_indices('%') {
        let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(i + 1) && hex(i + 2)) {
            return Err(TemplateError::BadPercentEncoding);
        }
    }
    let rest = &s[P.len()..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(TemplateError::Userinfo);
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err(TemplateError::MissingHost);
    }
    if let Some(p) = port
        && (p.is_empty()
            || p.len() > 5
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u16>().is_err())
    {
        return Err(TemplateError::InvalidPort);
    }
    if !host.contains(['{', '}']) {
        if let Some(inner) = host.strip_prefix('[') {
            let ok = inner
                .strip_suffix(']')
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
            if !ok {
                return Err(TemplateError::InvalidHost(host.to_owned()));
            }
        } else if host.parse::<std::net::Ipv4Addr>().is_err() {
            crate::uri::validate_domain(host)
                .map_err(|e| TemplateError::InvalidHost(format!("{host}: {e}")))?;
        }
    }
    Ok((authority, path))
}

/// RFC 3986 characters plus the template braces.
fn is_template_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.'
                | '_'
                | '~'
                | ':'
                | '/'
                | '?'
                | '#'
                | '['
                | ']'
                | '@'
                | '!'
                | '$'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | '+'
                | ','
                | ';'
                | '='
                | '%'
                | '{'
                | '}'
        )
}

/// A peer's directory has no usable template for an endpoint we need.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotOffered {
    /// The directory has no key for the endpoint.
    #[error("peer does not offer `{0}`")]
    Missing(Endpoint),
    /// The key is there, but its value is not a template we can use (not
    /// a string, another endpoint's variables, …).
    #[error("peer's `{key}` entry is unusable: {1}", key = .0.key())]
    Unusable(Endpoint, DirectoryError),
}

impl NotOffered {
    /// The endpoint that cannot be reached.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Self::Missing(e) | Self::Unusable(e, _) => *e,
        }
    }
}

/// The directory document of -06 §5.1: the endpoints a provider offers.
///
/// No key is mandatory (the draft follows ACME, RFC 8555 §7.1.1, whose
/// directory lists what the server implements): a missing endpoint is
/// [`NotOffered`] when used, not a broken document. Unknown keys are
/// ignored. A key whose value is not a usable template (e.g. a variable
/// name of its own) makes that endpoint alone unusable, reported with the
/// reason when it is needed; the rest of the document still serves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directory {
    templates: BTreeMap<Endpoint, UriTemplate>,
    /// Present keys whose value cannot be used, and why.
    unusable: BTreeMap<Endpoint, DirectoryError>,
}

impl Directory {
    /// Parses and validates a directory document.
    pub fn from_json(json: &str) -> Result<Self, DirectoryError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| DirectoryError::Json(e.to_string()))?;
        Self::from_value(&value)
    }

    fn from_value(value: &serde_json::Value) -> Result<Self, DirectoryError> {
        let object = value
            .as_object()
            .ok_or_else(|| DirectoryError::Json("the directory is not a JSON object".into()))?;
        let mut templates = BTreeMap::new();
        let mut unusable = BTreeMap::new();
        for endpoint in Endpoint::ALL {
            let Some(raw) = object.get(endpoint.key()) else {
                continue;
            };
            let parsed = raw
                .as_str()
                .ok_or(DirectoryError::NotAString(endpoint))
                .and_then(|raw| {
                    UriTemplate::parse(raw, endpoint.allowed_vars())
                        .map_err(|error| DirectoryError::Template { endpoint, error })
                });
            match parsed {
                Ok(template) => {
                    templates.insert(endpoint, template);
                }
                Err(error) => {
                    unusable.insert(endpoint, error);
                }
            }
        }
        Ok(Self {
            templates,
            unusable,
        })
    }

    /// Serialises the document (keys in the draft's order).
    pub fn to_json(&self) -> String {
        // Serialising a map of strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Our server's directory: for each offered endpoint, `base_url`
    /// (`https://host[:port][/prefix]`, no query, no trailing slash needed)
    /// followed by [`Endpoint::canonical_path`].
    pub fn for_base_url(
        base_url: &str,
        offered: impl IntoIterator<Item = Endpoint>,
    ) -> Result<Self, DirectoryError> {
        let (_, path) = split_https(base_url).map_err(DirectoryError::BaseUrl)?;
        if path.contains(['?', '{', '}']) {
            return Err(DirectoryError::BaseUrl(TemplateError::BaseUrlNotPlain));
        }
        let base = base_url.trim_end_matches('/');
        let templates = offered
            .into_iter()
            .map(|e| {
                UriTemplate::parse(&format!("{base}{}", e.canonical_path()), e.allowed_vars())
                    .map(|t| (e, t))
                    .map_err(|error| DirectoryError::Template { endpoint: e, error })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            templates,
            unusable: BTreeMap::new(),
        })
    }

    /// The template of one endpoint, if offered.
    pub fn get(&self, endpoint: Endpoint) -> Option<&UriTemplate> {
        self.templates.get(&endpoint)
    }

    /// The template of one endpoint, or why there is none.
    pub fn template(&self, endpoint: Endpoint) -> Result<&UriTemplate, NotOffered> {
        match (self.get(endpoint), self.unusable.get(&endpoint)) {
            (Some(template), _) => Ok(template),
            (None, Some(error)) => Err(NotOffered::Unusable(endpoint, error.clone())),
            (None, None) => Err(NotOffered::Missing(endpoint)),
        }
    }

    /// Keys that are present but unusable, and why (diagnostics).
    pub fn unusable(&self) -> impl Iterator<Item = (Endpoint, &DirectoryError)> + '_ {
        self.unusable.iter().map(|(e, error)| (*e, error))
    }

    /// The offered endpoints, in the draft's order.
    pub fn endpoints(&self) -> impl Iterator<Item = Endpoint> + '_ {
        self.templates.keys().copied()
    }

    /// The URL of endpoint `E` for `target` (a user, room, domain or
    /// asset URL, per [`FederationEndpoint::bind`]). Every variable the
    /// endpoint allows is bound, so a peer may use either spelling where
    /// the draft has two (divergence T3).
    pub fn url<E: FederationEndpoint>(&self, target: &E::Target) -> Result<String, NotOffered> {
        Ok(self.template(E::ENDPOINT)?.expand(&E::bind(target)))
    }

    /// Variables used anywhere in the document (diagnostics).
    pub fn used_variables(&self) -> HashSet<&str> {
        self.templates
            .values()
            .flat_map(|t| t.variables())
            .collect()
    }
}

impl Serialize for Directory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.templates.len()))?;
        for (endpoint, template) in &self.templates {
            map.serialize_entry(endpoint.key(), template.as_str())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Directory {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Directory::from_value(&value).map_err(serde::de::Error::custom)
    }
}
