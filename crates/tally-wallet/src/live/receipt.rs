//! The receipt of a live transfer (message 17, PROTOCOL.md §7 "LiveConnect transfer"): the
//! receiver's pown proofs. On a quorum network they are certificates, which anyone holding
//! the network contract can check offline, so the sender needs no trust in the receiver
//! to know its coins were taken; on a proof-of-work network they are the pown
//! transactions, which the sender checks against the chain.
//!
//! `receipt = base64 (RFC 4648 §4, padded) of: count u32 LE ‖ proof encoding × count`
//! (a certificate, §4, or a signed order, §3), 1 to [`MAX_RECEIPT_CERTIFICATES`] proofs,
//! nothing after the last.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tally_core::{Certificate, Committee, Decode, Denomination, Encode, NetworkId, Order, Reader};
use tally_live::CoinSummary;

/// Most certificates a receipt may hold: a coin bundle's bound.
pub const MAX_RECEIPT_CERTIFICATES: usize = 10_000;

/// Why a receipt is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not padded standard base64.
    #[error("the receipt is not base64")]
    NotBase64,
    /// The bytes are not a certificate list.
    #[error("the receipt does not decode: {0}")]
    Malformed(String),
    /// A certificate does not verify against the committee.
    #[error("certificate {index} does not verify: {why}")]
    Unverified { index: usize, why: String },
    /// A certificate is not a pown of one of the coins sent.
    #[error("certificate {index} is not a pown of a coin that was sent")]
    NotAPown { index: usize },
    /// Two certificates spend the same coin.
    #[error("the receipt names coin {0} twice")]
    Duplicate(String),
}

/// Encodes pown proofs (certificates or transactions) as a receipt.
pub fn encode_receipt<P: Encode>(proofs: &[P]) -> String {
    let mut bytes = Vec::new();
    let count = u32::try_from(proofs.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&count.to_le_bytes());
    for proof in proofs {
        proof.encode_to(&mut bytes);
    }
    STANDARD.encode(bytes)
}

/// Decodes a receipt into its proofs (not checked).
pub fn decode_receipt<P: Decode>(receipt_b64: &str) -> Result<Vec<P>, ReceiptError> {
    let bytes = STANDARD
        .decode(receipt_b64.trim())
        .map_err(|_| ReceiptError::NotBase64)?;
    let mut reader = Reader::new(&bytes);
    let malformed = |e: tally_core::DecodeError| ReceiptError::Malformed(e.to_string());
    let count = reader.u32().map_err(malformed)? as usize;
    if count == 0 || count > MAX_RECEIPT_CERTIFICATES {
        return Err(ReceiptError::Malformed(format!(
            "{count} certificates, 1 to {MAX_RECEIPT_CERTIFICATES} allowed"
        )));
    }
    if count > reader.remaining() / P::MIN_ENCODED_LEN.max(1) {
        return Err(ReceiptError::Malformed(format!(
            "{count} certificates cannot fit in {} bytes",
            reader.remaining()
        )));
    }
    let mut proofs = Vec::with_capacity(count);
    for _ in 0..count {
        proofs.push(reader.read::<P>().map_err(malformed)?);
    }
    reader.finish().map_err(malformed)?;
    Ok(proofs)
}

/// Checks a receipt for the coins `sent`: every certificate verifies against `committee`
/// on `network`, and each is a pown (a whole-value transfer of sequence 0) of a distinct
/// coin that was sent. Returns the coins it shows powned; whether that is all of them is
/// the sender machine's check.
pub fn check_receipt(
    receipt_b64: &str,
    committee: &Committee,
    network: &NetworkId,
    sent: &[CoinSummary],
) -> Result<Vec<CoinSummary>, ReceiptError> {
    let certificates: Vec<Certificate> = decode_receipt(receipt_b64)?;
    let mut powned: Vec<CoinSummary> = Vec::with_capacity(certificates.len());
    for (index, certificate) in certificates.iter().enumerate() {
        certificate
            .verify(committee, network)
            .map_err(|e| ReceiptError::Unverified {
                index,
                why: e.to_string(),
            })?;
        powned.push(check_pown(&certificate.order, index, sent, &powned)?);
    }
    Ok(powned)
}

