//! The receipt of a live transfer (message 17, PROTOCOL.md §7 "LiveConnect transfer"): the
//! receiver's pown certificates, which anyone holding the network contract can check
//! offline, so the sender needs no trust in the receiver to know its coins were taken.
//!
//! `receipt = base64 (RFC 4648 §4, padded) of: count u32 LE ‖ certificate encoding (§4) ×
//! count`, 1 to [`MAX_RECEIPT_CERTIFICATES`] certificates, nothing after the last.

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

/// Encodes pown certificates as a receipt.
pub fn encode_receipt(certificates: &[Certificate]) -> String {
    let mut bytes = Vec::new();
    let count = u32::try_from(certificates.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&count.to_le_bytes());
    for certificate in certificates {
        certificate.encode_to(&mut bytes);
    }
    STANDARD.encode(bytes)
}

/// Decodes a receipt into its certificates (not checked).
pub fn decode_receipt(receipt_b64: &str) -> Result<Vec<Certificate>, ReceiptError> {
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
    if count > reader.remaining() / Certificate::MIN_ENCODED_LEN.max(1) {
        return Err(ReceiptError::Malformed(format!(
            "{count} certificates cannot fit in {} bytes",
            reader.remaining()
        )));
    }
    let mut certificates = Vec::with_capacity(count);
    for _ in 0..count {
        certificates.push(reader.read::<Certificate>().map_err(malformed)?);
    }
    reader.finish().map_err(malformed)?;
    Ok(certificates)
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
    let certificates = decode_receipt(receipt_b64)?;
    let mut powned: Vec<CoinSummary> = Vec::with_capacity(certificates.len());
    for (index, certificate) in certificates.iter().enumerate() {
        certificate
            .verify(committee, network)
            .map_err(|e| ReceiptError::Unverified {
                index,
                why: e.to_string(),
            })?;
        let Order::Transfer(transfer) = &certificate.order else {
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
        powned.push(*coin);
    }
    Ok(powned)
}
