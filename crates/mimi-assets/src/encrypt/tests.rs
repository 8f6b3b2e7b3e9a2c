use proptest::prelude::*;

use super::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector hex"))
        .collect()
}

const URL: &str = "https://files.a.example/assets/8ksB4bSrrRE";

fn sealed(alg: AeadAlgorithm, plaintext: &[u8]) -> (Vec<u8>, ExternalPart) {
    let asset = seal(alg, plaintext).expect("seal");
    let part = asset.external_part(URL, "video/mp4");
    (asset.ciphertext, part)
}

#[test]
fn round_trip_for_every_algorithm() {
    for alg in AeadAlgorithm::ALL {
        let plaintext = b"2 hours of key signing video".repeat(100);
        let (ciphertext, part) = sealed(alg, &plaintext);
        assert_eq!(part.enc_alg, alg.id());
        assert_eq!(part.key.len(), alg.key_len());
        assert_eq!(part.nonce.len(), 12);
        assert_eq!(open(&ciphertext, &part), Ok(plaintext), "{alg:?}");
    }
}

#[test]
fn empty_asset_round_trips() {
    let (ciphertext, part) = sealed(AeadAlgorithm::default(), b"");
    assert_eq!(ciphertext.len(), TAG_LEN);
    assert_eq!(open(&ciphertext, &part), Ok(Vec::new()));
}

#[test]
fn algorithm_numbers_are_the_iana_aead_registry() {
    assert_eq!(AeadAlgorithm::default(), AeadAlgorithm::Aes128Gcm);
    assert_eq!(AeadAlgorithm::Aes128Gcm.id(), 1);
    assert_eq!(AeadAlgorithm::Aes256Gcm.id(), 2);
    assert_eq!(AeadAlgorithm::ChaCha20Poly1305.id(), 29);
    for alg in AeadAlgorithm::ALL {
        assert_eq!(AeadAlgorithm::from_id(alg.id()), Some(alg));
    }
    // 0 is "not encrypted", 3 is AEAD_AES_128_CCM: neither is an AEAD we run.
    assert_eq!(AeadAlgorithm::from_id(0), None);
    assert_eq!(AeadAlgorithm::from_id(3), None);
    assert_eq!(HashAlgorithm::default().id(), mimi_content::HASH_ALG_SHA256);
    for h in [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ] {
        assert_eq!(HashAlgorithm::from_id(h.id()), Some(h));
        assert_eq!(h.digest(b"x").len(), h.output_len());
    }
    for truncated in 2..=6 {
        assert_eq!(HashAlgorithm::from_id(truncated), None);
    }
}

#[test]
fn content_hash_is_sha256_of_the_ciphertext_and_size_its_length() {
    let asset = seal(AeadAlgorithm::Aes256Gcm, b"hello asset").expect("seal");
    let s = &asset.secrets;
    assert_eq!(s.hash_alg, HashAlgorithm::Sha256);
    assert_eq!(s.content_hash, Sha256::digest(&asset.ciphertext).to_vec());
    assert_ne!(s.content_hash, Sha256::digest(b"hello asset").to_vec());
    assert_eq!(s.size, asset.ciphertext.len() as u64);
    assert_eq!(asset.ciphertext.len(), b"hello asset".len() + TAG_LEN);
    assert!(s.aad.is_empty(), "default aad is empty");
}

