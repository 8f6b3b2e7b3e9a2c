//! Shared fixtures for the `msgs_*` tests: real openmls objects, built once.
#![allow(dead_code)]

use std::sync::LazyLock;

use mimi_protocol::msgs::CipherSuite;
use mimi_protocol::{IdentifierUri, decode_exact};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::OpenMlsProvider;
use openmls::prelude::tls_codec::{Deserialize, Serialize, VLBytes};
use openmls::prelude::{
    AppDataDictionary, BasicCredential, Capabilities, Ciphersuite, Credential, CredentialType,
    CredentialWithKey, ExtensionType, ExternalSender, KeyPackage, KeyPackageIn, MlsGroup,
    MlsGroupCreateConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut,
    PURE_CIPHERTEXT_WIRE_FORMAT_POLICY, PURE_PLAINTEXT_WIRE_FORMAT_POLICY, ProposalType,
    RatchetTreeIn, RequiredCapabilitiesExtension, SignaturePublicKey, Welcome,
    hash_ref::ProposalRef,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::{OpenMlsRustCrypto, RustCrypto};
use proptest::prelude::*;
use proptest::sample::select;

pub const CS: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

pub struct Fixtures {
    pub signer: SignatureKeyPair,
    pub credentials: Vec<Credential>,
    pub signature_keys: Vec<SignaturePublicKey>,
    pub key_packages: Vec<KeyPackageIn>,
    pub capabilities: Vec<Capabilities>,
    pub required_capabilities: Vec<RequiredCapabilitiesExtension>,
    pub external_senders: Vec<ExternalSender>,
    pub welcome: Welcome,
    pub group_info: VerifiableGroupInfo,
    pub ratchet_tree: RatchetTreeIn,
    /// PublicMessage / PrivateMessage commits.
    pub commits: Vec<MlsMessageIn>,
    /// PublicMessage / PrivateMessage proposals.
    pub proposals: Vec<MlsMessageIn>,
    /// PrivateMessage application messages.
    pub applications: Vec<MlsMessageIn>,
    /// An MLSMessage with Welcome wire format.
    pub welcome_message: MlsMessageIn,
    /// MLSMessages with GroupInfo / KeyPackage wire formats.
    pub group_info_message: MlsMessageIn,
    pub key_package_message: MlsMessageIn,
    pub proposal_refs: Vec<ProposalRef>,
}

fn to_in(out: &MlsMessageOut) -> MlsMessageIn {
    decode_exact(&out.tls_serialize_detached().unwrap()).unwrap()
}

fn identity(provider: &OpenMlsRustCrypto, name: &str) -> (SignatureKeyPair, CredentialWithKey) {
    let signer = SignatureKeyPair::new(CS.signature_algorithm()).unwrap();
    signer.store(provider.storage()).unwrap();
    let credential: Credential = BasicCredential::new(name.as_bytes().to_vec()).into();
    let cwk = CredentialWithKey {
        credential,
        signature_key: signer.to_public_vec().into(),
    };
    (signer, cwk)
}

fn key_package(
    provider: &OpenMlsRustCrypto,
    signer: &SignatureKeyPair,
    cwk: &CredentialWithKey,
) -> KeyPackage {
    KeyPackage::builder()
        .build(CS, provider, signer, cwk.clone())
        .unwrap()
        .key_package()
        .clone()
}

fn build() -> Fixtures {
    let provider = OpenMlsRustCrypto::default();
    let (alice_signer, alice) = identity(&provider, "mimi://a.example/u/alice");
    let (bob_signer, bob) = identity(&provider, "mimi://b.example/u/bob");
    let (carol_signer, carol) = identity(&provider, "mimi://c.example/u/carol");
    let bob_kp = key_package(&provider, &bob_signer, &bob);
    let carol_kp = key_package(&provider, &carol_signer, &carol);
    let carol_kp2 = key_package(&provider, &carol_signer, &carol);

    // Group with PublicMessage handshakes.
    let config = MlsGroupCreateConfig::builder()
        .ciphersuite(CS)
        .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build();
    let mut group = MlsGroup::new(&provider, &alice_signer, &config, alice.clone()).unwrap();
    let (commit, welcome_out, _) = group
        .add_members(&provider, &alice_signer, std::slice::from_ref(&bob_kp))
        .unwrap();
    group.merge_pending_commit(&provider).unwrap();
    let welcome_message = to_in(&welcome_out);
    let MlsMessageBodyIn::Welcome(welcome) = welcome_message.clone().extract() else {
        panic!("not a welcome")
    };
    let group_info_message = to_in(
        &group
            .export_group_info(provider.crypto(), &alice_signer, false)
            .unwrap(),
    );
    let MlsMessageBodyIn::GroupInfo(group_info) = group_info_message.clone().extract() else {
        panic!("not a group info")
    };
    let ratchet_tree: RatchetTreeIn = group.export_ratchet_tree().into();
    let app_public_group = group
        .create_message(&provider, &alice_signer, b"hello")
        .unwrap();
    let (public_proposal, public_ref) = group
        .propose_add_member(&provider, &alice_signer, &carol_kp)
        .unwrap();

    // Group with PrivateMessage handshakes.
    let config = MlsGroupCreateConfig::builder()
        .ciphersuite(CS)
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .build();
    let mut group2 = MlsGroup::new(&provider, &alice_signer, &config, alice.clone()).unwrap();
    let app_private_group = group2
        .create_message(&provider, &alice_signer, b"secret")
        .unwrap();
    let (private_proposal, private_ref) = group2
        .propose_add_member(&provider, &alice_signer, &carol_kp2)
        .unwrap();
    let (private_commit, _, _) = group2
        .commit_to_pending_proposals(&provider, &alice_signer)
        .unwrap();
    group2.merge_pending_commit(&provider).unwrap();

    let key_package_message = to_in(&MlsMessageOut::from(bob_kp.clone()));

    let capabilities = vec![
        Capabilities::default(),
        bob_kp.leaf_node().capabilities().clone(),
    ];
    let required_capabilities = vec![
        RequiredCapabilitiesExtension::new(&[], &[], &[]),
        RequiredCapabilitiesExtension::new(
            &[ExtensionType::Unknown(0xff01)],
            &[ProposalType::SelfRemove],
            &[CredentialType::Basic],
        ),
    ];
    let credentials = vec![
        alice.credential.clone(),
        bob.credential.clone(),
        carol.credential.clone(),
    ];
    let signature_keys = vec![
        alice.signature_key.clone(),
        bob.signature_key.clone(),
        carol.signature_key.clone(),
    ];
    let external_senders = vec![
        ExternalSender::new(alice.signature_key.clone(), alice.credential.clone()),
        ExternalSender::new(bob.signature_key.clone(), bob.credential.clone()),
    ];

    Fixtures {
        signer: alice_signer,
        credentials,
        signature_keys,
        key_packages: vec![bob_kp.into(), carol_kp.into()],
        capabilities,
        required_capabilities,
        external_senders,
        welcome,
        group_info,
        ratchet_tree,
        commits: vec![to_in(&commit), to_in(&private_commit)],
        proposals: vec![to_in(&public_proposal), to_in(&private_proposal)],
        applications: vec![to_in(&app_public_group), to_in(&app_private_group)],
        welcome_message,
        group_info_message,
        key_package_message,
        proposal_refs: vec![public_ref, private_ref],
    }
}

pub static FX: LazyLock<Fixtures> = LazyLock::new(build);

pub fn fx() -> &'static Fixtures {
    &FX
}

