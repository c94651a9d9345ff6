//! Network contracts.

use tally_chain::ChainParams;
use tally_core::{Committee, Mode, NetworkContract, first_voter};
use tally_tracker::check::Networks;

/// `network_contract`: a contract file's text as `tally` reads one handed to it
/// ([`NetworkContract::from_json`]: parse, then check), then what every node, wallet and
/// tracker derives from it.
///
/// Properties of an accepted contract: its canonical bytes and its pretty form both parse
/// back to an equal contract with the same network id (the id every signature binds is
/// stable across the forms it is written in); a quorum contract's committee builds, with a
/// quorum that is a majority of more than two thirds and within the committee, and every
/// first voter within it; a proof-of-work contract's chain parameters build or are refused
/// with an error; and a tracker can serve it.
pub fn network_contract(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(contract) = NetworkContract::from_json(text) else {
        return;
    };
    let id = contract.id();
    let canonical = contract.canonical_bytes();
    let back = std::str::from_utf8(&canonical)
        .ok()
        .map(NetworkContract::from_json);
    assert!(
        matches!(&back, Some(Ok(back)) if *back == contract && back.id() == id),
        "a contract's canonical bytes do not read back: {back:?}"
    );
    let pretty = NetworkContract::from_json(&contract.to_pretty_json());
    assert!(
        pretty
            .as_ref()
            .is_ok_and(|p| *p == contract && p.id() == id),
        "a contract's pretty form does not read back: {pretty:?}"
    );
    assert!(contract.genesis_supply().is_some());
    match contract.mode {
        Mode::Quorum => {
            let committee = Committee::new(&contract.validators);
            let Ok(committee) = committee else {
                panic!("a checked quorum contract's committee is refused: {committee:?}");
            };
            let size = committee.size();
            assert_eq!(size, contract.validators.len());
            let quorum = committee.quorum();
            assert!(
                quorum <= size && 3 * quorum > 2 * size,
                "quorum {quorum} of {size}"
            );
            assert!(committee.max_faulty() < quorum);
            for validator in &contract.validators {
                assert!(first_voter(&validator.key, size) < size);
                assert!(committee.position(&validator.key).is_some());
            }
        }
        Mode::Pow => {
            if let Ok(params) = ChainParams::from_contract(&contract) {
                assert_eq!(params.network, id);
                let _ = params.supply_at(u64::MAX);
                let _ = params.is_retarget_height(params.retarget_window);
            }
        }
    }
    let networks = Networks::from_contracts(std::slice::from_ref(&contract));
    assert!(networks.get(&id).is_some());
}
