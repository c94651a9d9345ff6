use super::*;
use crate::{Mode, NetworkContract, ValidatorInfo};

pub(crate) fn fixture() -> (Vec<SecretKey>, Committee, NetworkId) {
    let keys: Vec<SecretKey> = (0..4u8)
        .map(|i| SecretKey::from_bytes([0x10 + i; 32]))
        .collect();
    let validators: Vec<ValidatorInfo> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| ValidatorInfo {
            key: k.account(),
            address: format!("127.0.0.1:{}", 2222 + i),
        })
        .collect();
    let contract = NetworkContract {
        name: "vectors".into(),
        mode: Mode::Quorum,
        unit: "cash".into(),
        faucet: Amount::from_microcash(10_000_000),
        intro_pow_bits: 8,
        validators: validators.clone(),
        tracker: None,
        genesis: vec![],
        pow: None,
        max_clock_skew_ms: None,
    };
    let committee = Committee::new(&validators).unwrap_or_else(|e| panic!("{e}"));
    (keys, committee, contract.id())
}

fn transfer_order() -> (SecretKey, Order) {
    let alice = SecretKey::from_bytes([0xa1; 32]);
    let bob = SecretKey::from_bytes([0xb0; 32]);
    let order = Order::Transfer(Transfer {
        sender: alice.account(),
        recipient: bob.account(),
        amount: Amount::from_microcash(1_504_000),
        sequence: 0,
    });
    (alice, order)
}

#[test]
fn transfer_signing_bytes_follow_the_documented_layout() {
    let (_, _, network) = fixture();
    let (alice, order) = transfer_order();
    let bytes = order.signing_bytes(&network);
    assert_eq!(bytes.len(), 14 + 32 + 1 + 32 + 32 + 8 + 8);
    assert_eq!(&bytes[..14], b"TALLY-ORDER-V1");
    assert_eq!(&bytes[14..46], network.as_bytes());
    assert_eq!(bytes[46], 2);
    assert_eq!(&bytes[47..79], alice.account().as_bytes());
    assert_eq!(&bytes[111..119], &1_504_000u64.to_le_bytes());
    assert_eq!(&bytes[119..127], &0u64.to_le_bytes());
}

fn split_of(sender: &SecretKey, outputs: &[(u8, u64)]) -> Split {
    Split {
        sender: sender.account(),
        sequence: 0,
        outputs: outputs
            .iter()
            .map(|(seed, micro)| Payment {
                recipient: SecretKey::from_bytes([*seed; 32]).account(),
                amount: Amount::from_microcash(*micro),
            })
            .collect(),
    }
}

#[test]
fn a_split_is_valid_only_with_distinct_nonzero_outputs_that_add_up() {
    let alice = SecretKey::from_bytes([0xa1; 32]);
    assert_eq!(
        split_of(&alice, &[(1, 5), (2, 7)]).total(),
        Ok(Amount::from_microcash(12))
    );
    assert_eq!(
        split_of(&alice, &[]).total(),
        Err(SplitError::OutputCount(0))
    );
    let too_many: Vec<(u8, u64)> = (0..=MAX_SPLIT_OUTPUTS as u8).map(|i| (i, 1)).collect();
    assert_eq!(
        split_of(&alice, &too_many).total(),
        Err(SplitError::OutputCount(MAX_SPLIT_OUTPUTS + 1))
    );
    assert_eq!(
        split_of(&alice, &[(1, 5), (2, 0)]).total(),
        Err(SplitError::ZeroAmount)
    );
    assert_eq!(
        split_of(&alice, &[(1, 5), (1, 6)]).total(),
        Err(SplitError::DuplicateRecipient)
    );
    assert_eq!(
        split_of(&alice, &[(0xa1, 5)]).total(),
        Err(SplitError::PaysSender)
    );
    assert_eq!(
        split_of(&alice, &[(1, u64::MAX), (2, 1)]).total(),
        Err(SplitError::Overflow)
    );
}

