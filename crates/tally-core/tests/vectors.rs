//! The test vectors PROTOCOL.md publishes (§6). If one of these changes, the protocol
//! changed. Each computed value must equal the one the document shows under its label, so
//! the two cannot drift apart; most are pinned here too ([`EXPECTED`]), the intro's are read
//! from the document alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tally_core::pow::check_intro_pow;
use tally_core::{
    Amount, Certificate, Counterpart, Decode, Digest, Encode, EscrowClaim, EscrowLock,
    EscrowRefund, EscrowSecret, IntroKey, NetworkContract, NetworkId, Order, Payment, SecretKey,
    SignedOrder, Split, Transfer, Vote,
};

/// The proof of work the intro vectors carry: the first nonce valid for alice's key at the
/// vectors' 8 bits (SHA-256 of `"<alice hex>_131"` starts `004d25b4`).
const INTRO_NONCE: u64 = 131;
/// Another valid proof for alice's key (`00a65173…`): the intro with it must have the very
/// same signing bytes, digest and signature.
const OTHER_INTRO_NONCE: u64 = 348;

/// The value PROTOCOL.md shows under the label `- **name**:`.
fn documented(name: &str) -> &'static str {
    tally_vectors::labelled(name)
}

fn alice_intro(proof_of_work: u64) -> Order {
    Order::IntroKey(IntroKey {
        account: SecretKey::from_bytes([0xa1; 32]).account(),
        proof_of_work,
    })
}

/// The §6 vector contract.
fn contract() -> NetworkContract {
    tally_vectors::vector_contract()
}

fn vectors() -> Vec<(&'static str, String)> {
    let contract = contract();
    let network = contract.id();
    let alice = SecretKey::from_bytes([0xa1; 32]);
    let bob = SecretKey::from_bytes([0xb0; 32]);
    let transfer = Order::Transfer(Transfer {
        sender: alice.account(),
        recipient: bob.account(),
        amount: Amount::from_microcash(1_504_000),
        sequence: 0,
    });
    let signed = SignedOrder::sign(transfer.clone(), &alice, &network);
    let digest = transfer.digest(&network);
    let vote = Vote::sign(&SecretKey::from_bytes([0x10; 32]), &network, &digest);
    let intro = alice_intro(INTRO_NONCE);
    let signed_intro = SignedOrder::sign(intro.clone(), &alice, &network);
    let votes: Vec<Vote> = (0..3u8)
        .map(|i| Vote::sign(&SecretKey::from_bytes([0x10 + i; 32]), &network, &digest))
        .collect();
    let certificate = Certificate::new(signed.clone(), &network, votes);
    let split = split_order(&alice, &bob);
    let escrow_lock = SignedOrder::sign(escrow_lock_order(&alice, &bob), &alice, &network);
    let escrow = escrow_lock.order.digest(&network);
    let claim = Order::EscrowClaim(EscrowClaim {
        escrow,
        secret: escrow_secret(),
    });
    let refund = Order::EscrowRefund(EscrowRefund { escrow });
    vec![
        (
            "validator-0 key",
            SecretKey::from_bytes([0x10; 32]).account().to_hex(),
        ),
        ("alice account", alice.account().to_hex()),
        ("bob account", bob.account().to_hex()),
        (
            "contract canonical bytes",
            String::from_utf8(contract.canonical_bytes()).unwrap(),
        ),
        ("network id", network.to_string()),
        (
            "transfer signing bytes",
            hex::encode(transfer.signing_bytes(&network)),
        ),
        ("transfer digest", digest.to_hex()),
        ("transfer signature", signed.signature.to_hex()),
        (
            "vote signing bytes",
            hex::encode(Vote::signing_bytes(&network, &digest)),
        ),
        ("vote signature", vote.signature.to_hex()),
        (
            "intro signing bytes",
            hex::encode(intro.signing_bytes(&network)),
        ),
        ("intro digest", intro.digest(&network).to_hex()),
        ("intro signature", signed_intro.signature.to_hex()),
        ("transfer encoding", hex::encode(transfer.to_bytes())),
        ("intro encoding", hex::encode(intro.to_bytes())),
        ("signed transfer encoding", hex::encode(signed.to_bytes())),
        ("vote encoding", hex::encode(vote.to_bytes())),
        ("certificate encoding", hex::encode(certificate.to_bytes())),
        ("split encoding", hex::encode(split.to_bytes())),
        ("split digest", split.digest(&network).to_hex()),
        (
            "escrow secret hash lock",
            escrow_secret().hash_lock().to_hex(),
        ),
        (
            "escrow lock encoding",
            hex::encode(escrow_lock.order.to_bytes()),
        ),
        (
            "escrow lock signing bytes",
            hex::encode(escrow_lock.order.signing_bytes(&network)),
        ),
        ("escrow id", escrow.to_hex()),
        ("escrow lock signature", escrow_lock.signature.to_hex()),
        ("escrow claim encoding", hex::encode(claim.to_bytes())),
        ("escrow claim digest", claim.digest(&network).to_hex()),
        ("escrow refund encoding", hex::encode(refund.to_bytes())),
        ("escrow refund digest", refund.digest(&network).to_hex()),
    ]
}