#[test]
fn every_seal_draws_a_fresh_key_and_nonce() {
    let a = seal(AeadAlgorithm::Aes128Gcm, b"same").expect("seal");
    let b = seal(AeadAlgorithm::Aes128Gcm, b"same").expect("seal");
    assert_ne!(a.secrets.key, b.secrets.key);
    assert_ne!(a.secrets.nonce, b.secrets.nonce);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn external_part_and_fill_set_exactly_the_secret_fields() {
    let asset = seal(AeadAlgorithm::ChaCha20Poly1305, b"x").expect("seal");
    let part = asset.external_part(URL, "image/png");
    assert_eq!(part.url, URL);
    assert_eq!(part.content_type, "image/png");
    assert_eq!(
        (
            part.expires,
            part.description.as_str(),
            part.filename.as_str()
        ),
        (0, "", "")
    );
    assert_eq!(part.hash_alg, 1);
    assert_eq!(part.content_hash, asset.secrets.content_hash);
    assert_eq!(part.size, asset.secrets.size);

    let mut other = ExternalPart {
        url: "https://elsewhere.example/a".into(),
        filename: "cat.png".into(),
        expires: 42,
        ..ExternalPart::default()
    };
    asset.secrets.fill(&mut other);
    assert_eq!(other.filename, "cat.png");
    assert_eq!(other.expires, 42);
    assert_eq!(other.url, "https://elsewhere.example/a");
    assert_eq!(other.key, part.key);
    assert_eq!(other.enc_alg, 29);
}

#[test]
fn debug_never_prints_the_key() {
    let asset = seal(AeadAlgorithm::Aes128Gcm, b"x").expect("seal");
    let shown = format!("{asset:?}");
    assert!(shown.contains("<redacted>"));
    assert!(!shown.contains(&format!("{:?}", asset.secrets.key.as_slice())));
}

#[test]
fn a_tampered_byte_is_a_hash_mismatch() {
    let (mut ciphertext, part) = sealed(AeadAlgorithm::Aes128Gcm, b"secret plans");
    ciphertext[3] ^= 0x01;
    assert_eq!(open(&ciphertext, &part), Err(OpenError::HashMismatch));
    ciphertext[3] ^= 0x01;
    ciphertext.push(0);
    assert_eq!(open(&ciphertext, &part), Err(OpenError::HashMismatch));
}

#[test]
fn a_tampered_byte_with_a_matching_hash_is_a_tag_mismatch() {
    for alg in AeadAlgorithm::ALL {
        let (mut ciphertext, mut part) = sealed(alg, b"secret plans");
        ciphertext[0] ^= 0x80;
        part.content_hash = HashAlgorithm::Sha256.digest(&ciphertext);
        assert_eq!(
            open(&ciphertext, &part),
            Err(OpenError::TagMismatch),
            "{alg:?}"
        );
    }
}

#[test]
fn a_wrong_key_nonce_or_aad_is_a_tag_mismatch() {
    let (ciphertext, part) = sealed(AeadAlgorithm::Aes256Gcm, b"secret plans");
    let mut wrong_key = part.clone();
    wrong_key.key[0] ^= 1;
    assert_eq!(open(&ciphertext, &wrong_key), Err(OpenError::TagMismatch));
    let mut wrong_nonce = part.clone();
    wrong_nonce.nonce[11] ^= 1;
    assert_eq!(open(&ciphertext, &wrong_nonce), Err(OpenError::TagMismatch));
    let mut wrong_aad = part.clone();
    wrong_aad.aad = b"extension".to_vec();
    assert_eq!(open(&ciphertext, &wrong_aad), Err(OpenError::TagMismatch));
    assert!(open(&ciphertext, &part).is_ok());
}

#[test]
fn aad_set_by_an_extension_round_trips() {
    let asset = seal_with_aad(AeadAlgorithm::ChaCha20Poly1305, b"body", b"ext-aad").expect("seal");
    let part = asset.external_part(URL, "text/plain");
    assert_eq!(part.aad, b"ext-aad");
    assert_eq!(open(&asset.ciphertext, &part), Ok(b"body".to_vec()));
    let mut stripped = part;
    stripped.aad.clear();
    assert_eq!(
        open(&asset.ciphertext, &stripped),
        Err(OpenError::TagMismatch)
    );
}

#[test]
fn unsupported_algorithms_are_refused_before_hashing() {
    let (ciphertext, part) = sealed(AeadAlgorithm::Aes128Gcm, b"x");
    for enc_alg in [3, 4, 30, 0xffff] {
        let mut p = part.clone();
        p.enc_alg = enc_alg;
        assert_eq!(
            open(&ciphertext, &p),
            Err(OpenError::UnsupportedAlgorithm { enc_alg })
        );
    }
    for hash_alg in [0, 2, 6, 9, 255] {
        let mut p = part.clone();
        p.hash_alg = hash_alg;
        assert_eq!(
            open(&ciphertext, &p),
            Err(OpenError::UnsupportedHashAlgorithm { hash_alg })
        );
    }
}

#[test]
fn malformed_lengths_are_refused() {
    let (ciphertext, part) = sealed(AeadAlgorithm::Aes128Gcm, b"x");
    let mut p = part.clone();
    p.key.push(0);
    assert_eq!(
        open(&ciphertext, &p),
        Err(OpenError::WrongKeyLength {
            alg: "AEAD_AES_128_GCM",
            expected: 16,
            found: 17
        })
    );
    let mut p = part.clone();
    p.enc_alg = AeadAlgorithm::Aes256Gcm.id();
    assert!(matches!(
        open(&ciphertext, &p),
        Err(OpenError::WrongKeyLength {
            expected: 32,
            found: 16,
            ..
        })
    ));
    let mut p = part.clone();
    p.nonce.truncate(8);
    assert_eq!(
        open(&ciphertext, &p),
        Err(OpenError::WrongNonceLength {
            alg: "AEAD_AES_128_GCM",
            expected: 12,
            found: 8
        })
    );
    let mut p = part.clone();
    p.content_hash.pop();
    assert_eq!(
        open(&ciphertext, &p),
        Err(OpenError::WrongHashLength {
            hash_alg: 1,
            expected: 32,
            found: 31
        })
    );
    let mut p = part;
    p.content_hash.clear();
    assert!(matches!(
        validate_part(&p),
        Err(OpenError::WrongHashLength { found: 0, .. })
    ));
}

#[test]
fn a_ciphertext_shorter_than_a_tag_is_refused_after_the_hash() {
    let (_, mut part) = sealed(AeadAlgorithm::Aes128Gcm, b"x");
    let short = [1u8, 2, 3];
    part.content_hash = HashAlgorithm::Sha256.digest(&short);
    assert_eq!(
        open(&short, &part),
        Err(OpenError::CiphertextTooShort { len: 3 })
    );
}

#[test]
fn unencrypted_content_only_checks_the_hash() {
    let body = b"public sticker".to_vec();
    let part = ExternalPart {
        url: URL.into(),
        enc_alg: ENC_ALG_NONE,
        hash_alg: 1,
        content_hash: HashAlgorithm::Sha256.digest(&body),
        ..ExternalPart::default()
    };
    assert_eq!(open(&body, &part), Ok(body.clone()));
    assert_eq!(open(b"other sticker", &part), Err(OpenError::HashMismatch));
    let mut keyed = part.clone();
    keyed.key = vec![0; 16];
    assert_eq!(
        open(&body, &keyed),
        Err(OpenError::KeyMaterialWithoutEncryption)
    );
    let mut with_aad = part;
    with_aad.aad = vec![1];
    assert_eq!(
        validate_part(&with_aad),
        Err(OpenError::KeyMaterialWithoutEncryption)
    );
}

#[test]
fn longer_hashes_are_accepted_on_open() {
    let (ciphertext, mut part) = sealed(AeadAlgorithm::Aes128Gcm, b"x");
    for h in [HashAlgorithm::Sha384, HashAlgorithm::Sha512] {
        part.hash_alg = h.id();
        part.content_hash = h.digest(&ciphertext);
        assert_eq!(open(&ciphertext, &part), Ok(b"x".to_vec()));
    }
}

#[test]
fn validate_part_accepts_what_seal_produces() {
    for alg in AeadAlgorithm::ALL {
        let (_, part) = sealed(alg, b"x");
        assert_eq!(validate_part(&part), Ok(()));
    }
}

#[test]
fn errors_read_as_sentences() {
    assert_eq!(
        OpenError::HashMismatch.to_string(),
        "the downloaded asset does not match the content hash in the message"
    );
    assert!(
        OpenError::UnsupportedAlgorithm { enc_alg: 3 }
            .to_string()
            .starts_with("unsupported encryption algorithm 3")
    );
}

/// One AEAD known-answer vector.
struct Kat<'a> {
    alg: AeadAlgorithm,
    key: &'a str,
    nonce: &'a str,
    aad: &'a str,
    plaintext: &'a [u8],
    first_block: &'a str,
    tag: &'a str,
}

