//! Encrypting an asset before upload and opening it after download
//! (draft-ietf-mimi-content §External content, §Attachments).
//!
//! The sender encrypts the asset with a fresh key and nonce under an IANA
//! AEAD algorithm (RFC 5116), uploads the ciphertext, and puts the key,
//! nonce, aad and `contentHash` in the `ExternalPart`. The draft defines
//! `contentHash` as the "hash of the content at the target url": the bytes
//! a receiver downloads, which for an encrypted asset is the ciphertext
//! (with its AEAD tag appended, as RFC 5116 §2.1 outputs it). So a receiver
//! checks the hash before it decrypts anything, and a proxy or cache can
//! check it without the key.
//!
//! `size` is set to the length of that same ciphertext: the draft calls it
//! the "size of content in octets" next to the `url` it describes, and a
//! downloader can use it as the length to expect. [`open`] does not refuse
//! a part whose `size` disagrees (the hash already pins every byte, and
//! other senders may have counted the plaintext); it is advisory only.

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use mimi_content::ExternalPart;
use sha2::{Digest, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

/// `encAlg` of content that is not encrypted (draft-ietf-mimi-content
/// §External content): `key`, `nonce` and `aad` are then empty.
pub const ENC_ALG_NONE: u16 = 0;

/// Length of the authentication tag of every supported AEAD (RFC 5116
/// §5.1, §5.2; RFC 8439 §2.8), appended to the ciphertext.
pub const TAG_LEN: usize = 16;

/// The AEAD algorithms this crate seals and opens, with their numbers in
/// the IANA "AEAD Algorithms" registry (RFC 5116 §6), which is the registry
/// `encAlg` names (draft-ietf-mimi-content §External content).
///
/// ChaCha20-Poly1305 is number 29 there (RFC 8439 §9). Number 3 is
/// AEAD_AES_128_CCM; the "3 = ChaCha20Poly1305" of the HPKE AEAD registry
/// (RFC 9180 §7.3) is a different registry and does not apply to `encAlg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AeadAlgorithm {
    /// AEAD_AES_128_GCM (1): the algorithm the content draft makes
    /// mandatory to implement, and our default.
    #[default]
    Aes128Gcm,
    /// AEAD_AES_256_GCM (2).
    Aes256Gcm,
    /// AEAD_CHACHA20_POLY1305 (29).
    ChaCha20Poly1305,
}

impl AeadAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [AeadAlgorithm; 3] = [
        AeadAlgorithm::Aes128Gcm,
        AeadAlgorithm::Aes256Gcm,
        AeadAlgorithm::ChaCha20Poly1305,
    ];

    /// The IANA AEAD registry number, the `encAlg` value.
    pub const fn id(self) -> u16 {
        match self {
            AeadAlgorithm::Aes128Gcm => 1,
            AeadAlgorithm::Aes256Gcm => 2,
            AeadAlgorithm::ChaCha20Poly1305 => 29,
        }
    }

    /// The algorithm with the given `encAlg`, `None` when unsupported
    /// (including 0, "not encrypted").
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            1 => Some(AeadAlgorithm::Aes128Gcm),
            2 => Some(AeadAlgorithm::Aes256Gcm),
            29 => Some(AeadAlgorithm::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Key length in octets.
    pub const fn key_len(self) -> usize {
        match self {
            AeadAlgorithm::Aes128Gcm => 16,
            AeadAlgorithm::Aes256Gcm | AeadAlgorithm::ChaCha20Poly1305 => 32,
        }
    }

    /// Nonce length in octets (12 for all three).
    pub const fn nonce_len(self) -> usize {
        12
    }

    /// The registry name.
    pub const fn name(self) -> &'static str {
        match self {
            AeadAlgorithm::Aes128Gcm => "AEAD_AES_128_GCM",
            AeadAlgorithm::Aes256Gcm => "AEAD_AES_256_GCM",
            AeadAlgorithm::ChaCha20Poly1305 => "AEAD_CHACHA20_POLY1305",
        }
    }
}

/// Hash algorithms for `contentHash`, with their numbers in the IANA
/// "Named Information Hash Algorithm" registry (RFC 6920 §9.4), which
/// `hashAlg` names. The truncated SHA-256 variants (2–6) are refused: a
/// 32- to 128-bit hash is too weak to pin downloaded content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashAlgorithm {
    /// sha-256 (1), what [`seal`] uses.
    #[default]
    Sha256,
    /// sha-384 (7).
    Sha384,
    /// sha-512 (8).
    Sha512,
}

