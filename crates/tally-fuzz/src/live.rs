//! LiveConnect: the transfer's message lines, the connection file, and the two state
//! machines that read those lines.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tally_core::seal::{SessionKey, open_coins};
use tally_core::{AccountId, Amount};
use tally_live::{
    COIN_DENOMINATIONS_CASH, CoinSummary, Receiver, ReceiverAction, ReceiverConfig, ReceiverEvent,
    ReceiverPhase, Sender, SenderAction, SenderConfig, SenderEvent, Timing,
};
use tally_proto::live::{
    ConnectionFile, Details, LiveMessage, MAX_LIVE_LINE, MAX_SENT_LINE, MessageNumber, parse_line,
};

/// `live_line`: one line from the relay room as a LiveConnect wallet reads it
/// ([`parse_line`]: the JSON form or the seed's tag form), from whoever is in the room.
///
/// Properties of an accepted message: its details have the shape its number requires
/// ([`LiveMessage::is_well_formed`]); written out ([`LiveMessage::to_line`]) it parses
/// back equal whenever the written line is within the limit; and sealed coins it carries
/// are refused or opened by [`open_coins`] without a panic.
pub fn live_line(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(message) = parse_line(text) else {
        return;
    };
    check_message(&message);
    if let Details::SealedCoins {
        coins_b64,
        pown_deadline_ms,
    } = &message.details
        && let Ok(sealed) = STANDARD.decode(coins_b64)
    {
        let _ = open_coins(
            &SessionKey::from_bytes([7; 32]),
            "room",
            u32::from(message.number.number()),
            *pown_deadline_ms,
            &sealed,
        );
    }
}

/// A message must be well formed and survive being written out and read back.
fn check_message(message: &LiveMessage) {
    assert!(
        message.is_well_formed(),
        "a message of the wrong shape: {message:?}"
    );
    let line = message.to_line();
    if line.len() <= MAX_LIVE_LINE {
        let back = parse_line(&line);
        assert!(
            back.as_ref().is_ok_and(|back| back == message),
            "a message does not survive being written and read: {message:?} -> {line} -> {back:?}"
        );
    }
}

/// `live_connection_file`: a connection file's text as the receiving wallet reads the file
/// the sender handed over ([`ConnectionFile::parse`]).
///
/// Properties of an accepted file: it passes its own [`ConnectionFile::validate`]; its
/// text ([`ConnectionFile::to_text`]) parses back equal.
pub fn live_connection_file(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(file) = ConnectionFile::parse(text) else {
        return;
    };
    assert!(file.validate().is_ok());
    let again = ConnectionFile::parse(&file.to_text());
    assert!(
        again.as_ref().is_ok_and(|again| *again == file),
        "a connection file does not read back: {again:?}"
    );
}

/// How many honest lines the two machines may exchange after one input line, and how
/// many wallet actions one event may lead to: bounds, so every input ends.
const MAX_EXCHANGE: usize = 64;

/// `live_session`: a whole transfer driven by hostile lines. A sender of 31 cash and a
/// receiver run side by side, passing their own lines to each other as the relay would,
/// while every line of the input (split at `\n`) is delivered to both, parsed with
/// [`parse_line`] (a line that does not parse arrives as `BadLine`). Control lines move
/// the driver instead: an empty line is a tick 7 s later, `J` / `L` the peer joining or
/// leaving, `R` a crash and restart of both machines from their journals, `C` the user
/// cancelling. The wallet's work (prepare, seal, open, pown, check the receipt, reclaim)
/// succeeds at once.
///
/// Properties: the machines never panic whatever the peer says; every line they send is
/// well formed, within [`MAX_SENT_LINE`], and parses back equal; and the states they are
/// in at every restart and at the end survive their journal (serde JSON) and resume.
pub fn live_session(data: &[u8]) {
    let _ = run_session(data);
}