/// The AES-GCM test vectors of McGrew and Viega, "The Galois/Counter Mode
/// of Operation", test cases 4 (AES-128) and 16 (AES-256), and the
/// ChaCha20-Poly1305 AEAD vector of RFC 8439 §2.8.2: the numbers map to the
/// right ciphers and the tag is appended.
#[test]
fn known_answers() {
    let gcm_p = unhex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    let gcm_aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    let gcm_iv = "cafebabefacedbaddecaf888";
    let cases = [
        Kat {
            alg: AeadAlgorithm::Aes128Gcm,
            key: "feffe9928665731c6d6a8f9467308308",
            nonce: gcm_iv,
            aad: gcm_aad,
            plaintext: &gcm_p,
            first_block: "42831ec2217774244b7221b784d0d49c",
            tag: "5bc94fbc3221a5db94fae95ae7121a47",
        },
        Kat {
            alg: AeadAlgorithm::Aes256Gcm,
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: gcm_iv,
            aad: gcm_aad,
            plaintext: &gcm_p,
            first_block: "522dc1f099567d07f47f37a32a84427d",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b",
        },
        Kat {
            alg: AeadAlgorithm::ChaCha20Poly1305,
            key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
            nonce: "070000004041424344454647",
            aad: "50515253c0c1c2c3c4c5c6c7",
            plaintext: b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
            first_block: "d31a8d34648e60db7b86afbc53ef7ec2",
            tag: "1ae10b594f09e26a7e902ecbd0600691",
        },
    ];
    for k in cases {
        let alg = k.alg;
        let asset = seal_with_key(
            alg,
            k.plaintext,
            &unhex(k.aad),
            Zeroizing::new(unhex(k.key)),
            unhex(k.nonce),
        )
        .expect("seal");
        let ct = &asset.ciphertext;
        assert_eq!(ct.len(), k.plaintext.len() + TAG_LEN, "{alg:?}");
        assert_eq!(ct[..16], unhex(k.first_block)[..], "{alg:?} ciphertext");
        assert_eq!(ct[ct.len() - TAG_LEN..], unhex(k.tag)[..], "{alg:?} tag");
        let part = asset.external_part(URL, "application/octet-stream");
        assert_eq!(open(ct, &part).as_deref(), Ok(k.plaintext), "{alg:?}");
    }
}