#[test]
fn a_split_with_more_outputs_than_allowed_does_not_decode() {
    let alice = SecretKey::from_bytes([0xa1; 32]);
    let outputs: Vec<(u8, u64)> = (0..=MAX_SPLIT_OUTPUTS as u8).map(|i| (i, 1)).collect();
    let bytes = Order::Split(split_of(&alice, &outputs)).to_bytes();
    assert!(matches!(
        Order::from_bytes(&bytes),
        Err(DecodeError::TooMany { .. })
    ));
    let fits = Order::Split(split_of(&alice, &outputs[..MAX_SPLIT_OUTPUTS]));
    assert_eq!(Order::from_bytes(&fits.to_bytes()), Ok(fits));
}

#[test]
fn a_quorum_of_distinct_votes_makes_a_certificate() {
    let (keys, committee, network) = fixture();
    let (alice, order) = transfer_order();
    let signed = SignedOrder::sign(order.clone(), &alice, &network);
    assert!(signed.verify(&network));
    let digest = order.digest(&network);
    let votes: Vec<Vote> = keys[..3]
        .iter()
        .map(|k| Vote::sign(k, &network, &digest))
        .collect();
    let cert = Certificate::new(signed.clone(), &network, votes.clone());
    assert_eq!(cert.verify(&committee, &network), Ok(digest));

    let json = serde_json::to_string(&cert).unwrap_or_default();
    let back: Certificate = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, cert);

    let too_few = Certificate::new(signed.clone(), &network, votes[..2].to_vec());
    assert_eq!(
        too_few.verify(&committee, &network),
        Err(CertificateError::TooFewVotes { have: 2, need: 3 })
    );

    let duplicated = Certificate::new(signed.clone(), &network, vec![votes[0], votes[1], votes[0]]);
    assert_eq!(
        duplicated.verify(&committee, &network),
        Err(CertificateError::DuplicateSigner(votes[0].validator))
    );

    let outsider = SecretKey::from_bytes([0xee; 32]);
    let foreign = Certificate::new(
        signed,
        &network,
        vec![votes[0], votes[1], Vote::sign(&outsider, &network, &digest)],
    );
    assert_eq!(
        foreign.verify(&committee, &network),
        Err(CertificateError::NotInCommittee(outsider.account()))
    );

    let mut forged = cert.clone();
    forged.votes[2].signature = votes[0].signature;
    assert_eq!(
        forged.verify(&committee, &network),
        Err(CertificateError::BadVote(votes[2].validator))
    );
}

#[test]
fn duplicate_signers_survive_json_parsing_and_are_refused() {
    let (keys, committee, network) = fixture();
    let (alice, order) = transfer_order();
    let signed = SignedOrder::sign(order.clone(), &alice, &network);
    let digest = order.digest(&network);
    let v0 = Vote::sign(&keys[0], &network, &digest);
    let v1 = Vote::sign(&keys[1], &network, &digest);
    let json = format!(
        r#"{{"Order":{},"Sig":"{}","Checksum":"{}","Signatures":{{"{}":"{}","{}":"{}","{}":"{}"}}}}"#,
        serde_json::to_string(&order).unwrap_or_default(),
        signed.signature,
        digest,
        v0.validator,
        v0.signature,
        v1.validator,
        v1.signature,
        v0.validator,
        v0.signature
    );
    let cert: Certificate = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cert.votes.len(), 3);
    assert_eq!(
        cert.verify(&committee, &network),
        Err(CertificateError::DuplicateSigner(v0.validator))
    );
}

#[test]
fn a_vote_for_one_network_is_worthless_on_another() {
    let (keys, _, network) = fixture();
    let (_, order) = transfer_order();
    let other = NetworkId(sha256(&[b"another network"]));
    let vote = Vote::sign(&keys[0], &network, &order.digest(&network));
    assert!(vote.verify(&network, &order.digest(&network)));
    assert!(!vote.verify(&other, &order.digest(&other)));
    assert_ne!(order.digest(&network), order.digest(&other));
}

/// Two proofs of work that are valid for alice's key at the vectors' 8 bits (PROTOCOL.md
/// §6 uses the first).
const ALICE_NONCES: [u64; 2] = [131, 348];

