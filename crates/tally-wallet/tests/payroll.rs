//! `send-many` over real TCP and real redb files: a payroll from a wallet of three funded
//! accounts to four recipients. What is protected: every payment is paid exactly once,
//! from an account that could cover it, with its receipt kept and no journal entry left;
//! money is conserved; several accounts pay at once; a payment no account can cover is
//! refused in words without anything being signed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Net, cash, pending_files};
use tally_core::SecretKey;
use tally_wallet::ops;
use tally_wallet::payroll;
use tally_wallet::views;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payroll_is_paid_once_each_from_accounts_that_cover_it() {
    let net = Net::start_funded(Duration::from_millis(200), 1000).await;
    let client = net.client();
    let (mut wallet, _) = net.wallet("employer", Some(&net.payer));
    let second = wallet.add_key(None, None).unwrap().account;
    let third = wallet.add_key(None, None).unwrap().account;
    for account in [second, third] {
        ops::pay(&wallet, &client, &net.payer, account, cash(300))
            .await
            .unwrap();
    }
    let recipients: Vec<SecretKey> = (0..4).map(|_| SecretKey::generate()).collect();
    let mut file = String::from("recipient,amount\n");
    for i in 0..24 {
        file.push_str(&format!("{},10\n", recipients[i % 4].account()));
    }
    file.push_str(&format!("{},5000\n", recipients[0].account()));
    let payments = payroll::parse_payments(&file).unwrap();
    assert_eq!(payments.len(), 25);

    let mut payers = Vec::new();
    for entry in wallet.keys() {
        let seen = views::balance(&client, &entry.account).await.unwrap();
        payers.push((
            entry.secret_key().unwrap(),
            tally_core::Amount::from_microcash(u64::try_from(seen.balance).unwrap()),
        ));
    }
    let mut heard = 0;
    let outcomes = payroll::send_many(
        &wallet,
        &net.contract,
        Duration::from_secs(2),
        &payers,
        &payments,
        |_| heard += 1,
    )
    .await;
    assert_eq!(heard, 25, "every payment is reported as it completes");
    assert_eq!(
        outcomes.iter().map(|o| o.index).collect::<Vec<_>>(),
        (0..25).collect::<Vec<_>>(),
        "outcomes in file order"
    );
    let too_big = &outcomes[24];
    assert!(too_big.from.is_none());
    assert!(
        too_big
            .result
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("no account of the wallet holds"),
        "{:?}",
        too_big.result
    );
    let mut certificates = BTreeSet::new();
    let mut used = BTreeSet::new();
    for outcome in &outcomes[..24] {
        let receipt = outcome.result.as_ref().unwrap();
        assert!(receipt.path.exists(), "the receipt is kept");
        let tally_core::Order::Transfer(transfer) = &receipt.certificate.order else {
            panic!("a payment's certificate is a transfer");
        };
        assert_eq!(
            (transfer.recipient, transfer.amount, transfer.sender),
            (
                outcome.payment.recipient,
                outcome.payment.amount,
                outcome.from.unwrap()
            )
        );
        assert!(
            certificates.insert(receipt.certificate.checksum),
            "paid once"
        );
        used.insert(outcome.from.unwrap());
    }
    assert!(used.len() > 1, "several accounts paid: {used:?}");
    assert_eq!(pending_files(&wallet), 0, "no journal entry is left");
    for recipient in &recipients {
        assert_eq!(
            net.balance(&recipient.account()).await,
            cash(60).microcash() as i128
        );
    }
    let mut left = 0;
    for entry in wallet.keys() {
        left += net.balance(&entry.account).await;
    }
    assert_eq!(
        left,
        cash(1000 - 240).microcash() as i128,
        "money is conserved"
    );
    net.shutdown().await;
}

/// A payments file with a bad line pays nothing: it is refused before any account is asked.
#[test]
fn a_bad_line_refuses_the_whole_file() {
    let good = SecretKey::generate().account();
    let text = format!("{good},1\n{good},-1\n");
    assert!(payroll::parse_payments(&text).is_err());
}
