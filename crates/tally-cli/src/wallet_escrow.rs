//! `tally wallet escrow …`: hash-locked escrows by hand (DESIGN §8), for scripts and for
//! people who want to see the mechanism the wire uses. Parses, calls
//! `tally_wallet::escrow`, prints.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use tally_core::{Digest, EscrowId, EscrowSecret, NetworkContract};
use tally_proto::EscrowQuery;
use tally_wallet::escrow::{self, EscrowStatus, LockTerms};
use tally_wallet::{QuorumClient, Wallet};

use crate::duration::parse_positive_duration;

/// `tally wallet escrow …`
#[derive(Subcommand)]
pub enum EscrowCommand {
    /// Lock AMOUNT cash for account TO under a hash lock until a deadline. Without
    /// `--hash-lock` the wallet draws the secret, keeps it, and prints it.
    Lock {
        to: String,
        amount: String,
        /// How long the payee has to claim it (`90s`, `10m`), by the validators' clocks; on
        /// a proof-of-work network, as many blocks of the contract's block time.
        #[arg(long, value_parser = parse_positive_duration, default_value = "10m")]
        within: Duration,
        /// The hash lock (64 hex): SHA-256 of a secret someone else holds.
        #[arg(long)]
        hash_lock: Option<String>,
        /// The paying account (hex prefix or label); the first account by default.
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        waiting: ChainWaiting,
    },
    /// Claim escrow ESCROW for its payee with the secret (this wallet's own, if it drew it).
    Claim {
        escrow: String,
        /// The secret (64 hex); looked up among the wallet's secrets when absent.
        #[arg(long)]
        secret: Option<String>,
        #[command(flatten)]
        waiting: ChainWaiting,
    },
    /// Return escrow ESCROW to its payer, once its deadline has passed.
    Refund {
        escrow: String,
        #[command(flatten)]
        waiting: ChainWaiting,
    },
    /// How an escrow stands at every validator (by id, or `--hash-lock`).
    Show {
        escrow: Option<String>,
        #[arg(long, conflicts_with = "escrow")]
        hash_lock: Option<String>,
    },
}

/// How long a proof-of-work escrow order is followed.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct ChainWaiting {
    /// Proof-of-work networks: confirmations to wait for.
    #[arg(long, default_value_t = 1)]
    pub confirmations: u64,
    /// Proof-of-work networks: seconds to wait for them before giving up.
    #[arg(long, default_value_t = 600)]
    pub wait: u64,
}

impl ChainWaiting {
    pub fn waiting(&self) -> tally_wallet::chain::Waiting {
        tally_wallet::chain::Waiting {
            confirmations: self.confirmations.max(1),
            patience: Duration::from_secs(self.wait),
        }
    }
}

pub async fn run(
    wallet: &Wallet,
    contract: NetworkContract,
    command: &EscrowCommand,
    timeout: Duration,
) -> anyhow::Result<(Value, String)> {
    let validators = contract.validators.len();
    let client = QuorumClient::located(contract, timeout).await?;
    match command {
        EscrowCommand::Lock {
            to,
            amount,
            within,
            hash_lock,
            from,
            waiting: _,
        } => {
            let LockInputs {
                entry,
                secret,
                terms,
            } = lock_inputs(
                wallet,
                to,
                amount,
                *within,
                hash_lock.as_deref(),
                from.as_deref(),
            )?;
            let (payee, amount, hash_lock) = (terms.payee, terms.amount, terms.hash_lock);
            let locked = escrow::lock(wallet, &client, &entry.secret_key()?, terms).await?;
            let mut text = format!(
                "locked {amount} cash for {} until {} ms (Unix time)\nescrow {}\nhash lock {hash_lock}\ncertificate acknowledged by {}/{validators} validators",
                payee.short(),
                locked.lock.deadline,
                locked.escrow,
                locked.receipt.acknowledged
            );
            if let Some(secret) = secret {
                text.push_str(&format!(
                    "\nsecret {secret} (kept in the wallet; whoever has it can claim the escrow for {})",
                    payee.short()
                ));
            }
            Ok((
                json!({"escrow": locked.escrow, "payer": entry.account, "payee": payee, "amount": amount.microcash(), "hash_lock": hash_lock, "deadline_ms": locked.lock.deadline, "secret": secret, "acknowledged": locked.receipt.acknowledged, "validators": validators, "receipt": locked.receipt.path}),
                text,
            ))
        }
        EscrowCommand::Claim {
            escrow: id,
            secret,
            waiting: _,
        } => {
            let id = digest(id, "escrow")?;
            let secret = match secret {
                Some(text) => parse_secret(text)?,
                None => own_secret(wallet, &client, id).await?,
            };
            let receipt = escrow::claim(wallet, &client, id, secret).await?;
            Ok((
                json!({"escrow": id, "claimed": true, "certificate": receipt.certificate.checksum, "acknowledged": receipt.acknowledged, "validators": validators, "receipt": receipt.path}),
                format!(
                    "claimed escrow {id}; certificate {} acknowledged by {}/{validators} validators",
                    receipt.certificate.checksum, receipt.acknowledged
                ),
            ))
        }
        EscrowCommand::Refund {
            escrow: id,
            waiting: _,
        } => {
            let id = digest(id, "escrow")?;
            let receipt = escrow::refund(wallet, &client, id).await?;
            Ok((
                json!({"escrow": id, "refunded": true, "certificate": receipt.certificate.checksum, "acknowledged": receipt.acknowledged, "validators": validators, "receipt": receipt.path}),
                format!(
                    "refunded escrow {id}; certificate {} acknowledged by {}/{validators} validators",
                    receipt.certificate.checksum, receipt.acknowledged
                ),
            ))
        }
        EscrowCommand::Show {
            escrow: id,
            hash_lock,
        } => {
            let query = query(id.as_deref(), hash_lock.as_deref())?;
            let status = escrow::status(&client, &query).await;
            Ok(show(&status, validators))
        }
    }
}