/// [`live_session`]'s work; returns the two machines as the input left them.
fn run_session(data: &[u8]) -> (Sender, Receiver) {
    let timing = Timing::default();
    let mut now = 1_700_000_000_000u64;
    let sender_config = SenderConfig {
        amount: Amount::from_microcash(31_000_000),
        timing,
    };
    let Ok((mut sender, first)) = Sender::new(sender_config, now) else {
        panic!("the session's sender configuration is refused");
    };
    let receiver_config = ReceiverConfig {
        expected_amount: None,
        timing,
    };
    let Ok((mut receiver, second)) = Receiver::new(receiver_config, now) else {
        panic!("the session's receiver configuration is refused");
    };
    let mut to_receiver = Vec::new();
    let mut to_sender = Vec::new();
    drive_sender(&mut sender, first, now, &mut to_receiver);
    drive_receiver(&mut receiver, second, now, &mut to_sender);
    for line in data.split(|&b| b == b'\n') {
        now = now.saturating_add(500);
        let (for_sender, for_receiver) = match line {
            b"" => {
                now = now.saturating_add(7_000);
                (SenderEvent::Tick, ReceiverEvent::Tick)
            }
            b"J" => (SenderEvent::PeerJoined, ReceiverEvent::PeerJoined),
            b"L" => (SenderEvent::PeerLeft, ReceiverEvent::PeerLeft),
            b"C" => (SenderEvent::Cancel, ReceiverEvent::Cancel),
            b"R" => {
                let (s, out) = Sender::resume(journal(sender.state()), now);
                sender = s;
                drive_sender(&mut sender, out, now, &mut to_receiver);
                let (r, out) = Receiver::resume(journal(receiver.state()), now);
                receiver = r;
                drive_receiver(&mut receiver, out, now, &mut to_sender);
                continue;
            }
            line => match std::str::from_utf8(line).map(parse_line) {
                Ok(Ok(message)) => (
                    SenderEvent::Line(message.clone()),
                    ReceiverEvent::Line(message),
                ),
                Ok(Err(error)) => (
                    SenderEvent::BadLine(error.to_string()),
                    ReceiverEvent::BadLine(error.to_string()),
                ),
                Err(error) => (
                    SenderEvent::BadLine(error.to_string()),
                    ReceiverEvent::BadLine(error.to_string()),
                ),
            },
        };
        let out = sender.handle(for_sender, now);
        drive_sender(&mut sender, out, now, &mut to_receiver);
        let out = receiver.handle(for_receiver, now);
        drive_receiver(&mut receiver, out, now, &mut to_sender);
        for _ in 0..MAX_EXCHANGE {
            if to_receiver.is_empty() && to_sender.is_empty() {
                break;
            }
            for message in std::mem::take(&mut to_receiver) {
                let out = receiver.handle(ReceiverEvent::Line(message), now);
                drive_receiver(&mut receiver, out, now, &mut to_sender);
            }
            for message in std::mem::take(&mut to_sender) {
                let out = sender.handle(SenderEvent::Line(message), now);
                drive_sender(&mut sender, out, now, &mut to_receiver);
            }
        }
        to_receiver.clear();
        to_sender.clear();
    }
    // The states the input left the machines in go through the journal as at a crash
    // (`R` lines check it mid-way).
    let _ = journal(sender.state());
    let _ = journal(receiver.state());
    (sender, receiver)
}

/// A state through its journal: serialized, parsed back, and equal.
fn journal<S>(state: &S) -> S
where
    S: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Clone,
{
    let json = serde_json::to_vec(state).unwrap_or_default();
    let back = serde_json::from_slice::<S>(&json);
    match back {
        Ok(back) if back == *state => back,
        other => panic!("a journaled state does not read back: {state:?} -> {other:?}"),
    }
}

/// A line a machine sends, as the peer receives it (the relay puts the sender's address
/// in `from`).
fn sent(message: &LiveMessage) -> LiveMessage {
    assert!(
        message.is_well_formed(),
        "a machine sends a malformed message: {message:?}"
    );
    let line = message.to_line();
    assert!(
        line.len() <= MAX_SENT_LINE,
        "a machine sends a line over the limit"
    );
    let back = parse_line(&line);
    assert!(
        back.as_ref().is_ok_and(|back| back == message),
        "a sent line does not read back: {line} -> {back:?}"
    );
    LiveMessage {
        from: Some("203.0.113.9".into()),
        ..message.clone()
    }
}