impl HashAlgorithm {
    /// The registry number, the `hashAlg` value.
    pub const fn id(self) -> u8 {
        match self {
            HashAlgorithm::Sha256 => 1,
            HashAlgorithm::Sha384 => 7,
            HashAlgorithm::Sha512 => 8,
        }
    }

    /// The algorithm with the given `hashAlg`, `None` when unsupported.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(HashAlgorithm::Sha256),
            7 => Some(HashAlgorithm::Sha384),
            8 => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    /// Digest length in octets.
    pub const fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => Sha256::digest(data).to_vec(),
            HashAlgorithm::Sha384 => Sha384::digest(data).to_vec(),
            HashAlgorithm::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// What a receiver needs to fetch-check and decrypt a sealed asset: the
/// `ExternalPart` fields other than `url`, `contentType`, `expires`,
/// `description` and `filename`. The key is wiped from memory on drop and
/// never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AssetSecrets {
    /// The AEAD algorithm (`encAlg`).
    pub enc_alg: AeadAlgorithm,
    /// The fresh AEAD key (`key`).
    pub key: Zeroizing<Vec<u8>>,
    /// The fresh AEAD nonce (`nonce`).
    pub nonce: Vec<u8>,
    /// The additional authenticated data (`aad`), empty by default.
    pub aad: Vec<u8>,
    /// The hash algorithm of `content_hash` (`hashAlg`).
    pub hash_alg: HashAlgorithm,
    /// Hash of the ciphertext, the content at the URL (`contentHash`).
    pub content_hash: Vec<u8>,
    /// Length of the ciphertext in octets (`size`).
    pub size: u64,
}

impl std::fmt::Debug for AssetSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssetSecrets")
            .field("enc_alg", &self.enc_alg)
            .field("key", &"<redacted>")
            .field("nonce", &self.nonce)
            .field("aad", &self.aad)
            .field("hash_alg", &self.hash_alg)
            .field("content_hash", &self.content_hash)
            .field("size", &self.size)
            .finish()
    }
}

impl AssetSecrets {
    /// Writes `encAlg`, `key`, `nonce`, `aad`, `hashAlg`, `contentHash` and
    /// `size` into `part`, leaving its other fields as they are.
    pub fn fill(&self, part: &mut ExternalPart) {
        part.enc_alg = self.enc_alg.id();
        part.key = self.key.to_vec();
        part.nonce = self.nonce.clone();
        part.aad = self.aad.clone();
        part.hash_alg = self.hash_alg.id();
        part.content_hash = self.content_hash.clone();
        part.size = self.size;
    }
}

/// A sealed asset: the bytes to upload and the secrets for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedAsset {
    /// Ciphertext with the AEAD tag appended; upload exactly these bytes.
    pub ciphertext: Vec<u8>,
    /// The `ExternalPart` fields that let a receiver check and decrypt it.
    pub secrets: AssetSecrets,
}

impl SealedAsset {
    /// The `ExternalPart` for this asset once uploaded at `url`, with no
    /// expiry, description or filename (set them on the result).
    pub fn external_part(
        &self,
        url: impl Into<String>,
        content_type: impl Into<String>,
    ) -> ExternalPart {
        let mut part = ExternalPart {
            content_type: content_type.into(),
            url: url.into(),
            ..ExternalPart::default()
        };
        self.secrets.fill(&mut part);
        part
    }
}

/// Why an asset could not be sealed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The operating system's random number generator failed.
    #[error("cannot draw a random asset key: {reason}")]
    Randomness {
        /// The generator's error.
        reason: String,
    },
    /// The asset exceeds what the AEAD can encrypt under one nonce
    /// (2^36 - 32 octets for AES-GCM, RFC 5116 §5.1).
    #[error("asset of {len} octets is too large to encrypt with {alg}")]
    TooLarge {
        /// The algorithm's registry name.
        alg: &'static str,
        /// The plaintext length.
        len: usize,
    },
}