/// The secret this wallet drew for the escrow's hash lock.
async fn own_secret(
    wallet: &Wallet,
    client: &QuorumClient,
    id: EscrowId,
) -> anyhow::Result<EscrowSecret> {
    let status = escrow::status(client, &EscrowQuery::Id(id)).await;
    let Some(lock) = status.lock else {
        bail!("no validator knows escrow {id}");
    };
    if let Some(secret) = status.secret {
        return Ok(secret);
    }
    wallet.secret(&lock.hash_lock)?.with_context(|| {
        format!(
            "this wallet does not hold the secret of hash lock {}; pass --secret",
            lock.hash_lock
        )
    })
}

/// What `escrow lock` asks for, on either kind of network.
pub struct LockInputs {
    /// The paying account.
    pub entry: tally_wallet::KeyEntry,
    /// The secret, when this wallet drew it (kept in the wallet first).
    pub secret: Option<EscrowSecret>,
    /// The terms, the deadline `within` from now by this machine's clock.
    pub terms: LockTerms,
}

/// Parses `escrow lock`'s arguments; without a hash lock, draws the secret and keeps it in
/// the wallet before anything is signed.
pub fn lock_inputs(
    wallet: &Wallet,
    to: &str,
    amount: &str,
    within: Duration,
    hash_lock: Option<&str>,
    from: Option<&str>,
) -> anyhow::Result<LockInputs> {
    let (payee, amount) = crate::wallet::payment(to, amount)?;
    let entry = wallet.find(from)?.clone();
    let (hash_lock, secret) = match hash_lock {
        Some(text) => (digest(text, "hash lock")?, None),
        None => {
            let secret = escrow::new_secret(wallet)?;
            (secret.hash_lock(), Some(secret))
        }
    };
    let within = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
    Ok(LockInputs {
        entry,
        secret,
        terms: LockTerms {
            payee,
            amount,
            hash_lock,
            deadline_ms: escrow::unix_ms().saturating_add(within),
            counterpart: None,
        },
    })
}

pub fn parse_secret(text: &str) -> anyhow::Result<EscrowSecret> {
    text.parse::<EscrowSecret>()
        .with_context(|| format!("secret {text:?} is not 64 hex digits"))
}

/// The query `show` names: an escrow id, or a hash lock.
pub fn query(id: Option<&str>, hash_lock: Option<&str>) -> anyhow::Result<EscrowQuery> {
    match (id, hash_lock) {
        (Some(id), _) => Ok(EscrowQuery::Id(digest(id, "escrow")?)),
        (None, Some(hash)) => Ok(EscrowQuery::HashLock(digest(hash, "hash lock")?)),
        (None, None) => bail!("name an escrow, or a --hash-lock"),
    }
}

pub fn digest(text: &str, what: &str) -> anyhow::Result<Digest> {
    text.parse()
        .with_context(|| format!("{what} {text:?} is not 64 hex digits"))
}

fn show(status: &EscrowStatus, validators: usize) -> (Value, String) {
    let standing = if status.claimed > 0 {
        "claimed"
    } else if status.refunded > 0 {
        "refunded"
    } else if status.open > 0 {
        "open"
    } else {
        "unknown"
    };
    let mut text = match status.lock {
        Some(lock) => format!(
            "escrow {}: {standing}\n  {} cash from {} to {}, deadline {} ms (Unix time), hash lock {}",
            status.escrow.map(|e| e.to_string()).unwrap_or_default(),
            lock.amount,
            lock.payer.short(),
            lock.payee.short(),
            lock.deadline,
            lock.hash_lock
        ),
        None => "no validator that answered knows this escrow".into(),
    };
    text.push_str(&format!(
        "\n  {}/{validators} validators answered: {} open, {} claimed, {} refunded; votes held for a claim {}, for a refund {}",
        status.answered, status.open, status.claimed, status.refunded, status.claim_votes, status.refund_votes
    ));
    if let Some(secret) = status.secret {
        text.push_str(&format!("\n  secret revealed: {secret}"));
    }
    if let Some((low, high)) = status.clocks {
        text.push_str(&format!("\n  validators' clocks: {low} to {high} ms"));
    }
    (
        json!({"escrow": status.escrow, "state": standing, "lock": status.lock, "answered": status.answered, "open": status.open, "claimed": status.claimed, "refunded": status.refunded, "claim_votes": status.claim_votes, "refund_votes": status.refund_votes, "secret": status.secret, "clocks": status.clocks}),
        text,
    )
}