fn alice_intro(proof_of_work: u64) -> (SecretKey, Order) {
    let alice = SecretKey::from_bytes([0xa1; 32]);
    let order = Order::IntroKey(IntroKey {
        account: alice.account(),
        proof_of_work,
    });
    (alice, order)
}

/// Protects the intro's signing-bytes layout: `tag ‖ network ‖ kind 1 ‖ account`, and no
/// proof of work (the old layout appended the nonce, 8 bytes more).
#[test]
fn intro_signing_bytes_leave_out_the_proof_of_work() {
    let (_, _, network) = fixture();
    let (alice, order) = alice_intro(ALICE_NONCES[0]);
    let bytes = order.signing_bytes(&network);
    assert_eq!(bytes.len(), 14 + 32 + 1 + 32);
    assert_eq!(&bytes[..14], b"TALLY-ORDER-V1");
    assert_eq!(&bytes[14..46], network.as_bytes());
    assert_eq!(bytes[46], KIND_INTRO_KEY);
    assert_eq!(&bytes[47..79], alice.account().as_bytes());
    // The encoding still carries the nonce, which validators check before voting.
    let encoded = order.to_bytes();
    assert_eq!(encoded.len(), 1 + 32 + 8);
    assert_eq!(&encoded[33..], &ALICE_NONCES[0].to_le_bytes());
    assert_eq!(Order::from_bytes(&encoded), Ok(order));
}

/// Protects DESIGN §3 (3), introductions cannot split: two valid proofs of work for one
/// key make one order as far as signatures and votes go (one digest), while each packet
/// keeps its own nonce. Fails if the nonce enters the signing bytes again.
#[test]
fn one_key_has_one_intro_digest_whatever_valid_nonce_it_carries() {
    let (_, _, network) = fixture();
    let (alice, a) = alice_intro(ALICE_NONCES[0]);
    let (_, b) = alice_intro(ALICE_NONCES[1]);
    for nonce in ALICE_NONCES {
        assert!(crate::pow::check_intro_pow(&alice.account(), nonce, 8));
    }
    assert_ne!(a, b);
    assert_ne!(a.to_bytes(), b.to_bytes());
    assert_eq!(a.signing_bytes(&network), b.signing_bytes(&network));
    assert_eq!(a.digest(&network), b.digest(&network));
    assert_eq!(a.lock_slot(), b.lock_slot());
    // The owner's signature made with one nonce holds for the other: what it signs is the
    // introduction of the key, not the proof.
    let signed_a = SignedOrder::sign(a, &alice, &network);
    let signed_b = SignedOrder {
        order: b,
        signature: signed_a.signature,
    };
    assert!(signed_b.verify(&network));
    // A different key is still a different order.
    let other = Order::IntroKey(IntroKey {
        account: SecretKey::from_bytes([0xb0; 32]).account(),
        proof_of_work: ALICE_NONCES[0],
    });
    assert_ne!(other.digest(&network), signed_b.order.digest(&network));
}

/// Protects that a certificate does not depend on the nonce it carries: votes given for
/// alice's intro sent with nonce A certify the same intro carried with nonce B, so every
/// validator treats the two certificates alike. Fails on the old layout (checksum
/// mismatch).
#[test]
fn votes_for_one_nonce_certify_the_intro_with_another() {
    let (keys, committee, network) = fixture();
    let (alice, a) = alice_intro(ALICE_NONCES[0]);
    let (_, b) = alice_intro(ALICE_NONCES[1]);
    let digest_a = a.digest(&network);
    let votes: Vec<Vote> = keys[..3]
        .iter()
        .map(|k| Vote::sign(k, &network, &digest_a))
        .collect();
    let signed_b = SignedOrder::sign(b, &alice, &network);
    let certificate = Certificate::new(signed_b.clone(), &network, votes);
    assert_eq!(certificate.checksum, digest_a);
    assert_eq!(certificate.verify(&committee, &network), Ok(digest_a));
    let back = Certificate::from_bytes(&certificate.to_bytes());
    assert_eq!(back.as_ref().map(|c| c.signed_order()), Ok(signed_b));
}
