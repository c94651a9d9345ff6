//! A validator killed with SIGKILL at random moments under load, end to end through the
//! built `tally` binary: four `tally node` processes, two `tally wallet send` loops paying
//! from two genesis accounts, and a client in the test that asks the victim alone for
//! votes (a transfer from each of many funded accounts, which no one else asks for) right
//! up to the kill. Each round picks a validator and a moment at random (the seed is
//! printed; `TALLY_KILL_SEED=<seed>` makes the same choices again), kills it, and restarts
//! it on its folder.
//!
//! What is protected: a vote a validator answered is durable. After every restart, each
//! vote it gave before the kill still blocks a conflicting order for the same slot, sent
//! to it directly: refused as `Conflict` for the votes only it gave, and never voted for
//! in the slots of the certificates it signed. At the end all four validators hold the
//! same ledger, the supply is exactly the genesis supply, and each payer and payee holds
//! exactly what its certified payments moved.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tally_core::{
    AccountId, Amount, NetworkContract, NetworkId, Order, SecretKey, SignedOrder, Transfer,
};
use tally_proto::{Connection, ErrorCode, Limits, Packet};
use tally_wallet::Wallet;

use common::{TALLY, start_quorum, wallet_json};

/// Kill rounds.
const ROUNDS: usize = 5;
/// Funded accounts the test's client spends from per round, one transfer each.
const PER_ROUND: usize = 40;
/// Hang guard for waits on the network; nothing asserts how long anything takes.
const PATIENCE: Duration = Duration::from_secs(60);

