//! MIMI assets: the pure half of attachments.
//!
//! Assets are attached files, images, audio and video that travel outside
//! the MLS channel: the sender encrypts them, uploads the ciphertext, and
//! sends an `ExternalPart` carrying the URL, the AEAD key and the hash of
//! the uploaded bytes (draft-ietf-mimi-content §External content,
//! §Attachments). Receivers fetch them directly, through the hub's
//! `proxyDownload` endpoint or through Oblivious HTTP
//! (draft-ietf-mimi-protocol-06 §5.10).
//!
//! This crate holds the decisions those paths need and no IO:
//!
//! * [`encrypt`] seals an asset and opens a downloaded one against its
//!   `ExternalPart` (hash first, then the AEAD tag);
//! * [`target`] keeps the hub's download proxy from becoming an open proxy:
//!   which URLs, redirects and connected addresses it may use;
//! * [`policy`] applies the room's `asset_policy` upload domains to an
//!   `ExternalPart` URL (draft-ietf-mimi-room-policy §Asset policies);
//! * [`cache`] is a byte-budgeted LRU cache for downloaded asset bodies;
//! * [`oblivious`] encapsulates a download for an OHTTP Gateway and opens
//!   it there (RFC 9458, Binary HTTP RFC 9292).
//!
//! Errors are values, one enum per operation; bad input never panics.
//!
//! ```
//! use mimi_assets::{AeadAlgorithm, DownloadTargets, check_address, open, seal};
//!
//! // Sender: seal, upload `asset.ciphertext`, send the part in a message.
//! let asset = seal(AeadAlgorithm::default(), b"cat picture").unwrap();
//! let part = asset.external_part("https://files.a.example/a/1", "image/png");
//!
//! // Hub: proxy only to a peer's asset host, on a public address.
//! let targets = DownloadTargets::new(["files.a.example"]).unwrap();
//! let url = targets.check(&part.url).unwrap();
//! assert!(targets.check("https://127.0.0.1/a/1").is_err());
//! assert!(check_address("10.0.0.7".parse().unwrap(), false).is_err());
//! # let _ = url;
//!
//! // Receiver: check the hash, then decrypt.
//! assert_eq!(open(&asset.ciphertext, &part).unwrap(), b"cat picture");
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod cache;
pub mod encrypt;
pub mod oblivious;
pub mod policy;
pub mod target;

pub use cache::{CacheStats, DownloadCache};
pub use encrypt::{
    AeadAlgorithm, AssetSecrets, ENC_ALG_NONE, HashAlgorithm, OpenError, SealError, SealedAsset,
    TAG_LEN, open, seal, seal_with_aad, validate_part,
};
pub use policy::{
    ProviderUploadDomains, UploadLocation, UploadPolicyRefusal, check_upload_url, host_allowed,
};
pub use target::{
    AddressRange, DEFAULT_PORT, DownloadTargets, TargetConfigError, TargetRefusal, address_range,
    check_address,
};
