//! The federation endpoints of -06 §5, in one table.
//!
//! Each entry names the endpoint, its HTTP method, its directory key
//! (-06 §5.1), our path template, the template variables and how a target
//! binds them, and the request and response message types. The server
//! mounts its routes from [`Endpoint::canonical_path`], publishes its
//! directory from it, and sends requests through [`FederationEndpoint`],
//! so an endpoint is added with one entry here and one handler.

use std::fmt;

use crate::codec::{DecodeError, decode_exact, encode};
use crate::msgs::{
    AbuseReport, ConsentEntry, FanoutMessage, GroupInfoRequest, GroupInfoResponse,
    IdentifierRequest, IdentifierResponse, KeyMaterialRequest, KeyMaterialResponse,
    SubmitMessageRequest, SubmitMessageResponse, UpdateRequest, UpdateRoomResponse,
};
use crate::uri::MimiUri;

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

/// HTTP method of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// A request or response body of a federation endpoint. MIMI messages are
/// TLS-PL encoded (-06 §5); bodies of other shapes have their own types.
pub trait MessageBody: Sized {
    fn to_body(&self) -> Result<Vec<u8>, tls_codec::Error>;
    fn from_body(bytes: &[u8]) -> Result<Self, DecodeError>;
}

macro_rules! tls_bodies {
    ($($t:ty),+ $(,)?) => {$(
        impl MessageBody for $t {
            fn to_body(&self) -> Result<Vec<u8>, tls_codec::Error> {
                encode(self)
            }
            fn from_body(bytes: &[u8]) -> Result<Self, DecodeError> {
                decode_exact(bytes)
            }
        }
    )+};
}

tls_bodies!(
    KeyMaterialRequest,
    KeyMaterialResponse,
    UpdateRequest,
    UpdateRoomResponse,
    SubmitMessageRequest,
    SubmitMessageResponse,
    GroupInfoRequest,
    GroupInfoResponse,
    ConsentEntry,
    IdentifierRequest,
    IdentifierResponse,
    AbuseReport,
);

/// An empty body: the status code is the whole answer (`notify` 201,
/// consent 201, `reportAbuse` 204), or a `GET` request. Whatever a peer
/// sends along is ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoBody;

impl MessageBody for NoBody {
    fn to_body(&self) -> Result<Vec<u8>, tls_codec::Error> {
        Ok(Vec::new())
    }
    fn from_body(_: &[u8]) -> Result<Self, DecodeError> {
        Ok(NoBody)
    }
}

/// A `notify` body: one or more concatenated TLS-PL `FanoutMessage`s of
/// one room (-06 §5.5), kept as the encoded bytes the hub queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutBatch(Vec<u8>);

impl FanoutBatch {
    /// Wraps already encoded, concatenated `FanoutMessage`s.
    pub fn from_encoded(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The messages, in order.
    pub fn messages(&self) -> Result<Vec<FanoutMessage>, DecodeError> {
        use tls_codec::Deserialize as _;
        let mut rest = self.0.as_slice();
        let mut out = Vec::new();
        while !rest.is_empty() {
            out.push(FanoutMessage::tls_deserialize(&mut rest)?);
        }
        Ok(out)
    }
}

impl MessageBody for FanoutBatch {
    fn to_body(&self) -> Result<Vec<u8>, tls_codec::Error> {
        Ok(self.0.clone())
    }
    /// Checks that the body is a non-empty sequence of `FanoutMessage`s.
    fn from_body(bytes: &[u8]) -> Result<Self, DecodeError> {
        let batch = Self(bytes.to_vec());
        if batch.messages()?.is_empty() {
            return Err(DecodeError::Malformed(tls_codec::Error::DecodingError(
                "empty notify body".into(),
            )));
        }
        Ok(batch)
    }
}

/// The bytes of a proxied asset (-06 §5.10), opaque to MIMI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetBytes(pub Vec<u8>);

impl MessageBody for AssetBytes {
    fn to_body(&self) -> Result<Vec<u8>, tls_codec::Error> {
        Ok(self.0.clone())
    }
    fn from_body(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self(bytes.to_vec()))
    }
}

/// One federation endpoint, as a type: what it is called, what it carries
/// and how its target fills the path template.
pub trait FederationEndpoint {
    const ENDPOINT: Endpoint;
    const METHOD: Method;
    /// The directory key (-06 §5.1).
    const KEY: &'static str;
    /// What the request is addressed to: a user, a room, a domain or a URL.
    type Target: ?Sized;
    type Request: MessageBody;
    type Response: MessageBody;