/// A validator SIGKILLed at random moments while wallets pay and a client collects its
/// votes keeps every vote it answered (see the file's doc): after each restart a
/// conflicting order for the slot of any of them is refused, and at the end the four
/// validators agree on a ledger whose supply and balances are exact.
#[test]
fn a_validator_killed_9_under_load_keeps_every_vote_it_gave() {
    let mut rng = Rng::seeded();
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let funded = (2 + ROUNDS * PER_ROUND).to_string();
    let (contract_path, mut nodes) = start_quorum(&net, &["--pow-bits", "4", "--fund", &funded]);
    let contract =
        NetworkContract::from_json(&std::fs::read_to_string(&contract_path).unwrap()).unwrap();
    let network = contract.id();
    let genesis = net.join("genesis-wallet");
    let keys: Vec<SecretKey> = Wallet::open(&genesis)
        .unwrap()
        .keys()
        .iter()
        .map(|entry| entry.secret_key().unwrap())
        .collect();
    let others = dir.path().join("others");
    let recipients: Vec<AccountId> = (0..2)
        .map(|_| {
            wallet_json(&others, &contract_path, &["key", "new"])["account"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let load = Load::start(&genesis, &contract_path, &recipients);
    // Per validator, every vote the test's client got from it alone.
    let mut voted: Vec<Vec<Voted>> = (0..4).map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        let victim = rng.below(4) as usize;
        let info = &contract.validators[victim];
        let first = 2 + round * PER_ROUND;
        let recorder = Recorder::start(
            info.address.clone(),
            info.key,
            network,
            keys[first..first + PER_ROUND].to_vec(),
        );
        // A first vote, then a random moment while votes keep coming.
        recorder.wait_for_votes(1);
        std::thread::sleep(Duration::from_millis(rng.below(1000)));
        nodes.0[victim].kill_9();
        let got = recorder.finish();
        eprintln!(
            "round {round}: killed validator {victim} after {} votes to the test's client",
            got.len()
        );
        voted[victim].extend(got);
        // The certificates it had signed, as the paying wallets keep them.
        let signed: Vec<(usize, Transfer)> = certified_transfers(&genesis, &info.key, &keys);
        std::thread::sleep(Duration::from_millis(rng.below(400)));

        let folder = net.join(format!("validator-{victim}"));
        nodes.restart(
            victim,
            &["node", "--dir", folder.to_str().unwrap()],
            "validator listening on",
        );
        rt.block_on(async {
            let mut conn = connect(&info.address).await;
            for vote in &voted[victim] {
                let answer = ask(&mut conn, &vote.key, &conflicting(&vote.order), &network).await;
                assert!(
                    matches!(&answer, Packet::Error(e) if e.code == ErrorCode::Conflict),
                    "round {round}: validator {victim} voted for {:?} before a kill; after \
                     the restart a conflicting order must be refused as a conflict: {answer:?}",
                    vote.order
                );
            }
            for (payer, transfer) in &signed {
                let order = conflicting(&Order::Transfer(*transfer));
                let answer = ask(&mut conn, &keys[*payer], &order, &network).await;
                assert!(
                    matches!(&answer, Packet::Error(e)
                        if matches!(e.code, ErrorCode::Conflict | ErrorCode::Sequence)),
                    "round {round}: validator {victim} signed the certificate of {transfer:?}; \
                     after the restart it must not vote for another order in that slot: \
                     {answer:?}"
                );
            }
        });
        eprintln!(
            "round {round}: {} votes and {} signed certificates still hold",
            voted[victim].len(),
            signed.len()
        );
    }
    let paid = load.stop();
    eprintln!("payments that reported success: {paid:?}");
    assert!(
        paid.iter().all(|ok| *ok > 0),
        "the wallets paid through the kills: {paid:?}"
    );
    let ledger = agreed_ledger(&genesis, &contract_path);
    check_exact(&ledger, &contract, &keys, &recipients, &paid);
}

/// An order the victim voted for, and the key that signed it.
struct Voted {
    key: SecretKey,
    order: Order,
}

/// The test's client of one validator, on its own thread: asks it alone for votes until
/// its connection breaks (the kill), keeping every order it answered with a vote.
struct Recorder {
    stop: Arc<AtomicBool>,
    votes: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<Voted>>>,
}

impl Recorder {
    /// A transfer from each of `payers` (sequence 0, which no one else ever asks for), one
    /// every 20 ms.
    fn start(
        address: String,
        validator: AccountId,
        network: NetworkId,
        payers: Vec<SecretKey>,
    ) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let votes = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), votes.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conn = connect(&address).await;
                let mut payers = payers.into_iter();
                let mut next = None;
                let mut voted = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    let Some((key, order)) = next.take().or_else(|| payers.next().map(transfer))
                    else {
                        break; // every payer voted for
                    };
                    let Ok(answer) = try_ask(&mut conn, &key, &order, &network).await else {
                        break; // killed
                    };
                    match answer {
                        Packet::RespPay(reply) => {
                            assert_eq!(reply.votes.len(), 1, "{reply:?}");
                            assert_eq!(reply.votes[0].validator, validator);
                            voted.push(Voted { key, order });
                            count.store(voted.len(), Ordering::Relaxed);
                        }
                        Packet::Error(e) if e.code == ErrorCode::Busy => next = Some((key, order)),
                        other => panic!("{order:?} was not voted for: {other:?}"),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                voted
            })
        });
        Recorder {
            stop,
            votes,
            thread: Some(thread),
        }
    }

    /// Waits (a hang guard: [`PATIENCE`]) until `n` votes came back.
    fn wait_for_votes(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.votes.load(Ordering::Relaxed) < n {
            let running = self.thread.as_ref().is_some_and(|t| !t.is_finished());
            assert!(running && Instant::now() < deadline, "no vote came back");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every order voted for; the thread ends at the kill or now.
    fn finish(mut self) -> Vec<Voted> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `payer`'s order for its first slot: 1 cash to a fresh account.
fn transfer(payer: SecretKey) -> (SecretKey, Order) {
    let order = Order::Transfer(Transfer {
        sender: payer.account(),
        recipient: SecretKey::generate().account(),
        amount: Amount::from_cash(1).unwrap(),
        sequence: 0,
    });
    (payer, order)
}

/// Another order for the same slot as the transfer `order`: the same sender and sequence
/// paying one microcash more to another account.
fn conflicting(order: &Order) -> Order {
    let Order::Transfer(transfer) = order else {
        panic!("not a transfer: {order:?}")
    };
    Order::Transfer(Transfer {
        recipient: SecretKey::generate().account(),
        amount: Amount::from_microcash(transfer.amount.microcash() + 1),
        ..*transfer
    })
}

async fn connect(address: &str) -> Connection {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match Connection::connect(address, Limits::default(), Duration::from_secs(5)).await {
            Ok(conn) => return conn,
            Err(error) => assert!(
                Instant::now() < deadline,
                "validator {address} never answered: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn try_ask(
    conn: &mut Connection,
    key: &SecretKey,
    order: &Order,
    network: &NetworkId,
) -> Result<Packet, tally_proto::ConnectionError> {
    let signed = SignedOrder::sign(order.clone(), key, network);
    conn.call(&Packet::ReqPay(signed)).await
}

/// The validator's answer to `order` signed by `key`; it must answer.
async fn ask(conn: &mut Connection, key: &SecretKey, order: &Order, network: &NetworkId) -> Packet {
    try_ask(conn, key, order, network)
        .await
        .unwrap_or_else(|e| panic!("no answer to {order:?}: {e}"))
}

/// The transfers of the certificates in `wallet`'s receipts that `validator` signed, with
/// the index in `keys` of the key that signed each.
fn certified_transfers(
    wallet: &Path,
    validator: &AccountId,
    keys: &[SecretKey],
) -> Vec<(usize, Transfer)> {
    let receipts = Wallet::open(wallet).unwrap().receipts().unwrap();
    receipts
        .iter()
        .filter(|c| c.votes.iter().any(|v| v.validator == *validator))
        .filter_map(|c| match &c.order {
            Order::Transfer(t) => {
                let payer = keys.iter().position(|k| k.account() == t.sender).unwrap();
                Some((payer, *t))
            }
            _ => None,
        })
        .collect()
}

/// Two `tally wallet send` loops, one per payer (genesis-0 and genesis-1), each paying 1
/// cash to its own recipient until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<usize>>,
}

impl Load {
    fn start(wallet: &Path, contract: &Path, recipients: &[AccountId]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = recipients
            .iter()
            .enumerate()
            .map(|(i, recipient)| {
                let (wallet, contract, stop): (PathBuf, PathBuf, _) =
                    (wallet.to_owned(), contract.to_owned(), stop.clone());
                let (from, to) = (format!("genesis-{i}"), recipient.to_string());
                std::thread::spawn(move || {
                    let mut ok = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let output = Command::new(TALLY)
                            .args(["wallet", "--wallet"])
                            .arg(&wallet)
                            .arg("--network")
                            .arg(&contract)
                            .args(["send", &to, "1", "--from", &from])
                            .output()
                            .unwrap();
                        if output.status.success() {
                            ok += 1;
                        } else {
                            eprintln!("{from}: {}", String::from_utf8_lossy(&output.stderr));
                        }
                    }
                    ok
                })
            })
            .collect();
        Load { stop, workers }
    }

    /// Stops the loops; per payer, the payments that reported success.
    fn stop(mut self) -> Vec<usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.workers.drain(..).map(|w| w.join().unwrap()).collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// `wallet ledger` once all four validators hold the same accounts, certificates and
/// supply (the restarted ones caught up). Their signed views still differ where the
/// test's client left a vote held at one validator only, so those are not compared.
fn agreed_ledger(wallet: &Path, contract: &Path) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ledger = wallet_json(wallet, contract, &["ledger"]);
        let views = ledger["validators"].as_array().unwrap();
        let state = |v: &Value| {
            (
                v["accounts"].clone(),
                v["certificates"].clone(),
                v["supply"].clone(),
            )
        };
        if views.len() == 4
            && views.iter().all(|v| v.get("error").is_none())
            && views.iter().all(|v| state(v) == state(&views[0]))
        {
            return ledger;
        }
        assert!(
            Instant::now() < deadline,
            "the validators never agreed: {}",
            summary(&ledger)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each validator's view in short: certificates, supply, fingerprint, and the accounts
/// that moved.
fn summary(ledger: &Value) -> String {
    let views = ledger["validators"].as_array().unwrap();
    let lines: Vec<String> = views
        .iter()
        .map(|view| {
            let moved: Vec<String> = view["accounts"]
                .as_array()
                .map(|accounts| {
                    accounts
                        .iter()
                        .filter(|a| a["sequence"] != 0 || a["balance"] != view_funded(view))
                        .map(|a| {
                            format!(
                                "{}… {} seq {}",
                                &a["account"].to_string()[1..9],
                                a["balance"],
                                a["sequence"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "validator {}…: {} certificates, supply {}, view {}, moved {moved:?}{}",
                &view["validator"].to_string()[1..9],
                view["certificates"],
                view["supply"],
                view["fingerprint"],
                view.get("error")
                    .map(|e| format!(", error {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!("{} agree\n{}", ledger["agree"], lines.join("\n"))
}

/// The balance most accounts of `view` hold: what each genesis account was funded with.
fn view_funded(view: &Value) -> Value {
    view["accounts"][0]["balance"].clone()
}

/// In every validator's view: the supply is the genesis supply and the balances add up to
/// it; each payer paid 1 cash per order it had certified (its sequence, at least the
/// successes it reported) and its recipient holds exactly that; the accounts that only
/// the test's client asked for votes kept their funds; one certificate per payment.
fn check_exact(
    ledger: &Value,
    contract: &NetworkContract,
    keys: &[SecretKey],
    recipients: &[AccountId],
    paid: &[usize],
) {
    let supply = contract.genesis_supply().unwrap().microcash();
    let funded = contract.genesis[0].amount.microcash();
    for view in ledger["validators"].as_array().unwrap() {
        assert_eq!(view["supply"], supply, "{view}");
        let accounts = view["accounts"].as_array().unwrap();
        let of = |account: &AccountId| {
            accounts
                .iter()
                .find(|a| a["account"] == account.to_string())
                .cloned()
                .unwrap_or(Value::Null)
        };
        let listed: i64 = accounts
            .iter()
            .map(|a| a["balance"].as_i64().unwrap())
            .sum();
        assert_eq!(listed as u64, supply, "{view}");
        let mut certificates = 0;
        for (i, key) in keys.iter().enumerate() {
            let account = of(&key.account());
            let sequence = account["sequence"].as_u64().unwrap();
            if i < recipients.len() {
                assert!(sequence >= paid[i] as u64, "{account} paid {}", paid[i]);
                assert_eq!(
                    account["balance"],
                    funded - sequence * 1_000_000,
                    "{account}"
                );
                assert_eq!(of(&recipients[i])["balance"], sequence * 1_000_000);
                certificates += sequence;
            } else {
                assert_eq!((sequence, account["balance"].as_u64()), (0, Some(funded)));
            }
        }
        assert_eq!(view["certificates"], certificates, "{view}");
    }
}

/// xorshift64*, seeded from the clock or `TALLY_KILL_SEED`; the seed is printed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("TALLY_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        eprintln!("TALLY_KILL_SEED={seed}");
        Rng(seed)
    }

    /// A number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}