/// The escrow vectors' secret: 32 × `0x5e`.
fn escrow_secret() -> EscrowSecret {
    EscrowSecret::from([0x5e; 32])
}

/// Alice locks 2 cash for bob under the secret's hash lock, sequence 2, deadline
/// 1,700,000,060,000 ms, citing network 32 × `0xbb` and quote 32 × `0x9a` (no escrow).
fn escrow_lock_order(alice: &SecretKey, bob: &SecretKey) -> Order {
    Order::from(EscrowLock {
        payer: alice.account(),
        sequence: 2,
        payee: bob.account(),
        amount: Amount::from_microcash(2_000_000),
        hash_lock: escrow_secret().hash_lock(),
        deadline: 1_700_000_060_000,
        counterpart: Some(Counterpart {
            network: NetworkId(Digest::from([0xbb; 32])),
            escrow: None,
            quote: Some(Digest::from([0x9a; 32])),
        }),
    })
}

/// Alice pays bob 1 cash and carol (32 × `0xc0`) 0.5 cash in one split, sequence 1.
fn split_order(alice: &SecretKey, bob: &SecretKey) -> Order {
    Order::Split(Split {
        sender: alice.account(),
        sequence: 1,
        outputs: vec![
            Payment {
                recipient: bob.account(),
                amount: Amount::from_microcash(1_000_000),
            },
            Payment {
                recipient: SecretKey::from_bytes([0xc0; 32]).account(),
                amount: Amount::from_microcash(500_000),
            },
        ],
    })
}