/// The crypto provider for verification.
pub fn crypto() -> RustCrypto {
    RustCrypto::default()
}

// ---------- proptest strategies ----------

pub fn vlbytes(max: usize) -> impl Strategy<Value = VLBytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(VLBytes::new)
}

/// Sometimes long enough to need a 2-byte length prefix.
pub fn vlbytes_wide() -> impl Strategy<Value = VLBytes> {
    prop_oneof![vlbytes(8), vlbytes(200)]
}

pub fn uri() -> impl Strategy<Value = IdentifierUri> {
    prop_oneof![
        Just(IdentifierUri::new("mimi://a.example/u/alice")),
        Just(IdentifierUri::new("")),
        "[a-z0-9:/._-]{0,80}".prop_map(IdentifierUri::new),
    ]
}

pub fn cipher_suite() -> impl Strategy<Value = CipherSuite> {
    prop_oneof![
        Just(CipherSuite::from(CS)),
        any::<u16>().prop_map(CipherSuite)
    ]
}

pub fn tls_string() -> impl Strategy<Value = mimi_protocol::msgs::TlsString> {
    "\\PC{0,40}".prop_map(mimi_protocol::msgs::TlsString)
}

pub fn credential() -> impl Strategy<Value = Credential> {
    select(fx().credentials.clone())
}