/// Coins of distinct accounts worth `amount`, of the LiveConnect denominations; `None` when
/// that takes more than 64 coins or `amount` is not whole cash.
fn coins_for(amount: Amount, salt: u8) -> Option<Vec<CoinSummary>> {
    let per_cash = tally_core::amount::MICROCASH_PER_CASH;
    if !amount.microcash().is_multiple_of(per_cash) {
        return None;
    }
    let mut left = amount.microcash() / per_cash;
    let mut coins = Vec::new();
    for &denomination in COIN_DENOMINATIONS_CASH.iter().rev() {
        while left >= denomination {
            if coins.len() == 64 {
                return None;
            }
            let mut account = [salt; 32];
            account[0] = coins.len() as u8;
            coins.push(CoinSummary {
                account: AccountId::from(account),
                denomination_cash: denomination,
            });
            left -= denomination;
        }
    }
    Some(coins)
}

fn drive_sender(
    sender: &mut Sender,
    mut out: Vec<SenderAction>,
    now: u64,
    to_receiver: &mut Vec<LiveMessage>,
) {
    for _ in 0..MAX_EXCHANGE {
        let mut events = Vec::new();
        for action in out {
            match action {
                SenderAction::Send(message) => to_receiver.push(sent(&message)),
                SenderAction::PrepareCoins { amount } => {
                    events.push(match coins_for(amount, 0x5e) {
                        Some(coins) => SenderEvent::CoinsPrepared { coins },
                        None => SenderEvent::PreparationFailed("no coins".into()),
                    });
                }
                SenderAction::SealCoins { .. } => events.push(SenderEvent::CoinsSealed {
                    coins_b64: "AAAA".into(),
                }),
                SenderAction::CheckReceipt { coins, .. } => {
                    events.push(SenderEvent::ReceiptChecked(Ok(coins)));
                }
                SenderAction::Reclaim { coins } => events.push(SenderEvent::Reclaimed {
                    reclaimed: coins,
                    powned_by_receiver: Vec::new(),
                    frozen: Vec::new(),
                }),
                SenderAction::Step(_) | SenderAction::Failed(_) | SenderAction::Finished(_) => {}
            }
        }
        let Some(event) = events.into_iter().next() else {
            return;
        };
        out = sender.handle(event, now);
    }
}

fn drive_receiver(
    receiver: &mut Receiver,
    mut out: Vec<ReceiverAction>,
    now: u64,
    to_sender: &mut Vec<LiveMessage>,
) {
    for _ in 0..MAX_EXCHANGE {
        let phase = receiver.phase().clone();
        let mut events = Vec::new();
        for action in out {
            match action {
                ReceiverAction::Send(message) => to_sender.push(sent(&message)),
                ReceiverAction::OpenCoins {
                    coins_b64,
                    pown_deadline_ms,
                } => {
                    if let Ok(sealed) = STANDARD.decode(&coins_b64) {
                        let _ = open_coins(
                            &SessionKey::from_bytes([7; 32]),
                            "room",
                            u32::from(MessageNumber::EncryptedCoins.number()),
                            pown_deadline_ms,
                            &sealed,
                        );
                    }
                    let amount = match &phase {
                        ReceiverPhase::Opening { amount, .. } => Some(*amount),
                        _ => None,
                    };
                    events.push(match amount.and_then(|a| coins_for(a, 0x5e)) {
                        Some(coins) => ReceiverEvent::CoinsOpened { coins },
                        None => ReceiverEvent::OpenFailed("undecodable".into()),
                    });
                }
                ReceiverAction::PownCoins { coins, .. } => {
                    events.push(ReceiverEvent::CoinsPowned {
                        receipt_b64: "AAAA".into(),
                        powned: coins,
                    });
                }
                ReceiverAction::Step(_)
                | ReceiverAction::Failed(_)
                | ReceiverAction::Finished(_) => {}
            }
        }
        let Some(event) = events.into_iter().next() else {
            return;
        };
        out = receiver.handle(event, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With nothing hostile in the input, the peer joining is enough for the honest
    /// transfer to run to its end: the target's driver reaches every step.
    #[test]
    fn an_honest_session_finishes() {
        let (sender, receiver) = run_session(b"J");
        assert!(sender.is_finished(), "{:?}", sender.phase());
        assert!(receiver.is_finished(), "{:?}", receiver.phase());
    }
}
