//! PROTOCOL.md §9's IPv6 registration vector, from the tracker's side: the client signs
//! exactly the documented `REGUP`, and the tracker's check takes the documented packet,
//! lays out the documented signing bytes for it and finds the documented signature valid.
//! The values are read from the document (the code block under each `- **label**:` line).
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use tally_core::{NetworkContract, SecretKey};
use tally_tracker::check::check_registration;
use tally_tracker::{Limits, Networks, Request, sign_registration};

/// The value PROTOCOL.md shows under the label `- **name**:`.
fn documented(name: &str) -> &'static str {
    tally_vectors::labelled(name)
}

/// The §6 vector contract.
fn contract() -> NetworkContract {
    tally_vectors::vector_contract()
}

const V0_POW: u64 = 568;
const REG_TIMESTAMP: u64 = 1_700_000_000_000;

fn documented_regup() -> tally_tracker::Registration {
    match serde_json::from_str(documented("IPv6 REGUP packet")).unwrap() {
        Request::RegUp(reg) => reg,
        other => panic!("a REGUP, not {other:?}"),
    }
}

#[test]
fn the_client_signs_the_documented_registration() {
    let contract = contract();
    assert_eq!(contract.id().to_string(), documented("network id"));
    let address: SocketAddr = "[2001:db8::10]:2222".parse().unwrap();
    let reg = sign_registration(
        contract.id(),
        address,
        REG_TIMESTAMP,
        &[(SecretKey::from_bytes([0x10; 32]), V0_POW)],
    );
    assert_eq!(reg, documented_regup());
    assert_eq!(
        serde_json::to_string(&Request::RegUp(reg)).unwrap(),
        documented("IPv6 REGUP packet")
    );
}

#[test]
fn the_tracker_accepts_the_documented_registration() {
    let networks = Networks::from_contracts(&[contract()]);
    let reg = documented_regup();
    let source = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));
    let checked =
        check_registration(&reg, source, REG_TIMESTAMP, &networks, &Limits::DEFAULT).unwrap();
    assert_eq!(checked.address, "[2001:db8::10]:2222".parse().unwrap());
    let [key] = &checked.keys[..] else {
        panic!("one key")
    };
    assert!(key.refused.is_none(), "the proof of work is valid");
    assert_eq!(key.account.to_hex(), documented("validator-0 key"));
    assert_eq!(
        hex::encode(key.signed.as_bytes()),
        documented("IPv6 registration signing bytes")
    );
    assert_eq!(
        key.signature.to_hex(),
        documented("IPv6 registration signature")
    );
    assert!(key.account.verify(&key.signature, key.signed.as_bytes()));

    // The signature binds the address: the same keys claiming another port do not verify.
    let mut moved = reg.clone();
    moved.address = "[2001:db8::10]:2223".into();
    let checked =
        check_registration(&moved, source, REG_TIMESTAMP, &networks, &Limits::DEFAULT).unwrap();
    let key = &checked.keys[0];
    assert!(!key.account.verify(&key.signature, key.signed.as_bytes()));
}
