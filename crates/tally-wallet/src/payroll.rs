//! Many payments from one wallet at once (a payroll, a merchant's refunds): `tally wallet
//! … send-many FILE`. One account's payments are sequential by design (each takes the
//! account's next lock slot), so the payments are spread over the wallet's accounts and
//! every account pays its share one after another while all accounts pay at once. Each
//! payment is an ordinary [`ops::pay`]: journaled before it is signed, its receipt kept.

use std::collections::BTreeMap;
use std::time::Duration;

use tally_core::{AccountId, Amount, NetworkContract, SecretKey};

use crate::client::QuorumClient;
use crate::ops::{self, OpError, Receipt};
use crate::wallet::Wallet;

/// One line of the file: who is paid how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payment {
    pub recipient: AccountId,
    pub amount: Amount,
}

/// Why a payments file is refused (nothing is paid).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PaymentsError {
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("the file holds no payment")]
    Empty,
}

/// Reads a payments file: one payment per line, either CSV (`recipient,amount`, an optional
/// `recipient,amount` header) or a JSON object (`{"to": "<64 hex>", "amount": "1.5"}`; the
/// amount a string or a number of cash). Empty lines and lines starting with `#` are
/// skipped. Amounts are exact decimals of cash, more than zero. The whole file is refused
/// at its first bad line, so that a typo never pays half a payroll.
pub fn parse_payments(text: &str) -> Result<Vec<Payment>, PaymentsError> {
    let mut payments = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = |why: String| PaymentsError::Line { line, why };
        let (to, amount) = if trimmed.starts_with('{') {
            let value: serde_json::Value =
                serde_json::from_str(trimmed).map_err(|e| bad(format!("not JSON: {e}")))?;
            let to = value
                .get("to")
                .or_else(|| value.get("recipient"))
                .and_then(|v| v.as_str())
                .ok_or_else(|| bad("no \"to\" (the recipient's 64 hex)".into()))?
                .to_owned();
            let amount = match value.get("amount") {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Number(number)) => number.to_string(),
                _ => return Err(bad("no \"amount\"".into())),
            };
            (to, amount)
        } else {
            let mut fields = trimmed.split(',').map(str::trim);
            let (Some(to), Some(amount), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad("expected two fields: recipient,amount".into()));
            };
            if payments.is_empty() && to.eq_ignore_ascii_case("recipient") {
                continue;
            }
            (to.to_owned(), amount.to_owned())
        };
        let recipient =
            AccountId::parse_key(&to).map_err(|e| bad(format!("recipient {to:?}: {e}")))?;
        let amount: Amount = amount
            .parse()
            .map_err(|e| bad(format!("amount {amount:?}: {e}")))?;
        if amount.is_zero() {
            return Err(bad("the amount must be more than zero".into()));
        }
        payments.push(Payment { recipient, amount });
    }
    if payments.is_empty() {
        return Err(PaymentsError::Empty);
    }
    Ok(payments)
}

/// Which payer pays each payment: the largest first, each to the payer with the most left
/// (so the shares come out about even and no account is asked for more than it holds);
/// `None` where no payer has enough left, or where the payer would pay itself.
pub fn assign(payments: &[Payment], payers: &[(AccountId, Amount)]) -> Vec<Option<usize>> {
    let mut left: Vec<u64> = payers.iter().map(|(_, a)| a.microcash()).collect();
    let mut order: Vec<usize> = (0..payments.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(payments[i].amount));
    let mut chosen = vec![None; payments.len()];
    for i in order {
        let payment = &payments[i];
        let best = (0..payers.len())
            .filter(|&p| payers[p].0 != payment.recipient)
            .filter(|&p| left[p] >= payment.amount.microcash())
            .max_by_key(|&p| (left[p], std::cmp::Reverse(p)));
        if let Some(p) = best {
            left[p] -= payment.amount.microcash();
            chosen[i] = Some(p);
        }
    }
    chosen
}

/// What became of one payment of the file.
#[derive(Debug)]
pub struct PaymentOutcome {
    /// Its place in the file's payments, from 0.
    pub index: usize,
    pub payment: Payment,
    /// The account that paid it (or was to).
    pub from: Option<AccountId>,
    pub result: Result<Receipt, OpError>,
}