pub fn signature_key() -> impl Strategy<Value = SignaturePublicKey> {
    select(fx().signature_keys.clone())
}

pub fn key_package_in() -> impl Strategy<Value = KeyPackageIn> {
    select(fx().key_packages.clone())
}

pub fn app_data_dictionary() -> impl Strategy<Value = AppDataDictionary> {
    prop::collection::btree_map(
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..20),
        0..4,
    )
    .prop_map(|m| {
        let mut d = AppDataDictionary::new();
        for (k, v) in m {
            d.insert(k, v);
        }
        d
    })
}

pub fn any_mls_message() -> impl Strategy<Value = MlsMessageIn> {
    let f = fx();
    let mut all = f.commits.clone();
    all.extend(f.proposals.clone());
    all.extend(f.applications.clone());
    select(all)
}

pub fn proposals() -> impl Strategy<Value = Vec<MlsMessageIn>> {
    prop::collection::vec(select(fx().proposals.clone()), 0..3)
}

/// Round trip: encode → decode → encode gives the same bytes and value.
pub fn round_trip<T>(value: &T) -> Vec<u8>
where
    T: Serialize + Deserialize + tls_codec::Size + PartialEq + std::fmt::Debug,
{
    let bytes = value.tls_serialize_detached().expect("encode");
    assert_eq!(
        bytes.len(),
        value.tls_serialized_len(),
        "Size disagrees with encoding"
    );
    let decoded: T = decode_exact(&bytes).expect("decode");
    assert_eq!(&decoded, value);
    assert_eq!(decoded.tls_serialize_detached().unwrap(), bytes);
    bytes
}

/// Every strict prefix fails to decode, and an extra byte is rejected as
/// trailing data.
pub fn assert_strict<T: Deserialize + std::fmt::Debug>(bytes: &[u8]) {
    for n in 0..bytes.len() {
        assert!(
            decode_exact::<T>(&bytes[..n]).is_err(),
            "prefix of length {n} of {} decoded",
            bytes.len()
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(matches!(
        decode_exact::<T>(&longer),
        Err(mimi_protocol::DecodeError::TrailingBytes(1))
    ));
}

/// Re-encodes the 1-byte varint length prefix at `offset` (value < 64) as a
/// non-minimal 2-byte prefix; decoding must fail.
pub fn assert_rejects_non_minimal<T: Deserialize + std::fmt::Debug>(bytes: &[u8], offset: usize) {
    let len = bytes[offset];
    assert!(len < 0x40, "not a 1-byte prefix at {offset}");
    let mut patched = bytes[..offset].to_vec();
    patched.extend([0x40, len]);
    patched.extend(&bytes[offset + 1..]);
    assert!(
        decode_exact::<T>(&patched).is_err(),
        "non-minimal length accepted"
    );
}