/// Why a downloaded asset could not be opened against its `ExternalPart`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// `encAlg` names an AEAD this implementation does not support.
    #[error(
        "unsupported encryption algorithm {enc_alg} (supported: 0 = none, 1 = AES-128-GCM, 2 = AES-256-GCM, 29 = ChaCha20-Poly1305)"
    )]
    UnsupportedAlgorithm {
        /// The `encAlg` value.
        enc_alg: u16,
    },
    /// `hashAlg` names a hash this implementation does not support.
    #[error(
        "unsupported content hash algorithm {hash_alg} (supported: 1 = sha-256, 7 = sha-384, 8 = sha-512)"
    )]
    UnsupportedHashAlgorithm {
        /// The `hashAlg` value.
        hash_alg: u8,
    },
    /// `key` does not have the algorithm's key length.
    #[error("the key of an {alg} asset must be {expected} octets, not {found}")]
    WrongKeyLength {
        /// The algorithm's registry name.
        alg: &'static str,
        /// The algorithm's key length.
        expected: usize,
        /// The length in the part.
        found: usize,
    },
    /// `nonce` does not have the algorithm's nonce length.
    #[error("the nonce of an {alg} asset must be {expected} octets, not {found}")]
    WrongNonceLength {
        /// The algorithm's registry name.
        alg: &'static str,
        /// The algorithm's nonce length.
        expected: usize,
        /// The length in the part.
        found: usize,
    },
    /// `contentHash` does not have the hash algorithm's output length.
    #[error("a content hash with hash algorithm {hash_alg} must be {expected} octets, not {found}")]
    WrongHashLength {
        /// The `hashAlg` value.
        hash_alg: u8,
        /// The algorithm's output length.
        expected: usize,
        /// The length in the part.
        found: usize,
    },
    /// `encAlg` is 0 (not encrypted) but `key`, `nonce` or `aad` is not
    /// empty, which draft-ietf-mimi-content §External content rules out.
    #[error("the asset is marked unencrypted (encAlg 0) but carries a key, nonce or aad")]
    KeyMaterialWithoutEncryption,
    /// The downloaded bytes do not hash to `contentHash`: they are not
    /// the content the sender referenced.
    #[error("the downloaded asset does not match the content hash in the message")]
    HashMismatch,
    /// The downloaded bytes are shorter than an AEAD tag.
    #[error("the downloaded asset ({len} octets) is shorter than an authentication tag")]
    CiphertextTooShort {
        /// The ciphertext length.
        len: usize,
    },
    /// The AEAD tag does not verify under `key`, `nonce` and `aad`.
    #[error("the asset does not decrypt with the key in the message (authentication tag mismatch)")]
    TagMismatch,
}

/// Seals `plaintext` under `alg` with a fresh random key and nonce and
/// empty `aad` (the default of draft-ietf-mimi-content §External content),
/// hashing the ciphertext with sha-256.
pub fn seal(alg: AeadAlgorithm, plaintext: &[u8]) -> Result<SealedAsset, SealError> {
    seal_with_aad(alg, plaintext, &[])
}