fn any_alg() -> impl Strategy<Value = AeadAlgorithm> {
    prop::sample::select(AeadAlgorithm::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_round_trip(alg in any_alg(), plaintext in prop::collection::vec(any::<u8>(), 0..2048)) {
        let (ciphertext, part) = sealed(alg, &plaintext);
        prop_assert_eq!(open(&ciphertext, &part), Ok(plaintext));
    }

    #[test]
    fn prop_any_flipped_bit_is_refused(
        alg in any_alg(),
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
        index in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (mut ciphertext, mut part) = sealed(alg, &plaintext);
        let i = index.index(ciphertext.len());
        ciphertext[i] ^= 1 << bit;
        prop_assert_eq!(open(&ciphertext, &part), Err(OpenError::HashMismatch));
        part.content_hash = HashAlgorithm::Sha256.digest(&ciphertext);
        prop_assert_eq!(open(&ciphertext, &part), Err(OpenError::TagMismatch));
    }

    /// Arbitrary parts and bytes: an error or plaintext, never a panic.
    #[test]
    fn prop_open_never_panics(
        enc_alg in prop::sample::select(vec![0u16, 1, 2, 3, 29, 0xffff]),
        hash_alg in prop::sample::select(vec![0u8, 1, 2, 7, 8, 255]),
        key in prop::collection::vec(any::<u8>(), 0..40),
        nonce in prop::collection::vec(any::<u8>(), 0..16),
        hash in prop::collection::vec(any::<u8>(), 0..70),
        downloaded in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let part = ExternalPart { enc_alg, hash_alg, key, nonce, content_hash: hash, ..ExternalPart::default() };
        let _ = open(&downloaded, &part);
    }
}
