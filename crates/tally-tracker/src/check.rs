//! Sans-I/O request validation: everything about a registration that can be judged from the
//! request, the served networks and the clock, before any signature is verified or anything
//! is stored. Cheap checks come first so that junk costs the tracker little.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use tally_core::{AccountId, NetworkContract, NetworkId, Signature, pow};
/// The refusals live with the packets (their text is the `Reason` sent); this path is kept
/// for existing callers.
pub use tally_proto::tracker::Refusal;
use tally_proto::tracker::{Registration, SignedBytes};

use crate::config::Limits;

/// What the tracker knows of a served network.
#[derive(Clone, Debug)]
pub struct NetworkInfo {
    /// The contract's name, for logs.
    pub name: String,
    /// Difficulty of a key's proof of work.
    pub intro_pow_bits: u32,
}

/// The served networks by id.
#[derive(Clone, Debug, Default)]
pub struct Networks {
    by_id: HashMap<NetworkId, NetworkInfo>,
}

impl Networks {
    /// The networks of these contracts.
    pub fn from_contracts(contracts: &[NetworkContract]) -> Self {
        Networks {
            by_id: contracts
                .iter()
                .map(|c| {
                    (
                        c.id(),
                        NetworkInfo {
                            name: c.name.clone(),
                            intro_pow_bits: c.intro_pow_bits,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The network with this id, if served.
    pub fn get(&self, id: &NetworkId) -> Option<&NetworkInfo> {
        self.by_id.get(id)
    }

    /// The ids served.
    pub fn ids(&self) -> impl Iterator<Item = &NetworkId> {
        self.by_id.keys()
    }

    /// How many networks are served.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is served.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// One key of a checked registration, with what is left to verify.
#[derive(Clone)]
pub struct CheckedKey {
    pub account: AccountId,
    pub proof_of_work: u64,
    pub signature: Signature,
    /// The bytes the signature must cover.
    pub signed: SignedBytes,
    /// `None` while the key may still be stored; `Some` once it is refused.
    pub refused: Option<Refusal>,
}

/// A registration that passed every check but the signatures and the registry's own
/// (replay, limits).
#[derive(Clone)]
pub struct CheckedRegistration {
    pub network: NetworkId,
    /// Where peers should connect: the request's address, its unspecified IP replaced by
    /// the connection's.
    pub address: SocketAddr,
    /// The connection's IP: what the per-address limits count.
    pub source: IpAddr,
    pub timestamp: u64,
    pub keys: Vec<CheckedKey>,
}

impl CheckedRegistration {
    /// Whether any key may still be stored.
    pub fn any_pending(&self) -> bool {
        self.keys.iter().any(|k| k.refused.is_none())
    }
}

/// Normalises IPv4-mapped IPv6 addresses so one host counts once.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Checks a registration from `source` at `now` (ms since 1970). A request-level problem
/// refuses the whole request; a bad proof of work refuses only its key.
pub fn check_registration(
    reg: &Registration,
    source: IpAddr,
    now: u64,
    networks: &Networks,
    limits: &Limits,
) -> Result<CheckedRegistration, Refusal> {
    let info = networks.get(&reg.network).ok_or(Refusal::UnknownNetwork)?;
    if reg.keys.is_empty() {
        return Err(Refusal::NoKeys);
    }
    if reg.keys.len() > limits.max_keys_per_request {
        return Err(Refusal::TooManyKeys(limits.max_keys_per_request));
    }
    let sent: SocketAddr = reg
        .address
        .parse()
        .map_err(|_| Refusal::BadAddress(reg.address.chars().take(64).collect()))?;
    if sent.port() == 0 || sent.ip().is_multicast() {
        return Err(Refusal::BadAddress(reg.address.chars().take(64).collect()));
    }
    if now.abs_diff(reg.timestamp) > limits.skew_ms() {
        return Err(Refusal::ClockSkew(limits.skew_ms()));
    }
    let source = canonical_ip(source);
    let address = if sent.ip().is_unspecified() {
        SocketAddr::new(source, sent.port())
    } else {
        SocketAddr::new(canonical_ip(sent.ip()), sent.port())
    };
    // A key is listed only at the address it registers from, so one host cannot point
    // other nodes at a victim. A loopback source is the tracker's own host, which may name
    // any of its addresses (a node behind the same NAT, or a devnet).
    if address.ip() != source && !source.is_loopback() {
        return Err(Refusal::NotYourAddress(address.to_string()));
    }
    let mut seen = HashSet::with_capacity(reg.keys.len());
    let mut keys = Vec::with_capacity(reg.keys.len());
    for key in &reg.keys {
        if !seen.insert(key.fingerprint) {
            return Err(Refusal::DuplicateKey(key.fingerprint));
        }
        let refused =
            (!pow::check_intro_pow(&key.fingerprint, key.proof_of_work, info.intro_pow_bits))
                .then_some(Refusal::BadProof(info.intro_pow_bits));
        keys.push(CheckedKey {
            account: key.fingerprint,
            proof_of_work: key.proof_of_work,
            signature: key.signature,
            signed: SignedBytes::new(
                &reg.network,
                &key.fingerprint,
                key.proof_of_work,
                reg.timestamp,
                &sent,
            ),
            refused,
        });
    }
    Ok(CheckedRegistration {
        network: reg.network,
        address,
        source,
        timestamp: reg.timestamp,
        keys,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tally_core::{Amount, Mode, SecretKey, ValidatorInfo};
    use tally_proto::tracker::KeyEntry;

    pub(crate) fn contract(bits: u32) -> NetworkContract {
        NetworkContract {
            name: "t".into(),
            mode: Mode::Quorum,
            unit: "cash".into(),
            faucet: Amount::from_microcash(1),
            intro_pow_bits: bits,
            validators: vec![ValidatorInfo {
                key: SecretKey::from_bytes([9; 32]).account(),
                address: "127.0.0.1:2222".into(),
            }],
            tracker: None,
            genesis: vec![],
            pow: None,
            max_clock_skew_ms: None,
        }
    }

    fn reg(network: NetworkId, key: &SecretKey, bits: u32, address: &str, ts: u64) -> Registration {
        let nonce = pow::IntroPowHasher::new(&key.account())
            .search(0..10_000_000, bits)
            .unwrap();
        let sent: SocketAddr = address.parse().unwrap_or(SocketAddr::from(([0; 4], 1)));
        let signed = SignedBytes::new(&network, &key.account(), nonce, ts, &sent);
        Registration {
            network,
            address: address.into(),
            timestamp: ts,
            keys: vec![KeyEntry {
                fingerprint: key.account(),
                proof_of_work: nonce,
                signature: key.sign(signed.as_bytes()),
            }],
            max: None,
        }
    }

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn a_key_is_listed_only_at_the_address_it_registers_from() {
        let c = contract(8);
        let nets = Networks::from_contracts(std::slice::from_ref(&c));
        let key = SecretKey::from_bytes([2; 32]);
        let pointing_at_a_victim = reg(c.id(), &key, 8, "192.0.2.50:2222", NOW);
        let attacker: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(
            check_registration(
                &pointing_at_a_victim,
                attacker,
                NOW,
                &nets,
                &Limits::DEFAULT
            )
            .err(),
            Some(Refusal::NotYourAddress("192.0.2.50:2222".into()))
        );
        let own = reg(c.id(), &key, 8, "198.51.100.9:2222", NOW);
        assert!(check_registration(&own, attacker, NOW, &nets, &Limits::DEFAULT).is_ok());
        // The tracker's own host may name any of its addresses.
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            check_registration(&pointing_at_a_victim, local, NOW, &nets, &Limits::DEFAULT).is_ok()
        );
    }

    #[test]
    fn a_good_registration_passes_and_unspecified_ip_becomes_the_source() {
        let c = contract(8);
        let nets = Networks::from_contracts(std::slice::from_ref(&c));
        let key = SecretKey::from_bytes([2; 32]);
        let r = reg(c.id(), &key, 8, "0.0.0.0:2222", NOW);
        let src: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        let checked = check_registration(&r, src, NOW, &nets, &Limits::DEFAULT).unwrap();
        assert_eq!(checked.address, "10.0.0.7:2222".parse().unwrap());
        assert_eq!(checked.source, "10.0.0.7".parse::<IpAddr>().unwrap());
        assert!(checked.keys[0].refused.is_none());
        assert!(key.account().verify(
            &checked.keys[0].signature,
            checked.keys[0].signed.as_bytes()
        ));
    }

    #[test]
    fn request_level_problems_refuse_the_request() {
        let c = contract(4);
        let nets = Networks::from_contracts(std::slice::from_ref(&c));
        let key = SecretKey::from_bytes([3; 32]);
        let src: IpAddr = "127.0.0.1".parse().unwrap();
        let l = Limits::DEFAULT;
        let other = contract(5).id();
        let check = |r: &Registration| check_registration(r, src, NOW, &nets, &l);
        assert_eq!(
            check(&reg(other, &key, 4, "1.2.3.4:5", NOW)).err(),
            Some(Refusal::UnknownNetwork)
        );
        assert_eq!(
            Refusal::UnknownNetwork.to_string(),
            "unknown network",
            "the reason text is part of the protocol"
        );
        for bad in ["1.2.3.4", "1.2.3.4:0", "example.com:80", "", "224.0.0.1:5"] {
            assert!(matches!(
                check(&reg(c.id(), &key, 4, bad, NOW)),
                Err(Refusal::BadAddress(_))
            ));
        }
        assert!(matches!(
            check(&reg(c.id(), &key, 4, "1.2.3.4:5", NOW - l.skew_ms() - 1)),
            Err(Refusal::ClockSkew(_))
        ));
        assert!(matches!(
            check(&reg(c.id(), &key, 4, "1.2.3.4:5", NOW + l.skew_ms() + 1)),
            Err(Refusal::ClockSkew(_))
        ));
        let mut empty = reg(c.id(), &key, 4, "1.2.3.4:5", NOW);
        empty.keys.clear();
        assert_eq!(check(&empty).err(), Some(Refusal::NoKeys));
        let mut dup = reg(c.id(), &key, 4, "1.2.3.4:5", NOW);
        dup.keys.push(dup.keys[0].clone());
        assert!(matches!(check(&dup), Err(Refusal::DuplicateKey(_))));
        let mut many = reg(c.id(), &key, 4, "1.2.3.4:5", NOW);
        for i in 0..l.max_keys_per_request {
            let mut k = many.keys[0].clone();
            k.fingerprint = SecretKey::from_bytes([100 + i as u8; 32]).account();
            many.keys.push(k);
        }
        assert!(matches!(check(&many), Err(Refusal::TooManyKeys(16))));
    }

    #[test]
    fn a_bad_proof_refuses_only_its_key() {
        let c = contract(12);
        let nets = Networks::from_contracts(std::slice::from_ref(&c));
        let good = SecretKey::from_bytes([4; 32]);
        let mut r = reg(c.id(), &good, 12, "1.2.3.4:5", NOW);
        let bad = SecretKey::from_bytes([5; 32]);
        let mut nonce = 0;
        while pow::check_intro_pow(&bad.account(), nonce, 12) {
            nonce += 1;
        }
        r.keys.push(KeyEntry {
            fingerprint: bad.account(),
            proof_of_work: nonce,
            signature: bad.sign(b"whatever"),
        });
        let src: IpAddr = "127.0.0.1".parse().unwrap();
        let checked = check_registration(&r, src, NOW, &nets, &Limits::DEFAULT).unwrap();
        assert!(checked.keys[0].refused.is_none());
        assert_eq!(checked.keys[1].refused, Some(Refusal::BadProof(12)));
        assert!(checked.any_pending());
    }
}
