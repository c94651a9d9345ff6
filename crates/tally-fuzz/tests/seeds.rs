//! Writes the seed inputs of every fuzz target from real values (what the code itself
//! writes: packets, blocks, files, records) and from the test vectors of PROTOCOL.md.
//! Ignored by default; run it when a format changes, then minimize the corpus:
//!
//! ```text
//! cargo test -p tally-fuzz --test seeds -- --ignored
//! cd fuzz && cargo +nightly fuzz cmin -s none <target>
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use tally_chain::store::{MemoryDisk, MemoryStore};
use tally_chain::{Chain, ChainConfig};
use tally_core::coin::encode_bundle;
use tally_core::seal::SessionKey;
use tally_core::{
    Amount, Certificate, Coin, CoinFile, Counterpart, Denomination, Digest, Encode, EscrowClaim,
    EscrowLock, EscrowRefund, EscrowSecret, EscrowState, IntroKey, Order, Payment, SecretKey,
    Settlement, SignedOrder, Split, Transaction, Transfer, Vote, encode_token,
};
use tally_fuzz::{fuzz_network, vector_contract};
use tally_ledger::records;
use tally_proto::connection::encode_frame;
use tally_proto::live::{ConnectionFile, Details, LiveMessage, MessageNumber};
use tally_proto::pow::{Connect, HashBroadcast, PowPacket, ReceiveBlock, SendRequest, Tip};
use tally_proto::quorum::{CertQuery, ErrorCode, Hello, LedgerRequest, Packet, VoteReply};
use tally_proto::tracker::{KeyEntry, ListRequest, Registration, Request, SignedBytes};
use tally_swap::wire::{Message, TopicLine};
use tally_swap::{Quote, SignedQuote};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn seed(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(corpus(target).join(format!("seed-{name}")), bytes).unwrap();
}

fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes([byte; 32])
}

fn alice() -> SecretKey {
    key(0xa1)
}

fn bob() -> SecretKey {
    key(0xb0)
}

fn transfer(sequence: u64) -> SignedOrder {
    let order = Order::Transfer(Transfer {
        sender: alice().account(),
        recipient: bob().account(),
        amount: Amount::from_microcash(1_504_000),
        sequence,
    });
    SignedOrder::sign(order, &alice(), &fuzz_network())
}

fn split() -> SignedOrder {
    let order = Order::Split(Split {
        sender: alice().account(),
        sequence: 1,
        outputs: vec![
            Payment {
                recipient: bob().account(),
                amount: Amount::from_microcash(1_000_000),
            },
            Payment {
                recipient: key(0xc0).account(),
                amount: Amount::from_microcash(500_000),
            },
        ],
    });
    SignedOrder::sign(order, &alice(), &fuzz_network())
}

fn intro() -> SignedOrder {
    let order = Order::IntroKey(IntroKey {
        account: alice().account(),
        proof_of_work: 131,
    });
    SignedOrder::sign(order, &alice(), &fuzz_network())
}

fn escrow_lock() -> EscrowLock {
    EscrowLock {
        payer: alice().account(),
        sequence: 2,
        payee: bob().account(),
        amount: Amount::from_microcash(2_000_000),
        hash_lock: EscrowSecret::from([0x5e; 32]).hash_lock(),
        deadline: 1_700_000_060_000,
        counterpart: Some(Counterpart {
            network: tally_core::NetworkId(Digest::from([0xbb; 32])),
            escrow: None,
            quote: Some(Digest::from([0x9a; 32])),
        }),
    }
}

fn orders() -> Vec<SignedOrder> {
    let lock = escrow_lock();
    let escrow = tally_swap::wire::escrow_id(&fuzz_network(), &lock);
    vec![
        transfer(0),
        split(),
        intro(),
        SignedOrder::sign(Order::from(lock), &alice(), &fuzz_network()),
        SignedOrder::unsigned(Order::EscrowClaim(EscrowClaim {
            escrow,
            secret: EscrowSecret::from([0x5e; 32]),
        })),
        SignedOrder::unsigned(Order::EscrowRefund(EscrowRefund { escrow })),
    ]
}

fn certificate(order: SignedOrder) -> Certificate {
    let network = fuzz_network();
    let digest = order.order.digest(&network);
    let votes = (0..3u8)
        .map(|i| Vote::sign(&key(0x10 + i), &network, &digest))
        .collect();
    Certificate::new(order, &network, votes)
}

