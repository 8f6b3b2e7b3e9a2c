//! The directory document (-06 §5.1).
//!
//! A provider publishes at `GET /.well-known/mimi-protocol-directory` a JSON
//! object mapping each endpoint to an `https` URI template (RFC 6570 level 1,
//! simple string expansion). Peers must reach endpoints only through these
//! URLs.
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

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::uri::{MimiUri, pct_encode_unreserved};

/// Well-known path of the directory (-06 §5.1).
pub const WELL_KNOWN_PATH: &str = "/.well-known/mimi-protocol-directory";

/// Template variables (-06 §5.1 and the endpoint sections).
pub mod vars {
    pub const TARGET_USER: &str = "targetUser";
    pub const ROOM_ID: &str = "roomId";
    pub const DOMAIN: &str = "domain";
    pub const TARGET_DOMAIN: &str = "targetDomain";
    pub const REQUESTER_DOMAIN: &str = "requesterDomain";
    pub const REQUESTER_USER: &str = "requesterUser";
    pub const DOWNLOAD_URL: &str = "downloadUrl";
}

/// One endpoint of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    KeyMaterial,
    Update,
    Notify,
    SubmitMessage,
    GroupInfo,
    RequestConsent,
    UpdateConsent,
    IdentifierQuery,
    ReportAbuse,
    ProxyDownload,
}

impl Endpoint {
    pub const ALL: [Endpoint; 10] = [
        Self::KeyMaterial,
        Self::Update,
        Self::Notify,
        Self::SubmitMessage,
        Self::GroupInfo,
        Self::RequestConsent,
        Self::UpdateConsent,
        Self::IdentifierQuery,
        Self::ReportAbuse,
        Self::ProxyDownload,
    ];

    /// The JSON key in the directory document.
    pub fn key(self) -> &'static str {
        match self {
            Self::KeyMaterial => "keyMaterial",
            Self::Update => "update",
            Self::Notify => "notify",
            Self::SubmitMessage => "submitMessage",
            Self::GroupInfo => "groupInfo",
            Self::RequestConsent => "requestConsent",
            Self::UpdateConsent => "updateConsent",
            Self::IdentifierQuery => "identifierQuery",
            Self::ReportAbuse => "reportAbuse",
            Self::ProxyDownload => "proxyDownload",
        }
    }

    /// Our server's path template, relative to its base URL. The `{var}`
    /// syntax is also the route syntax of axum 0.8.
    pub fn canonical_path(self) -> &'static str {
        match self {
            Self::KeyMaterial => "/v1/keyMaterial/{targetUser}",
            Self::Update => "/v1/update/{roomId}",
            Self::Notify => "/v1/notify/{roomId}",
            Self::SubmitMessage => "/v1/submitMessage/{roomId}",
            Self::GroupInfo => "/v1/groupInfo/{roomId}",
            Self::RequestConsent => "/v1/requestConsent/{targetDomain}",
            Self::UpdateConsent => "/v1/updateConsent/{requesterDomain}",
            Self::IdentifierQuery => "/v1/identifierQuery/{domain}",
            Self::ReportAbuse => "/v1/reportAbuse/{roomId}",
            Self::ProxyDownload => "/v1/proxyDownload/{downloadUrl}",
        }
    }

    /// Variables a peer's template for this endpoint may use.
    pub fn allowed_vars(self) -> &'static [&'static str] {
        use vars::*;
        match self {
            Self::KeyMaterial => &[TARGET_USER],
            Self::Update | Self::Notify | Self::SubmitMessage | Self::GroupInfo => &[ROOM_ID],
            Self::ReportAbuse => &[ROOM_ID],
            Self::RequestConsent => &[TARGET_DOMAIN, TARGET_USER],
            Self::UpdateConsent => &[REQUESTER_DOMAIN, REQUESTER_USER],
            Self::IdentifierQuery => &[DOMAIN],
            Self::ProxyDownload => &[DOWNLOAD_URL],
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Why a directory document or template is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("invalid directory JSON: {0}")]
    Json(String),
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

/// The directory document of -06 §5.1.
///
/// Every key is required; unknown keys are ignored (as ACME, RFC 8555 §7.1.1,
/// which the draft follows, allows extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub key_material: UriTemplate,
    pub update: UriTemplate,
    pub notify: UriTemplate,
    pub submit_message: UriTemplate,
    pub group_info: UriTemplate,
    pub request_consent: UriTemplate,
    pub update_consent: UriTemplate,
    pub identifier_query: UriTemplate,
    pub report_abuse: UriTemplate,
    pub proxy_download: UriTemplate,
}

/// JSON shape of the document, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDirectory {
    key_material: String,
    update: String,
    notify: String,
    submit_message: String,
    group_info: String,
    request_consent: String,
    update_consent: String,
    identifier_query: String,
    report_abuse: String,
    proxy_download: String,
}

impl TryFrom<RawDirectory> for Directory {
    type Error = DirectoryError;
    fn try_from(r: RawDirectory) -> Result<Self, Self::Error> {
        let t = |endpoint: Endpoint, s: &str| {
            UriTemplate::parse(s, endpoint.allowed_vars())
                .map_err(|error| DirectoryError::Template { endpoint, error })
        };
        Ok(Self {
            key_material: t(Endpoint::KeyMaterial, &r.key_material)?,
            update: t(Endpoint::Update, &r.update)?,
            notify: t(Endpoint::Notify, &r.notify)?,
            submit_message: t(Endpoint::SubmitMessage, &r.submit_message)?,
            group_info: t(Endpoint::GroupInfo, &r.group_info)?,
            request_consent: t(Endpoint::RequestConsent, &r.request_consent)?,
            update_consent: t(Endpoint::UpdateConsent, &r.update_consent)?,
            identifier_query: t(Endpoint::IdentifierQuery, &r.identifier_query)?,
            report_abuse: t(Endpoint::ReportAbuse, &r.report_abuse)?,
            proxy_download: t(Endpoint::ProxyDownload, &r.proxy_download)?,
        })
    }
}