/// Pays every payment from `payers` (the wallet's keys with what each holds now, as a
/// quorum of validators agrees): spread by [`assign`], each payer's share in file order on
/// a task of its own (its own view of the wallet folder and its own connections, so one
/// account's journal writes and syncs never hold up another's), all payers at once.
/// `on_done` hears of each payment as it completes (a progress bar); the outcomes come back
/// in file order. A payment no payer can cover is refused without being signed.
pub async fn send_many(
    wallet: &Wallet,
    contract: &NetworkContract,
    timeout: Duration,
    payers: &[(SecretKey, Amount)],
    payments: &[Payment],
    mut on_done: impl FnMut(&PaymentOutcome),
) -> Vec<PaymentOutcome> {
    let balances: Vec<(AccountId, Amount)> =
        payers.iter().map(|(k, a)| (k.account(), *a)).collect();
    let chosen = assign(payments, &balances);
    let mut queues: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut outcomes: Vec<Option<PaymentOutcome>> = (0..payments.len()).map(|_| None).collect();
    for (index, payer) in chosen.iter().enumerate() {
        match payer {
            Some(p) => queues.entry(*p).or_default().push(index),
            None => {
                let outcome = PaymentOutcome {
                    index,
                    payment: payments[index],
                    from: None,
                    result: Err(OpError::Refused(format!(
                        "no account of the wallet holds {} cash left for it",
                        payments[index].amount
                    ))),
                };
                on_done(&outcome);
                outcomes[index] = Some(outcome);
            }
        }
    }
    let (done, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for (p, queue) in queues {
        let done = done.clone();
        let key = payers[p].0.clone();
        let share: Vec<(usize, Payment)> = queue.into_iter().map(|i| (i, payments[i])).collect();
        let (dir, contract) = (wallet.dir().to_path_buf(), contract.clone());
        tasks.spawn(async move {
            let opened = Wallet::open(&dir)
                .map_err(OpError::from)
                .and_then(|wallet| {
                    let client = QuorumClient::new(contract, timeout).map_err(OpError::from)?;
                    Ok((wallet, client))
                });
            let (wallet, client) = match opened {
                Ok(opened) => opened,
                Err(error) => {
                    let why = error.to_string();
                    for (index, payment) in share {
                        let _ = done.send(PaymentOutcome {
                            index,
                            payment,
                            from: Some(key.account()),
                            result: Err(OpError::Refused(why.clone())),
                        });
                    }
                    return;
                }
            };
            for (index, payment) in share {
                let result =
                    ops::pay(&wallet, &client, &key, payment.recipient, payment.amount).await;
                let _ = done.send(PaymentOutcome {
                    index,
                    payment,
                    from: Some(key.account()),
                    result,
                });
            }
        });
    }
    drop(done);
    while let Some(outcome) = arrived.recv().await {
        on_done(&outcome);
        let index = outcome.index;
        outcomes[index] = Some(outcome);
    }
    while tasks.join_next().await.is_some() {}
    outcomes.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(n: u8) -> AccountId {
        SecretKey::from_bytes([n; 32]).account()
    }

    fn cash(text: &str) -> Amount {
        text.parse().unwrap()
    }

    /// CSV with a header, JSON lines with string and number amounts, comments and blank
    /// lines all read; the first bad line refuses the whole file and says where.
    #[test]
    fn payment_files_are_read_whole_or_refused_at_their_first_bad_line() {
        let (a, b) = (key(1), key(2));
        let text = format!(
            "recipient,amount\n{a},1.5\n\n# refunds\n{{\"to\": \"{b}\", \"amount\": \"0.25\"}}\n{{\"to\": \"{a}\", \"amount\": 2}}\n"
        );
        assert_eq!(
            parse_payments(&text).unwrap(),
            vec![
                Payment {
                    recipient: a,
                    amount: cash("1.5")
                },
                Payment {
                    recipient: b,
                    amount: cash("0.25")
                },
                Payment {
                    recipient: a,
                    amount: cash("2")
                },
            ]
        );
        for (bad, line) in [
            (format!("{a},1\n{b},0\n"), 2),
            (format!("{a},1\nnot-a-key,1\n"), 2),
            (format!("{a},1,extra\n"), 1),
            (format!("{a},one\n"), 1),
            ("{\"amount\": \"1\"}\n".to_owned(), 1),
        ] {
            assert!(
                matches!(parse_payments(&bad), Err(PaymentsError::Line { line: l, .. }) if l == line),
                "{bad:?}"
            );
        }
        assert_eq!(parse_payments("# nothing\n\n"), Err(PaymentsError::Empty));
    }

    /// Every payment goes to a payer that can cover it, never to the recipient itself, and
    /// no payer is assigned more than it holds; what nobody can cover is left out.
    #[test]
    fn payments_are_spread_within_what_each_payer_holds() {
        let payers = [(key(1), cash("10")), (key(2), cash("4"))];
        let payments: Vec<Payment> = [("3", 9), ("3", 9), ("3", 9), ("3", 9), ("20", 9), ("1", 1)]
            .iter()
            .map(|(amount, to)| Payment {
                recipient: key(*to),
                amount: cash(amount),
            })
            .collect();
        let chosen = assign(&payments, &payers);
        assert_eq!(chosen[4], None, "20 cash: no payer holds that much");
        assert_eq!(
            chosen[5],
            Some(1),
            "the payment to key 1 is not paid by key 1"
        );
        let mut spent = [0u64; 2];
        for (payment, payer) in payments.iter().zip(&chosen) {
            if let Some(p) = payer {
                spent[*p] += payment.amount.microcash();
            }
        }
        assert!(spent[0] <= cash("10").microcash() && spent[1] <= cash("4").microcash());
        assert_eq!(
            chosen.iter().flatten().count(),
            5,
            "everything coverable is assigned"
        );
    }
}