/// [`seal`] with an `aad` set by an extension.
pub fn seal_with_aad(
    alg: AeadAlgorithm,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<SealedAsset, SealError> {
    let mut key = Zeroizing::new(vec![0u8; alg.key_len()]);
    let mut nonce = vec![0u8; alg.nonce_len()];
    getrandom::fill(&mut key).map_err(random_error)?;
    getrandom::fill(&mut nonce).map_err(random_error)?;
    seal_with_key(alg, plaintext, aad, key, nonce)
}

fn random_error(e: getrandom::Error) -> SealError {
    SealError::Randomness {
        reason: e.to_string(),
    }
}

/// Seals under a given key and nonce. Not public: a key and nonce must
/// never be reused across assets, which fresh randomness guarantees.
fn seal_with_key(
    alg: AeadAlgorithm,
    plaintext: &[u8],
    aad: &[u8],
    key: Zeroizing<Vec<u8>>,
    nonce: Vec<u8>,
) -> Result<SealedAsset, SealError> {
    let too_large = || SealError::TooLarge {
        alg: alg.name(),
        len: plaintext.len(),
    };
    let ciphertext = match alg {
        AeadAlgorithm::Aes128Gcm => aead_seal::<Aes128Gcm>(&key, &nonce, aad, plaintext),
        AeadAlgorithm::Aes256Gcm => aead_seal::<Aes256Gcm>(&key, &nonce, aad, plaintext),
        AeadAlgorithm::ChaCha20Poly1305 => {
            aead_seal::<ChaCha20Poly1305>(&key, &nonce, aad, plaintext)
        }
    }
    .ok_or_else(too_large)?;
    let hash_alg = HashAlgorithm::Sha256;
    let content_hash = hash_alg.digest(&ciphertext);
    let size = u64::try_from(ciphertext.len()).map_err(|_| too_large())?;
    Ok(SealedAsset {
        ciphertext,
        secrets: AssetSecrets {
            enc_alg: alg,
            key,
            nonce,
            aad: aad.to_vec(),
            hash_alg,
            content_hash,
            size,
        },
    })
}

fn aead_seal<C: Aead + KeyInit>(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Option<Vec<u8>> {
    let cipher = C::new_from_slice(key).ok()?;
    let nonce = GenericArray::from_exact_iter(nonce.iter().copied())?;
    cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .ok()
}

fn aead_open<C: Aead + KeyInit>(
    key: &[u8],
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let cipher = C::new_from_slice(key).map_err(|_| OpenError::TagMismatch)?;
    let nonce =
        GenericArray::from_exact_iter(nonce.iter().copied()).ok_or(OpenError::TagMismatch)?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| OpenError::TagMismatch)
}

/// The checks of [`open`] that need no downloaded bytes: supported
/// algorithms and well-formed key, nonce and hash. A client can run them
/// on a received `ExternalPart` before it downloads anything.
pub fn validate_part(part: &ExternalPart) -> Result<(), OpenError> {
    let hash_alg =
        HashAlgorithm::from_id(part.hash_alg).ok_or(OpenError::UnsupportedHashAlgorithm {
            hash_alg: part.hash_alg,
        })?;
    if part.content_hash.len() != hash_alg.output_len() {
        return Err(OpenError::WrongHashLength {
            hash_alg: part.hash_alg,
            expected: hash_alg.output_len(),
            found: part.content_hash.len(),
        });
    }
    if part.enc_alg == ENC_ALG_NONE {
        if !(part.key.is_empty() && part.nonce.is_empty() && part.aad.is_empty()) {
            return Err(OpenError::KeyMaterialWithoutEncryption);
        }
        return Ok(());
    }
    let alg = AeadAlgorithm::from_id(part.enc_alg).ok_or(OpenError::UnsupportedAlgorithm {
        enc_alg: part.enc_alg,
    })?;
    if part.key.len() != alg.key_len() {
        return Err(OpenError::WrongKeyLength {
            alg: alg.name(),
            expected: alg.key_len(),
            found: part.key.len(),
        });
    }
    if part.nonce.len() != alg.nonce_len() {
        return Err(OpenError::WrongNonceLength {
            alg: alg.name(),
            expected: alg.nonce_len(),
            found: part.nonce.len(),
        });
    }
    Ok(())
}

/// Opens the bytes downloaded from `part.url`: checks the part
/// ([`validate_part`]), then `contentHash` over the downloaded bytes
/// ([`OpenError::HashMismatch`]), then decrypts and verifies the AEAD tag
/// ([`OpenError::TagMismatch`]). With `encAlg` 0 the content is not
/// encrypted and only the hash is checked; the bytes are returned as they
/// are.
pub fn open(downloaded: &[u8], part: &ExternalPart) -> Result<Vec<u8>, OpenError> {
    validate_part(part)?;
    // validate_part has accepted the hash algorithm.
    let hash_alg =
        HashAlgorithm::from_id(part.hash_alg).ok_or(OpenError::UnsupportedHashAlgorithm {
            hash_alg: part.hash_alg,
        })?;
    if hash_alg.digest(downloaded) != part.content_hash {
        return Err(OpenError::HashMismatch);
    }
    let Some(alg) = AeadAlgorithm::from_id(part.enc_alg) else {
        // validate_part accepts only 0 besides the supported algorithms.
        return Ok(downloaded.to_vec());
    };
    if downloaded.len() < TAG_LEN {
        return Err(OpenError::CiphertextTooShort {
            len: downloaded.len(),
        });
    }
    let (key, nonce, aad) = (&part.key, &part.nonce, &part.aad);
    match alg {
        AeadAlgorithm::Aes128Gcm => aead_open::<Aes128Gcm>(key, nonce, aad, downloaded),
        AeadAlgorithm::Aes256Gcm => aead_open::<Aes256Gcm>(key, nonce, aad, downloaded),
        AeadAlgorithm::ChaCha20Poly1305 => {
            aead_open::<ChaCha20Poly1305>(key, nonce, aad, downloaded)
        }
    }
}

#[cfg(test)]
mod tests;