    /// The template variables bound for `target`.
    fn bind(target: &Self::Target) -> Vec<(&'static str, &str)>;
}

macro_rules! federation_endpoints {
    ($(
        $(#[$doc:meta])*
        $name:ident {
            key: $key:literal,
            method: $method:ident,
            path: $path:literal,
            target: $target:ty,
            vars: [$($var:ident => |$t:ident| $value:expr),+ $(,)?],
            request: $req:ty,
            response: $resp:ty $(,)?
        }
    )+) => {
        /// One endpoint of the directory, for iteration and lookup; the
        /// marker type of the same name carries its message types.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Endpoint { $($name),+ }

        impl Endpoint {
            /// Every endpoint, in the order of the -06 §5.1 example.
            pub const ALL: [Endpoint; [$(stringify!($name)),+].len()] = [$(Self::$name),+];

            /// The JSON key in the directory document.
            pub fn key(self) -> &'static str {
                match self { $(Self::$name => $key),+ }
            }

            /// The HTTP method.
            pub fn method(self) -> Method {
                match self { $(Self::$name => Method::$method),+ }
            }

            /// Our server's path template, relative to its base URL. The
            /// `{var}` syntax is also the route syntax of axum 0.8.
            pub fn canonical_path(self) -> &'static str {
                match self { $(Self::$name => $path),+ }
            }

            /// Variables a peer's template for this endpoint may use.
            pub fn allowed_vars(self) -> &'static [&'static str] {
                match self { $(Self::$name => &[$(vars::$var),+]),+ }
            }

            /// The endpoint with this directory key.
            pub fn from_key(key: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|e| e.key() == key)
            }
        }

        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct $name;

            impl FederationEndpoint for $name {
                const ENDPOINT: Endpoint = Endpoint::$name;
                const METHOD: Method = Method::$method;
                const KEY: &'static str = $key;
                type Target = $target;
                type Request = $req;
                type Response = $resp;

                fn bind(target: &Self::Target) -> Vec<(&'static str, &str)> {
                    vec![$((vars::$var, { let $t = target; $value })),+]
                }
            }
        )+
    };
}

federation_endpoints! {
    /// Fetch key material (-06 §5.2), addressed to the target user.
    KeyMaterial {
        key: "keyMaterial",
        method: Post,
        path: "/v1/keyMaterial/{targetUser}",
        target: MimiUri,
        vars: [TARGET_USER => |user| user.as_str()],
        request: KeyMaterialRequest,
        response: KeyMaterialResponse,
    }
    /// Update room state (-06 §5.3), at the room's hub.
    Update {
        key: "update",
        method: Post,
        path: "/v1/update/{roomId}",
        target: MimiUri,
        vars: [ROOM_ID => |room| room.as_str()],
        request: UpdateRequest,
        response: UpdateRoomResponse,
    }
    /// Fanout to a follower (-06 §5.5); answered 201 without a body.
    Notify {
        key: "notify",
        method: Post,
        path: "/v1/notify/{roomId}",
        target: MimiUri,
        vars: [ROOM_ID => |room| room.as_str()],
        request: FanoutBatch,
        response: NoBody,
    }
    /// Submit a message (-06 §5.4), at the room's hub.
    SubmitMessage {
        key: "submitMessage",
        method: Post,
        path: "/v1/submitMessage/{roomId}",
        target: MimiUri,
        vars: [ROOM_ID => |room| room.as_str()],
        request: SubmitMessageRequest,
        response: SubmitMessageResponse,
    }
    /// Fetch the GroupInfo (-06 §5.6), at the room's hub.
    GroupInfo {
        key: "groupInfo",
        method: Post,
        path: "/v1/groupInfo/{roomId}",
        target: MimiUri,
        vars: [ROOM_ID => |room| room.as_str()],
        request: GroupInfoRequest,
        response: GroupInfoResponse,
    }
    /// Request or cancel consent (-06 §5.7), at the target's provider.
    /// Both spellings of the directory are bound (divergence T3).
    RequestConsent {
        key: "requestConsent",
        method: Post,
        path: "/v1/requestConsent/{targetDomain}",
        target: MimiUri,
        vars: [
            TARGET_DOMAIN => |user| user.domain(),
            TARGET_USER => |user| user.as_str(),
        ],
        request: ConsentEntry,
        response: NoBody,
    }
    /// Grant or revoke consent (-06 §5.7), at the requester's provider.
    UpdateConsent {
        key: "updateConsent",
        method: Post,
        path: "/v1/updateConsent/{requesterDomain}",
        target: MimiUri,
        vars: [
            REQUESTER_DOMAIN => |user| user.domain(),
            REQUESTER_USER => |user| user.as_str(),
        ],
        request: ConsentEntry,
        response: NoBody,
    }
    /// Find an internal address (-06 §5.8), addressed to a domain.
    IdentifierQuery {
        key: "identifierQuery",
        method: Post,
        path: "/v1/identifierQuery/{domain}",
        target: str,
        vars: [DOMAIN => |domain| domain],
        request: IdentifierRequest,
        response: IdentifierResponse,
    }
    /// Report abuse (-06 §5.9), at the room's hub; answered 204.
    ReportAbuse {
        key: "reportAbuse",
        method: Post,
        path: "/v1/reportAbuse/{roomId}",
        target: MimiUri,
        vars: [ROOM_ID => |room| room.as_str()],
        request: AbuseReport,
        response: NoBody,
    }
    /// Download an asset through the hub (-06 §5.10).
    ProxyDownload {
        key: "proxyDownload",
        method: Get,
        path: "/v1/proxyDownload/{downloadUrl}",
        target: str,
        vars: [DOWNLOAD_URL => |url| url],
        request: NoBody,
        response: AssetBytes,
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}