impl From<&Directory> for RawDirectory {
    fn from(d: &Directory) -> Self {
        let s = |t: &UriTemplate| t.as_str().to_owned();
        Self {
            key_material: s(&d.key_material),
            update: s(&d.update),
            notify: s(&d.notify),
            submit_message: s(&d.submit_message),
            group_info: s(&d.group_info),
            request_consent: s(&d.request_consent),
            update_consent: s(&d.update_consent),
            identifier_query: s(&d.identifier_query),
            report_abuse: s(&d.report_abuse),
            proxy_download: s(&d.proxy_download),
        }
    }
}

impl Serialize for Directory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawDirectory::from(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Directory {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawDirectory::deserialize(deserializer)?;
        Directory::try_from(raw).map_err(serde::de::Error::custom)
    }
}

impl Directory {
    /// Parses and validates a directory document.
    pub fn from_json(json: &str) -> Result<Self, DirectoryError> {
        let raw: RawDirectory =
            serde_json::from_str(json).map_err(|e| DirectoryError::Json(e.to_string()))?;
        Self::try_from(raw)
    }

    /// Serialises the document (keys in the draft's order).
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings cannot fail.
        serde_json::to_string_pretty(&RawDirectory::from(self)).unwrap_or_default()
    }

    /// Our server's directory: `base_url` (`https://host[:port][/prefix]`,
    /// no query, no trailing slash needed) followed by
    /// [`Endpoint::canonical_path`].
    pub fn for_base_url(base_url: &str) -> Result<Self, DirectoryError> {
        let (_, path) = split_https(base_url).map_err(DirectoryError::BaseUrl)?;
        if path.contains(['?', '{', '}']) {
            return Err(DirectoryError::BaseUrl(TemplateError::BaseUrlNotPlain));
        }
        let base = base_url.trim_end_matches('/');
        let t = |e: Endpoint| {
            UriTemplate::parse(&format!("{base}{}", e.canonical_path()), e.allowed_vars())
                .map_err(|error| DirectoryError::Template { endpoint: e, error })
        };
        Ok(Self {
            key_material: t(Endpoint::KeyMaterial)?,
            update: t(Endpoint::Update)?,
            notify: t(Endpoint::Notify)?,
            submit_message: t(Endpoint::SubmitMessage)?,
            group_info: t(Endpoint::GroupInfo)?,
            request_consent: t(Endpoint::RequestConsent)?,
            update_consent: t(Endpoint::UpdateConsent)?,
            identifier_query: t(Endpoint::IdentifierQuery)?,
            report_abuse: t(Endpoint::ReportAbuse)?,
            proxy_download: t(Endpoint::ProxyDownload)?,
        })
    }

    /// The template of one endpoint.
    pub fn get(&self, endpoint: Endpoint) -> &UriTemplate {
        match endpoint {
            Endpoint::KeyMaterial => &self.key_material,
            Endpoint::Update => &self.update,
            Endpoint::Notify => &self.notify,
            Endpoint::SubmitMessage => &self.submit_message,
            Endpoint::GroupInfo => &self.group_info,
            Endpoint::RequestConsent => &self.request_consent,
            Endpoint::UpdateConsent => &self.update_consent,
            Endpoint::IdentifierQuery => &self.identifier_query,
            Endpoint::ReportAbuse => &self.report_abuse,
            Endpoint::ProxyDownload => &self.proxy_download,
        }
    }

    /// `keyMaterial` URL for a target user.
    pub fn key_material_url(&self, target_user: &MimiUri) -> String {
        self.key_material
            .expand(&[(vars::TARGET_USER, target_user.as_str())])
    }

    /// URL of a room-addressed endpoint (`update`, `notify`,
    /// `submitMessage`, `groupInfo`, `reportAbuse`). For the other endpoints
    /// `roomId` is not a variable and the template expands without it.
    pub fn room_url(&self, endpoint: Endpoint, room_id: &MimiUri) -> String {
        self.get(endpoint)
            .expand(&[(vars::ROOM_ID, room_id.as_str())])
    }

    /// `requestConsent` URL; binds both `{targetDomain}` (the target's
    /// domain) and `{targetUser}` (its full URI).
    pub fn request_consent_url(&self, target_user: &MimiUri) -> String {
        self.request_consent.expand(&[
            (vars::TARGET_DOMAIN, target_user.domain()),
            (vars::TARGET_USER, target_user.as_str()),
        ])
    }

    /// `updateConsent` URL; binds both `{requesterDomain}` and
    /// `{requesterUser}`.
    pub fn update_consent_url(&self, requester_user: &MimiUri) -> String {
        self.update_consent.expand(&[
            (vars::REQUESTER_DOMAIN, requester_user.domain()),
            (vars::REQUESTER_USER, requester_user.as_str()),
        ])
    }

    /// `identifierQuery` URL for the queried provider's domain.
    pub fn identifier_query_url(&self, domain: &str) -> String {
        self.identifier_query.expand(&[(vars::DOMAIN, domain)])
    }

    /// `proxyDownload` URL for an asset URL.
    pub fn proxy_download_url(&self, download_url: &str) -> String {
        self.proxy_download
            .expand(&[(vars::DOWNLOAD_URL, download_url)])
    }

    /// Variables used anywhere in the document (diagnostics).
    pub fn used_variables(&self) -> HashSet<&str> {
        Endpoint::ALL
            .iter()
            .flat_map(|e| self.get(*e).variables())
            .collect()
    }
}