/// The vectors pinned here as well as in the document (the intro's are in the document
/// only, see [`documented`]).
const EXPECTED: &[(&str, &str)] = &[
    (
        "validator-0 key",
        "5c9c6df261c9cb840475776aaefcd944b405328fab28f9b3a95ef40490d3de84",
    ),
    (
        "alice account",
        "bc7cbcb5636375fa1d82434d466724d92377f53b980695dd49d26d0ce12205a5",
    ),
    (
        "bob account",
        "705fbac01f5519899f437bc42e40255ae9ab54bff00de3433af7d687d9e71ad5",
    ),
    (
        "contract canonical bytes",
        "{\"name\":\"vectors\",\"mode\":\"quorum\",\"unit\":\"cash\",\"faucet\":10000000,\"intro_pow_bits\":8,\"validators\":[{\"key\":\"5c9c6df261c9cb840475776aaefcd944b405328fab28f9b3a95ef40490d3de84\",\"address\":\"127.0.0.1:2222\"},{\"key\":\"d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737\",\"address\":\"127.0.0.1:2224\"},{\"key\":\"204040e364c10f2bec9c1fe500a1cd4c247c89d650a01ed7e82caba867877c21\",\"address\":\"127.0.0.1:2226\"},{\"key\":\"66cd608b928b88e50e0efeaa33faf1c43cefe07294b0b87e9fe0aba6a3cf7633\",\"address\":\"127.0.0.1:2228\"}]}",
    ),
    (
        "network id",
        "9faf0350da749c939336c212d295409767f30cd0d7354b10c16a907e1f837d22",
    ),
    (
        "transfer signing bytes",
        "54414c4c592d4f524445522d56319faf0350da749c939336c212d295409767f30cd0d7354b10c16a907e1f837d2202bc7cbcb5636375fa1d82434d466724d92377f53b980695dd49d26d0ce12205a5705fbac01f5519899f437bc42e40255ae9ab54bff00de3433af7d687d9e71ad500f31600000000000000000000000000",
    ),
    (
        "transfer digest",
        "6e60b35b3598cd5418091610706f74083b1bc7228e07dd76243bc53a5bc5121d",
    ),
    (
        "transfer signature",
        "149ebc7521115d288351cfbf183fecd4071cd982a8c68a813e4edb7466b6b941940e3e14d4686aaae81f29f576b8b839846e487ba98ced6f6abcbb7483b93c0d",
    ),
    (
        "vote signing bytes",
        "54414c4c592d564f54452d56319faf0350da749c939336c212d295409767f30cd0d7354b10c16a907e1f837d226e60b35b3598cd5418091610706f74083b1bc7228e07dd76243bc53a5bc5121d",
    ),
    (
        "vote signature",
        "7db060c512edb88956f7dc0516e6287410fee8ebd60135d0c4eb84229e56b5d2b9d4d7b93e3e35978ce0297210aad2b1da45f881238244510a28865158ac6d00",
    ),
    (
        "transfer encoding",
        "02bc7cbcb5636375fa1d82434d466724d92377f53b980695dd49d26d0ce12205a5705fbac01f5519899f437bc42e40255ae9ab54bff00de3433af7d687d9e71ad500f31600000000000000000000000000",
    ),
    (
        "signed transfer encoding",
        "02bc7cbcb5636375fa1d82434d466724d92377f53b980695dd49d26d0ce12205a5705fbac01f5519899f437bc42e40255ae9ab54bff00de3433af7d687d9e71ad500f31600000000000000000000000000149ebc7521115d288351cfbf183fecd4071cd982a8c68a813e4edb7466b6b941940e3e14d4686aaae81f29f576b8b839846e487ba98ced6f6abcbb7483b93c0d",
    ),
    (
        "vote encoding",
        "5c9c6df261c9cb840475776aaefcd944b405328fab28f9b3a95ef40490d3de847db060c512edb88956f7dc0516e6287410fee8ebd60135d0c4eb84229e56b5d2b9d4d7b93e3e35978ce0297210aad2b1da45f881238244510a28865158ac6d00",
    ),
    (
        "certificate encoding",
        "02bc7cbcb5636375fa1d82434d466724d92377f53b980695dd49d26d0ce12205a5705fbac01f5519899f437bc42e40255ae9ab54bff00de3433af7d687d9e71ad500f31600000000000000000000000000149ebc7521115d288351cfbf183fecd4071cd982a8c68a813e4edb7466b6b941940e3e14d4686aaae81f29f576b8b839846e487ba98ced6f6abcbb7483b93c0d6e60b35b3598cd5418091610706f74083b1bc7228e07dd76243bc53a5bc5121d030000005c9c6df261c9cb840475776aaefcd944b405328fab28f9b3a95ef40490d3de847db060c512edb88956f7dc0516e6287410fee8ebd60135d0c4eb84229e56b5d2b9d4d7b93e3e35978ce0297210aad2b1da45f881238244510a28865158ac6d00d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737091690a0e97257e72ea1e881844f61424556e155f11ceef41d903c601c99986ec3a7df0754abfc32113a5ff89205596126bff4bed4465901bdeec5d729393b09204040e364c10f2bec9c1fe500a1cd4c247c89d650a01ed7e82caba867877c2108ade33b15ad8fb620dc2e62d612011ceb1387f89af138c4d7a2e41455b03ceef9d01e3bea8a4cffe1ff4e9d30f04fda540bdbd9c14aa3bfe2c9b6e2a15ded08",
    ),
    (
        "split encoding",
        "03bc7cbcb5636375fa1d82434d466724d92377f53b980695dd49d26d0ce12205a5010000000000000002000000705fbac01f5519899f437bc42e40255ae9ab54bff00de3433af7d687d9e71ad540420f00000000005b9437adeaffbe8f41b13d96ed49d2f51cd6c266cd8ecc284b0552ec4912b8dd20a1070000000000",
    ),
    (
        "split digest",
        "04bb98fc26c74b7c2174464a1aa5f7d72869e8181b74c9f03b978d0815c2ae0d",
    ),
    (
        "escrow lock encoding",
        "04bc7cbcb5636375fa1d82434d466724d92377f53b980695dd49d26d0ce12205a50200000000000000705fbac01f5519899f437bc42e40255ae9ab54bff00de3433af7d687d9e71ad580841e00000000009985b2e4b9b71b28ce59ea5ce77f0b110637b625c6d7f41e982c9510940a20566052e6cf8b01000001bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb00019a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a",
    ),
    (
        "escrow id",
        "564b78bee228953e32ab8a63e76fdb6fc0afd7de5f753dd663fe6a7fa119c7ba",
    ),
    (
        "escrow claim encoding",
        "05564b78bee228953e32ab8a63e76fdb6fc0afd7de5f753dd663fe6a7fa119c7ba5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e",
    ),
    (
        "escrow refund digest",
        "ec7ec6772dbeb705252e911f4d7b7ade0e727d501d4ddad055a3e19a2546bd1f",
    ),
];

