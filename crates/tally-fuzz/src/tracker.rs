//! The tracker's requests.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use tally_core::pow::check_intro_pow;
use tally_proto::tracker::{Registration, Request};
use tally_tracker::check::{Networks, check_registration};
use tally_tracker::config::Limits;

use crate::vector_contract;

/// The networks the fuzzed tracker serves: the vectors' contract at 0 proof-of-work bits,
/// so every key's proof passes and the fuzzer reaches the signed bytes behind it.
fn networks() -> &'static (Networks, tally_core::NetworkId) {
    static NETWORKS: OnceLock<(Networks, tally_core::NetworkId)> = OnceLock::new();
    NETWORKS.get_or_init(|| {
        let mut contract = vector_contract();
        contract.intro_pow_bits = 0;
        let id = contract.id();
        (Networks::from_contracts(&[contract]), id)
    })
}

/// `tracker_request`: one frame body as the tracker's session reads it
/// ([`Request::parse`]), from any client on the internet.
///
/// Properties of an accepted request: it serializes ([`Request::to_json`]) and parses back
/// equal; and a registration goes through the tracker's whole sans-I/O check
/// ([`check_registration`], as if it named a served network, from the address and at the
/// time it claims) without panicking, every key it passes has its signed bytes built and
/// its signature checked, and the checked address is never port 0.
pub fn tracker_request(data: &[u8]) {
    let Ok(request) = Request::parse(data) else {
        return;
    };
    let json = request.to_json();
    let again = Request::parse(&json);
    assert!(
        again.as_ref().is_ok_and(|again| *again == request),
        "a tracker request does not survive serializing and parsing: {request:?} -> {again:?}"
    );
    match &request {
        Request::Reg(registration)
        | Request::RegUp(registration)
        | Request::Initialize(registration) => check(registration),
        Request::AcknowledgeList(_) | Request::List(_) => {}
    }
}

fn check(registration: &Registration) {
    let (networks, served) = networks();
    let registration = Registration {
        network: *served,
        ..registration.clone()
    };
    let limits = Limits::default();
    let source = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let Ok(checked) = check_registration(
        &registration,
        source,
        registration.timestamp,
        networks,
        &limits,
    ) else {
        return;
    };
    assert_ne!(
        checked.address.port(),
        0,
        "a registration for port 0 was accepted"
    );
    assert!(!checked.keys.is_empty() && checked.keys.len() <= limits.max_keys_per_request);
    for key in &checked.keys {
        assert_eq!(
            key.refused.is_none(),
            check_intro_pow(&key.account, key.proof_of_work, 0)
        );
        let _ = key.account.verify(&key.signature, key.signed.as_bytes());
    }
}