fn packets() -> Vec<(&'static str, Packet)> {
    let network = fuzz_network();
    let vote = Vote::sign(&key(0x10), &network, &transfer(0).order.digest(&network));
    vec![
        (
            "hello",
            Packet::Hello(Hello {
                network,
                validator: Some(key(0x10).account()),
                address: Some("127.0.0.1:2222".into()),
                certificates: Some(7),
            }),
        ),
        ("req-ledger", Packet::ReqLedger(LedgerRequest::default())),
        ("req-pay", Packet::ReqPay(transfer(0))),
        ("req-pay-split", Packet::ReqPay(split())),
        ("req-intro", Packet::ReqIntroKey(intro())),
        (
            "resp-pay",
            Packet::RespPay(VoteReply {
                checksum: transfer(0).order.digest(&network),
                votes: vec![vote],
            }),
        ),
        ("req-pay-end", Packet::ReqPayEnd(certificate(transfer(0)))),
        (
            "req-intro-end",
            Packet::ReqIntroKeyEnd(certificate(intro())),
        ),
        (
            "req-certs",
            Packet::ReqCerts(CertQuery::Sent {
                account: alice().account(),
                from: 0,
                limit: 10,
            }),
        ),
        ("error", Packet::error(ErrorCode::Busy, "later")),
    ]
}

fn pow_chain() -> (Vec<Vec<u8>>, Vec<tally_core::Block>) {
    let params = tally_fuzz::fuzz_pow_params().clone();
    let disk = MemoryDisk::new();
    let store = MemoryStore::open(&disk, &params.network).unwrap();
    let mut chain = Chain::with_store(store, params.clone(), ChainConfig::default()).unwrap();
    let mut blocks = Vec::new();
    let mut now = 1_700_000_000_000u64;
    for height in 0..3u64 {
        let order = Order::Transfer(Transfer {
            sender: alice().account(),
            recipient: bob().account(),
            amount: Amount::from_microcash(1_000_000 + height),
            sequence: height,
        });
        chain
            .submit_order(SignedOrder::sign(order, &alice(), &params.network))
            .unwrap();
        now += 10_000;
        let block = chain.block_template(key(0x33).account(), now);
        chain.accept_block(block.clone(), now + 1).unwrap();
        blocks.push(block);
    }
    let encoded = blocks.iter().map(tally_core::Block::encode).collect();
    (encoded, blocks)
}

fn framed_blocks(blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in blocks {
        out.extend_from_slice(&(block.len() as u16).to_le_bytes());
        out.extend_from_slice(block);
    }
    out
}

fn quote() -> SignedQuote {
    Quote {
        maker: key(0x4d).account(),
        asset: "cash".into(),
        network_a: fuzz_network(),
        network_b: tally_core::NetworkId(Digest::from([0xbb; 32])),
        min_amount: Amount::from_microcash(1_000_000),
        max_amount: Amount::from_microcash(1_000_000_000),
        fee_ppm: 2_500,
        fee_fixed: Amount::from_microcash(10_000),
        maker_a: key(0x4a).account(),
        maker_b: key(0x4b).account(),
        lock_time_ms: 3_600_000,
        delta_ms: 1_800_000,
        expires_ms: 1_800_000_000_000,
        nonce: 1,
    }
    .sign(&key(0x4d))
}

fn coins() -> Vec<Coin> {
    vec![
        Coin {
            network: fuzz_network(),
            denomination: Denomination::from_cash(5).unwrap(),
            secret: key(0xc1),
            funding: Some(certificate(transfer(0))),
        },
        Coin {
            network: fuzz_network(),
            denomination: Denomination::from_cash(1).unwrap(),
            secret: key(0xc2),
            funding: None,
        },
    ]
}