#[test]
fn the_encodings_decode_back_to_their_values() {
    let bytes = |name: &str| hex::decode(documented(name)).unwrap();
    let signed = SignedOrder::from_bytes(&bytes("signed transfer encoding")).unwrap();
    assert_eq!(
        Order::from_bytes(&bytes("transfer encoding")),
        Ok(signed.order.clone())
    );
    let intro = Order::from_bytes(&bytes("intro encoding")).unwrap();
    assert_eq!(intro, alice_intro(INTRO_NONCE));
    let certificate = Certificate::from_bytes(&bytes("certificate encoding")).unwrap();
    assert_eq!(certificate.signed_order(), signed);
    assert_eq!(certificate.votes.len(), 3);
    let committee = tally_core::Committee::new(&contract().validators).unwrap();
    assert!(certificate.verify(&committee, &contract().id()).is_ok());
    assert_eq!(
        Vote::from_bytes(&bytes("vote encoding")),
        Ok(certificate.votes[0])
    );
    let alice = SecretKey::from_bytes([0xa1; 32]);
    let bob = SecretKey::from_bytes([0xb0; 32]);
    assert_eq!(
        Order::from_bytes(&bytes("escrow lock encoding")),
        Ok(escrow_lock_order(&alice, &bob))
    );
    let Ok(Order::EscrowClaim(claim)) = Order::from_bytes(&bytes("escrow claim encoding")) else {
        panic!("the escrow claim encoding decodes to a claim");
    };
    assert_eq!(
        claim.secret.hash_lock().to_hex(),
        documented("escrow secret hash lock")
    );
    assert_eq!(claim.escrow.to_hex(), documented("escrow id"));
}

#[test]
fn published_vectors_hold() {
    let actual = vectors();
    if std::env::var_os("TALLY_PRINT_VECTORS").is_some() {
        for (name, value) in &actual {
            println!("(\"{name}\", \"{}\"),", value.replace('"', "\\\""));
        }
    }
    for (name, value) in &actual {
        assert_eq!(value, documented(name), "PROTOCOL.md's vector {name}");
        if let Some((_, expected)) = EXPECTED.iter().find(|(n, _)| n == name) {
            assert_eq!(value, expected, "{name}");
        }
    }
    for (name, _) in EXPECTED {
        assert!(actual.iter().any(|(n, _)| n == name), "{name} is computed");
    }
}

/// Protects DESIGN §3 (3), introductions cannot split, at the level of the published
/// bytes: the documented nonce is a valid proof, and alice's intro with another valid proof
/// has exactly the documented signing bytes and digest, and the documented signature
/// verifies for it, while its encoding differs only in the nonce. Fails if the nonce enters
/// the signing bytes again.
#[test]
fn every_valid_proof_gives_the_documented_intro_digest() {
    let contract = contract();
    let network = contract.id();
    let alice = SecretKey::from_bytes([0xa1; 32]).account();
    let bits = contract.intro_pow_bits;
    assert!(check_intro_pow(&alice, INTRO_NONCE, bits));
    assert!(check_intro_pow(&alice, OTHER_INTRO_NONCE, bits));
    let signature: tally_core::Signature = documented("intro signature").parse().unwrap();
    for nonce in [INTRO_NONCE, OTHER_INTRO_NONCE] {
        let intro = alice_intro(nonce);
        assert_eq!(
            hex::encode(intro.signing_bytes(&network)),
            documented("intro signing bytes")
        );
        assert_eq!(intro.digest(&network).to_hex(), documented("intro digest"));
        let signed = SignedOrder {
            order: intro.clone(),
            signature,
        };
        assert!(signed.verify(&network), "signature for nonce {nonce}");
    }
    let encoding = hex::decode(documented("intro encoding")).unwrap();
    let mut other = alice_intro(OTHER_INTRO_NONCE).to_bytes();
    assert_eq!(encoding[..33], other[..33]);
    other[33..].copy_from_slice(&INTRO_NONCE.to_le_bytes());
    assert_eq!(encoding, other);
}