/// The sent coin that `order` (the receipt's proof number `index`) powns: a whole-value
/// transfer of sequence 0 from a coin that was sent and is not in `powned` yet.
pub(crate) fn check_pown(
    order: &Order,
    index: usize,
    sent: &[CoinSummary],
    powned: &[CoinSummary],
) -> Result<CoinSummary, ReceiptError> {
    let Order::Transfer(transfer) = order else {
        return Err(ReceiptError::NotAPown { index });
    };
    let coin = sent
        .iter()
        .find(|c| c.account == transfer.sender)
        .ok_or(ReceiptError::NotAPown { index })?;
    let whole = Denomination::from_cash(coin.denomination_cash)
        .is_some_and(|d| d.amount() == transfer.amount);
    if transfer.sequence != 0 || !whole {
        return Err(ReceiptError::NotAPown { index });
    }
    if powned.iter().any(|p| p.account == coin.account) {
        return Err(ReceiptError::Duplicate(coin.account.short()));
    }
    Ok(*coin)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tally_core::{Digest, SecretKey, SignedOrder, Transfer, ValidatorInfo, Vote};

    struct World {
        validators: Vec<SecretKey>,
        committee: Committee,
        network: NetworkId,
    }

    fn world() -> World {
        let validators: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
        let infos: Vec<ValidatorInfo> = validators
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorInfo {
                key: k.account(),
                address: format!("127.0.0.1:{}", 9000 + i),
            })
            .collect();
        World {
            committee: Committee::new(&infos).unwrap(),
            validators,
            network: NetworkId(Digest::from([9; 32])),
        }
    }

    /// A pown of a coin of `cash` held by `coin`, certified by `signers` validators.
    fn pown(world: &World, coin: &SecretKey, cash: u64, signers: usize) -> Certificate {
        let order = Order::Transfer(Transfer {
            sender: coin.account(),
            recipient: SecretKey::generate().account(),
            amount: Denomination::from_cash(cash).unwrap().amount(),
            sequence: 0,
        });
        let signed = SignedOrder::sign(order, coin, &world.network);
        let digest = signed.order.digest(&world.network);
        let votes = world.validators[..signers]
            .iter()
            .map(|v| Vote::sign(v, &world.network, &digest))
            .collect();
        Certificate::new(signed, &world.network, votes)
    }

    fn sent(coin: &SecretKey, cash: u64) -> CoinSummary {
        CoinSummary {
            account: coin.account(),
            denomination_cash: cash,
        }
    }

    /// A receipt of quorum-certified powns of the coins sent reads back and checks,
    /// naming exactly those coins.
    #[test]
    fn a_receipt_of_the_powns_round_trips_and_checks() {
        let w = world();
        let (a, b) = (SecretKey::generate(), SecretKey::generate());
        let certificates = vec![pown(&w, &a, 250, 3), pown(&w, &b, 1, 4)];
        let receipt = encode_receipt(&certificates);
        assert_eq!(
            decode_receipt::<Certificate>(&receipt).unwrap(),
            certificates
        );
        let coins = [sent(&a, 250), sent(&b, 1)];
        assert_eq!(
            check_receipt(&receipt, &w.committee, &w.network, &coins).unwrap(),
            coins.to_vec()
        );
    }

    /// Too few votes, a coin not sent, the wrong denomination, a coin twice, or bytes
    /// that are not a certificate list: each is refused.
    #[test]
    fn receipts_that_prove_nothing_are_refused() {
        let w = world();
        let a = SecretKey::generate();
        let coins = [sent(&a, 25)];
        let check = |certificates: &[Certificate]| {
            check_receipt(
                &encode_receipt(certificates),
                &w.committee,
                &w.network,
                &coins,
            )
        };
        assert!(matches!(
            check(&[pown(&w, &a, 25, 2)]),
            Err(ReceiptError::Unverified { .. })
        ));
        let stranger = SecretKey::generate();
        assert!(matches!(
            check(&[pown(&w, &stranger, 25, 4)]),
            Err(ReceiptError::NotAPown { .. })
        ));
        assert!(matches!(
            check(&[pown(&w, &a, 5, 4)]),
            Err(ReceiptError::NotAPown { .. })
        ));
        let twice = pown(&w, &a, 25, 4);
        assert!(matches!(
            check(&[twice.clone(), twice.clone()]),
            Err(ReceiptError::Duplicate(_))
        ));
        assert_eq!(
            decode_receipt::<Certificate>("not base64!"),
            Err(ReceiptError::NotBase64)
        );
        assert!(matches!(
            decode_receipt::<Certificate>(&encode_receipt::<Certificate>(&[])),
            Err(ReceiptError::Malformed(_))
        ));
        let mut bytes = STANDARD.decode(encode_receipt(&[twice])).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode_receipt::<Certificate>(&STANDARD.encode(&bytes)),
            Err(ReceiptError::Malformed(_))
        ));
        let huge = STANDARD.encode(u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_receipt::<Certificate>(&huge),
            Err(ReceiptError::Malformed(_))
        ));
    }
}
