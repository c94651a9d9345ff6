//! The quorum network's packets and the one length-prefixed framing every Tally TCP
//! protocol but the relay's uses.

use bytes::BytesMut;
use tally_core::{Committee, Decode, Encode, Order, SignedOrder};
use tally_proto::Packet;
use tally_proto::connection::{codec, encode_frame};
use tokio_util::codec::Decoder;

use crate::{fuzz_network, vector_contract};

/// The largest frame the framing target accepts: small, so that the fuzzer meets both
/// sides of the limit with short inputs.
const FUZZ_MAX_FRAME: usize = 4096;

/// `quorum_packet`: one frame body as a validator's connection reader parses it
/// (`serde_json::from_slice::<Packet>`, tally-node's server), from any peer or wallet.
///
/// Properties of an accepted packet: it serializes and parses back to an equal packet
/// (what a validator answers or relays is what it understood); every order or
/// certificate it carries survives the binary codec the signatures, the stores and the
/// certificate log use, unless the validator's shape checks refuse it before it could be
/// stored; and the checks a validator runs on it (digests, signatures, certificate
/// structure) run to completion.
pub fn quorum_packet(data: &[u8]) {
    let Ok(packet) = serde_json::from_slice::<Packet>(data) else {
        return;
    };
    check_packet(&packet);
}

/// The properties of an accepted quorum packet (shared with [`quorum_frames`]).
fn check_packet(packet: &Packet) {
    let _ = packet.name();
    let json = serde_json::to_vec(packet).unwrap_or_default();
    let again = serde_json::from_slice::<Packet>(&json);
    assert!(
        again.as_ref().is_ok_and(|again| again == packet),
        "a packet does not survive serializing and parsing: {packet:?} -> {again:?}"
    );
    let network = fuzz_network();
    match packet {
        Packet::ReqIntroKey(order) | Packet::ReqPay(order) => {
            check_signed_order(order);
        }
        Packet::ReqIntroKeyEnd(certificate) | Packet::ReqPayEnd(certificate) => {
            let signed = certificate.signed_order();
            if check_signed_order(&signed) {
                let bytes = certificate.to_bytes();
                assert_eq!(bytes.len(), certificate.encoded_len());
                let back = tally_core::Certificate::from_bytes(&bytes);
                assert!(
                    back.as_ref().is_ok_and(|back| back == certificate)
                        || certificate.votes.len() > tally_core::Certificate::MAX_VOTES,
                    "a certificate does not survive the binary codec: {back:?}"
                );
            }
            if let Ok(committee) = Committee::new(&vector_contract().validators) {
                let _ = certificate.check_structure(&committee, &network);
                if certificate.votes.len() <= 16 {
                    let _ = certificate.verify(&committee, &network);
                }
            }
        }
        Packet::RespLedger(view) => {
            let _ = view.verify(&network);
            let _ = view.fingerprint(&network);
        }
        _ => {}
    }
}

/// Checks one signed order as a validator would before voting: its digest, its signature,
/// and the binary codec. Returns whether its shape is one a validator could vote for (and
/// so one the codec must carry).
fn check_signed_order(order: &SignedOrder) -> bool {
    let network = fuzz_network();
    let _ = order.order.digest(&network);
    let _ = order.verify(&network);
    let _ = order.order.lock_slot();
    let _ = order.order.payments();
    let shaped = order_shape_ok(&order.order);
    let bytes = order.to_bytes();
    assert_eq!(
        bytes.len(),
        order.encoded_len(),
        "encoded_len is not the length"
    );
    let back = SignedOrder::from_bytes(&bytes);
    assert!(
        back.as_ref().is_ok_and(|back| back == order) || !shaped,
        "a well-shaped order does not survive the binary codec: {order:?} -> {back:?}"
    );
    shaped
}

/// Whether an order passes the checks that need no ledger (what every validator refuses
/// before voting, whatever its state).
pub(crate) fn order_shape_ok(order: &Order) -> bool {
    match order {
        Order::Split(split) => split.total().is_ok(),
        Order::EscrowLock(lock) => lock.check_shape(&fuzz_network()).is_ok(),
        Order::IntroKey(_)
        | Order::Transfer(_)
        | Order::EscrowClaim(_)
        | Order::EscrowRefund(_) => true,
    }
}

/// `quorum_frames`: a TCP byte stream through the framing codec every connection reads
/// with (`tally_proto::connection::codec`, a 4-byte big-endian length then the body), fed
/// in the segments the first byte chooses, each whole frame then parsed as a [`Packet`].
///
/// Properties: no frame exceeds the limit (an oversized length prefix is an error, refused
/// before anything is buffered); the frames read, framed again with [`encode_frame`], are
/// exactly the bytes consumed (but for the length prefix of a frame still arriving); and
/// every frame that parses is an accepted packet of [`quorum_packet`].
pub fn quorum_frames(data: &[u8]) {
    let Some((&segment, stream)) = data.split_first() else {
        return;
    };
    let segment = usize::from(segment % 32) + 1;
    let mut codec = codec(FUZZ_MAX_FRAME);
    let mut buffer = BytesMut::new();
    let mut frames: Vec<BytesMut> = Vec::new();
    let mut fed = 0;
    let mut failed = false;
    'stream: for chunk in stream.chunks(segment) {
        buffer.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break 'stream;
                }
            }
        }
    }
    if !failed {
        match codec.decode_eof(&mut buffer) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => assert!(buffer.is_empty(), "bytes left unreported at the end"),
            Err(_) => failed = true,
        }
    }
    let mut reframed = Vec::new();
    for frame in &frames {
        assert!(
            frame.len() <= FUZZ_MAX_FRAME,
            "a frame over the limit was read"
        );
        reframed.extend_from_slice(&encode_frame(frame));
    }
    if !failed {
        // The codec takes a length prefix out of the buffer as soon as it has it, and a
        // stream that ends right after one reads as a clean end: the bytes consumed are
        // the frames read, then at most one unfinished prefix.
        let consumed = fed - buffer.len();
        let pending = consumed - reframed.len().min(consumed);
        assert!(
            stream[..consumed].starts_with(&reframed) && (pending == 0 || pending == 4),
            "the frames read are not the bytes consumed ({} framed, {consumed} consumed)",
            reframed.len()
        );
    } else {
        assert!(
            stream.starts_with(&reframed),
            "the frames read before an error are not a prefix of the stream"
        );
    }
    for frame in &frames {
        if let Ok(packet) = serde_json::from_slice::<Packet>(frame) {
            check_packet(&packet);
        }
    }
}