/// The fenced code blocks of PROTOCOL.md: its examples and test vectors.
fn protocol_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in tally_vectors::PROTOCOL.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some(String::new()),
            }
        } else if let Some(block) = current.as_mut() {
            block.push_str(trimmed);
            block.push('\n');
        }
    }
    blocks
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand when a format changes"]
fn write_seeds() {
    let network = fuzz_network();
    // PROTOCOL.md's examples and vectors: text to the text targets, hex to the binary ones.
    for (i, block) in protocol_blocks().iter().enumerate() {
        let name = format!("protocol-{i:03}");
        let text = block.trim();
        for target in [
            "quorum_packet",
            "pow_packet",
            "tracker_request",
            "network_contract",
            "coin_file",
            "live_line",
            "live_connection_file",
            "wire_quote",
        ] {
            if !text.is_empty() {
                seed(target, &name, text);
            }
        }
        for line in text
            .lines()
            .filter(|l| l.starts_with('{') || l.starts_with('<'))
        {
            seed("live_line", &format!("{name}-{}", line.len()), line);
        }
        if text.starts_with("tallycoin1") {
            seed("coin_token", &name, text);
        }
        if let Ok(bytes) = hex::decode(text) {
            for kind in 0..6u8 {
                let mut record = vec![kind];
                record.extend_from_slice(&bytes);
                seed("chain_records", &format!("{name}-{kind}"), &record);
            }
            for kind in 0..5u8 {
                let mut record = vec![kind];
                record.extend_from_slice(&bytes);
                seed("ledger_records", &format!("{name}-{kind}"), &record);
            }
            seed("coin_token", &format!("{name}-bytes"), &bytes);
            seed("wire_quote", &format!("{name}-bytes"), &bytes);
        }
    }

    // Quorum packets, alone and framed.
    let mut stream = vec![7u8];
    for (name, packet) in packets() {
        let json = serde_json::to_vec(&packet).unwrap();
        seed("quorum_packet", name, &json);
        stream.extend_from_slice(&encode_frame(&json));
        let mut one = vec![31u8];
        one.extend_from_slice(&encode_frame(&json));
        seed("quorum_frames", name, one);
    }
    seed("quorum_frames", "all", stream);
    seed("quorum_frames", "oversized", [0u8, 0, 1, 0, 0]);

    // Blocks and the miners' packets.
    let (encoded, blocks) = pow_chain();
    seed("pow_block", "one", framed_blocks(&encoded[..1]));
    seed("pow_block", "chain", framed_blocks(&encoded));
    seed(
        "pow_block",
        "fork",
        framed_blocks(&[encoded[0].clone(), encoded[0].clone(), encoded[1].clone()]),
    );
    seed(
        "pow_block",
        "orphan",
        framed_blocks(&[encoded[1].clone(), encoded[0].clone()]),
    );
    let tip = Tip {
        hash: blocks[2].hash(),
        height: 3,
        work: tally_core::U256::from_u64(3),
    };
    let tx = Transaction::from(blocks[0].transactions[0].to_signed_order());
    let pow_packets = [
        (
            "connect",
            PowPacket::Connect(Connect {
                network: tally_fuzz::fuzz_pow_params().network,
                listen: Some("127.0.0.1:4000".into()),
                tip,
            }),
        ),
        ("push", PowPacket::PushTransaction(tx.clone())),
        (
            "broadcast",
            PowPacket::HashBroadcast(HashBroadcast {
                hash: blocks[0].hash(),
                block: blocks[0].clone(),
            }),
        ),
        (
            "receive",
            PowPacket::ReceiveBlock(ReceiveBlock {
                blocks: blocks.clone(),
                tip,
            }),
        ),
        (
            "request",
            PowPacket::SendRequest(SendRequest {
                locator: vec![blocks[1].hash()],
                max: 10,
            }),
        ),
    ];
    for (name, packet) in pow_packets {
        seed("pow_packet", name, packet.encode());
    }

    // Chain records.
    let mut record = vec![4u8];
    record.extend_from_slice(&encoded[2]);
    seed("chain_records", "block", record);
    let mut record = vec![5u8];
    record.extend_from_slice(&tx.encode());
    seed("chain_records", "tx", record);
    let mut record = vec![3u8];
    record.extend_from_slice(&blocks[1].header.encode());
    record.push(0);
    seed("chain_records", "header", record);
    let undo = tally_chain::state::Undo {
        prior: vec![(
            alice().account(),
            tally_chain::AccountState {
                balance: Amount::from_microcash(5),
                next_sequence: 1,
            },
        )],
        prior_escrows: vec![
            (tally_core::EscrowId::from([1; 32]), None),
            (
                tally_core::EscrowId::from([2; 32]),
                Some(EscrowState::open(escrow_lock())),
            ),
        ],
    };
    let mut record = vec![0u8];
    record.extend_from_slice(&undo.encode());
    seed("chain_records", "undo", record);
    let escrow = EscrowState {
        lock: escrow_lock(),
        settlement: Settlement::Claimed(EscrowSecret::from([0x5e; 32])),
    };
    let mut record = vec![2u8];
    record.extend_from_slice(&escrow.to_bytes());
    seed("chain_records", "escrow", record);

    // Ledger records.
    let account = tally_ledger::AccountState {
        balance: -5,
        next_sequence: 3,
        introduced: true,
    };
    let mut record = vec![0u8];
    record.extend_from_slice(&records::encode_account(&account));
    seed("ledger_records", "account", record);
    let locks: Vec<tally_ledger::VoteLock> = orders()
        .into_iter()
        .map(|order| tally_ledger::VoteLock {
            slot: order.order.lock_slot(),
            digest: order.order.digest(&network),
            order: Some(order),
        })
        .collect();
    for (i, lock) in locks.iter().enumerate() {
        let mut record = vec![1u8];
        record.extend_from_slice(&records::lock_key(&lock.slot));
        record.extend_from_slice(&records::lock_row(lock));
        seed("ledger_records", &format!("lock-{i}"), record);
    }
    let mut record = vec![2u8];
    record.extend_from_slice(&records::journal_row(&locks));
    seed("ledger_records", "journal", record);
    let mut record = vec![3u8];
    record.extend_from_slice(&records::encode_escrow(&escrow));
    seed("ledger_records", "escrow", record);
    for (i, order) in orders().into_iter().enumerate() {
        let mut cert = Vec::new();
        records::certificate_record(&certificate(order), &mut cert).unwrap();
        let mut record = vec![4u8];
        record.extend_from_slice(&cert);
        seed("ledger_records", &format!("certificate-{i}"), record);
    }

    // Tracker requests, signed for the network the target serves.
    let mut served = vector_contract();
    served.intro_pow_bits = 0;
    let served = served.id();
    let address: std::net::SocketAddr = "198.51.100.7:2222".parse().unwrap();
    let timestamp = 1_700_000_000_000;
    let keys = [key(0x10), key(0x11)]
        .iter()
        .map(|k| KeyEntry {
            fingerprint: k.account(),
            proof_of_work: 0,
            signature: k
                .sign(SignedBytes::new(&served, &k.account(), 0, timestamp, &address).as_bytes()),
        })
        .collect::<Vec<_>>();
    let registration = Registration {
        network: served,
        address: address.to_string(),
        timestamp,
        keys,
        max: Some(8),
    };
    for (name, request) in [
        ("reg", Request::Reg(registration.clone())),
        ("regup", Request::RegUp(registration.clone())),
        ("initialize", Request::Initialize(registration)),
        (
            "list",
            Request::List(ListRequest {
                network: served,
                max: None,
            }),
        ),
    ] {
        seed("tracker_request", name, request.to_json());
    }

    // Relay streams.
    seed(
        "relay_lines",
        "join",
        b"\x09JOIN room-1 s3cret!\r\nhello # there\n\n@reserved\nTOPIC x y\n".as_slice(),
    );
    seed(
        "relay_lines",
        "notices",
        b"\x20TOPIC usd/a/b tok\n@ok private room 7 192.0.2.1 2/2 30000 65536\n@here 3 ::ffff:10.0.0.1\n@arrived 9 2001:db8::1\n@left 9 2001:db8::1 quit\n@error busy try later\n".as_slice(),
    );

    // Contracts.
    let contract = vector_contract();
    seed("network_contract", "vectors", contract.canonical_bytes());
    seed(
        "network_contract",
        "vectors-pretty",
        contract.to_pretty_json(),
    );
    let pow = tally_fuzz::fuzz_pow_contract();
    seed("network_contract", "pow", pow.to_pretty_json());

    // Coins.
    let file = CoinFile::new(coins()).unwrap();
    seed("coin_file", "two", file.to_json());
    seed("coin_token", "token", encode_token(&coins()).unwrap());
    seed("coin_token", "bundle", encode_bundle(&coins()).unwrap());
    seed("coin_token", "coin", coins()[0].to_bytes());

    // LiveConnect.
    for number in MessageNumber::ALL {
        let details = match number {
            MessageNumber::MoneyToBeSent => Details::Amount(Amount::from_microcash(31_000_000)),
            MessageNumber::Receipt => Details::Receipt("QUJD".into()),
            MessageNumber::EncryptedCoins => Details::SealedCoins {
                coins_b64: "QUJDRA==".into(),
                pown_deadline_ms: 1_700_000_600_000,
            },
            _ => Details::None,
        };
        let message = LiveMessage::outgoing(number, details);
        seed(
            "live_line",
            &format!("message-{}", number.number()),
            message.to_line(),
        );
        seed(
            "live_line",
            &format!("tag-{}", number.number()),
            format!("<# {}>", number.name()),
        );
    }
    let connection = ConnectionFile {
        relay: "relay.example.org:7009".into(),
        room: "a1b2c3".into(),
        token: "t0k3n".into(),
        network,
        session_key: SessionKey::from_bytes([7; 32]),
    };
    seed("live_connection_file", "file", connection.to_text());
    seed("live_session", "join", "J\n\n\n\n");
    seed("live_session", "restart", "J\nR\n\nL\n\nJ\n\n");
    seed(
        "live_session",
        "lines",
        "J\n{\"from\": \"#\", \"Message Number\": 4, \"Message_Details\": \"31\"}\n<# Heartbeat>\nC\n",
    );
    let mut long = String::from("J\n");
    for _ in 0..40 {
        long.push('\n');
    }
    seed("live_session", "timeouts", long);

    // Wire quotes.
    let signed = quote();
    seed(
        "wire_quote",
        "quote",
        TopicLine::Quote(Box::new(signed.clone())).to_line(),
    );
    seed("wire_quote", "quote-bytes", signed.to_bytes());
    seed(
        "wire_quote",
        "declined",
        TopicLine::Wire(Message::Declined {
            escrow_a: tally_core::EscrowId::from([3; 32]),
            reason: "no".into(),
        })
        .to_line(),
    );
    seed(
        "wire_quote",
        "locked",
        TopicLine::Wire(Message::PayerLocked {
            quote: signed.hash(),
            escrow: tally_core::EscrowId::from([4; 32]),
        })
        .to_line(),
    );

    // Wallet files, as the wallet writes them.
    let dir = tempdir();
    let mut wallet = tally_wallet::Wallet::open(&dir).unwrap();
    wallet.add_key(Some(alice()), Some("alice".into())).unwrap();
    wallet.add_key(Some(bob()), None).unwrap();
    wallet_seed("keys", 0, &std::fs::read(dir.join("keys.json")).unwrap());
    let receipt = wallet.save_receipt(&certificate(transfer(0))).unwrap();
    wallet_seed("receipt", 1, &std::fs::read(receipt).unwrap());
    let chain_receipt = tally_wallet::ChainReceipt {
        id: tx.id(),
        height: 1,
        confirmations: 6,
        order: tx.to_signed_order(),
    };
    let path = wallet.save_chain_receipt(&chain_receipt).unwrap();
    wallet_seed("chain-receipt", 2, &std::fs::read(path).unwrap());
    let journal = tally_wallet::wallet::BatchJournal {
        orders: vec![transfer(0), split()],
        coins: file.to_json(),
    };
    let path = wallet.set_pending_batch(&journal).unwrap();
    wallet_seed("batch", 3, &std::fs::read(path).unwrap());
    let words = tally_wallet::seed::Mnemonic::parse(
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
    )
    .unwrap();
    let cheap = tally_wallet::seed::KdfCost {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let clear = tempdir();
    tally_wallet::seed::SeedFile::create_with_cost(&clear, &words, None, cheap).unwrap();
    wallet_seed(
        "seed-clear",
        4,
        &std::fs::read(clear.join("seed.json")).unwrap(),
    );
    let sealed = tempdir();
    tally_wallet::seed::SeedFile::create_with_cost(&sealed, &words, Some("fuzz"), cheap).unwrap();
    wallet_seed(
        "seed-sealed",
        4,
        &std::fs::read(sealed.join("seed.json")).unwrap(),
    );
    wallet_seed(
        "counters",
        5,
        format!("{{\"{network}\": {{\"account\": 3, \"coin\": 9}}}}").as_bytes(),
    );
}

fn wallet_seed(name: &str, kind: u8, bytes: &[u8]) {
    let mut record = vec![kind];
    record.extend_from_slice(bytes);
    seed("wallet_files", name, record);
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tally-fuzz-seeds-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
