//! The web wallet in a real browser (headless Chromium over WebDriver) against a real
//! local network of four validators. What is protected: a person with the access token
//! sees the funded balance with how many validators agree, pays, and sees the receipt
//! checked against the contract; the explorer shows that certificate by its slot; the page
//! updates by itself when the balance changes elsewhere; without the token nothing is
//! served, a second wallet's server does not take the first's cookie, and a payment
//! posted from another site is refused with nothing paid. Each step saves a screenshot
//! under `target/web-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Net;
use common::browser::Browser;
use tally_core::{Amount, SecretKey};
use tally_wallet::{QuorumClient, Wallet, ops, views};

async fn balance(net: &Net, account: &tally_core::AccountId) -> i128 {
    let client = QuorumClient::new(net.contract.clone(), Duration::from_secs(2)).unwrap();
    views::balance(&client, account).await.unwrap().balance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_pays_in_the_browser_and_sees_the_receipt_verified() {
    let net = Net::start().await;
    let folder = net.wallet("alice", Some(&net.payer));
    let recipient = SecretKey::generate().account();
    let web = net.web(folder.clone()).await;
    let browser = Browser::start().await;

    // The token in the address is swapped for a cookie and leaves the address bar.
    browser.goto(&web.url()).await;
    assert!(
        !browser.url().await.contains("token="),
        "the token stays out of the address bar"
    );
    let shown = browser.wait_text("td.balance", "1000", 10).await;
    assert_eq!(shown, "1000");
    browser.wait_text("td.agree", "4 of 4", 10).await;
    browser.screenshot("wallet-funded").await;

    // A payment with a refused amount says why, in the page, and pays nothing.
    browser.type_into("#pay-to", &recipient.to_string()).await;
    browser.type_into("#pay-amount", "5000").await;
    browser.click("#pay-submit").await;
    let refused = browser.wait_text("#error", "refused", 20).await;
    assert!(refused.contains("refused"), "{refused}");
    browser.screenshot("wallet-payment-refused").await;
    assert_eq!(balance(&net, &recipient).await, 0);

    browser.type_into("#pay-to", &recipient.to_string()).await;
    browser.type_into("#pay-amount", "12.5").await;
    browser.click("#pay-submit").await;
    let verdict = browser.wait_text("#verdict", "verified", 20).await;
    assert_eq!(verdict, "signed by 4 of 4 validators: verified");
    assert!(browser.text("#paid").await.starts_with("Paid."));
    let checksum = browser.text("#checksum").await;
    browser.screenshot("receipt-verified").await;
    assert_eq!(balance(&net, &recipient).await, 12_500_000);
    // (Then 1 cash more while the explorer is open, and 7 while the wallet page is.)

    // The explorer's chart of payments per second follows a payment made elsewhere.
    browser
        .goto(&format!("http://{}/explorer", web.address()))
        .await;
    browser.wait_text("#validators-up", "4 of 4 up", 10).await;
    browser.wait_text("#rate-chart", "0 at most", 10).await;
    let wallet = Wallet::open(&folder).unwrap();
    let client = QuorumClient::new(net.contract.clone(), Duration::from_secs(2)).unwrap();
    ops::pay(
        &wallet,
        &client,
        &net.payer,
        recipient,
        Amount::from_cash(1).unwrap(),
    )
    .await
    .unwrap();
    browser.wait_text("#rate-chart", "1 at most", 15).await;
    browser.screenshot("explorer-chart").await;

    // The explorer finds the certificate by its slot (the payer's sequence 0).
    browser
        .type_into("#lookup-account", &net.payer.account().to_string())
        .await;
    browser.type_into("#lookup-sequence", "0").await;
    browser.click("#lookup-submit").await;
    browser.wait_text("#verdict", "verified", 20).await;
    assert_eq!(browser.text("#checksum").await, checksum);
    browser.screenshot("explorer-certificate").await;

    // The wallet page updates by itself when the balance changes elsewhere.
    browser.goto(&format!("http://{}/", web.address())).await;
    browser.wait_text("td.balance", "986.5", 10).await;
    // The receipt kept since the first view is listed, checked.
    let listed = browser.wait_text("#receipts", &checksum[..16], 10).await;
    assert!(
        listed.contains("signed by 4 of 4 validators: verified"),
        "{listed}"
    );
    browser.wait_text("#live", "live", 10).await;
    ops::pay(
        &wallet,
        &client,
        &net.payer,
        recipient,
        Amount::from_cash(7).unwrap(),
    )
    .await
    .unwrap();
    browser.wait_text("td.balance", "979.5", 15).await;
    browser.screenshot("wallet-live-update").await;

    browser.quit().await;
    web.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_nothing_is_served_and_cross_site_payments_are_refused() {
    let net = Net::start().await;
    let alice = net.web(net.wallet("alice", Some(&net.payer))).await;
    let bob_key = SecretKey::generate();
    let bob = net.web(net.wallet("bob", Some(&bob_key))).await;
    let http = reqwest::Client::new();

    // No token, a wrong token, another wallet's token: refused, pages and API alike.
    let root = format!("http://{}/", alice.address());
    let api = format!("http://{}/api/wallet", alice.address());
    let answer = http.get(&root).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.text().await.unwrap().contains("access token"));
    assert_eq!(http.get(&api).send().await.unwrap().status(), 401);
    let wrong = http
        .get(&api)
        .bearer_auth(bob.token().reveal())
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.status(),
        401,
        "bob's token does not open alice's wallet"
    );
    let right = http
        .get(&api)
        .bearer_auth(alice.token().reveal())
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let csp = right
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");

    // A browser holding alice's cookie does not get into bob's wallet by it; a browser
    // of its own (another profile) gets into neither without a token.
    let browser = Browser::start().await;
    browser.goto(&alice.url()).await;
    browser.wait_text("td.balance", "1000", 10).await;
    browser.goto(&format!("http://{}/", bob.address())).await;
    browser.wait_text("#message", "access token", 10).await;
    browser.screenshot("second-wallet-refused").await;
    let stranger = Browser::start().await;
    stranger.goto(&root).await;
    stranger.wait_text("#message", "access token", 10).await;
    stranger.quit().await;

    // A page on another origin posts a payment form to alice's wallet: the browser sends
    // alice's cookie along (every port of 127.0.0.1 is one site), and the wallet refuses.
    let evil = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_address = evil.local_addr().unwrap();
    let form = format!(
        "<!doctype html><form method=\"post\" action=\"http://{}/pay\">\
         <input type=\"hidden\" name=\"from\" value=\"{}\">\
         <input type=\"hidden\" name=\"to\" value=\"{}\">\
         <input type=\"hidden\" name=\"amount\" value=\"100\">\
         <button id=\"lure\" type=\"submit\">Win a prize</button></form>",
        alice.address(),
        net.payer.account(),
        bob_key.account()
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let form = form.clone();
            async move { axum::response::Html(form) }
        }),
    );
    let evil_server = tokio::spawn(async move { axum::serve(evil, app).await });
    browser.goto(&format!("http://{evil_address}/")).await;
    browser.click("#lure").await;
    browser.wait_text("#message", "another site", 10).await;
    browser.screenshot("cross-site-payment-refused").await;
    assert_eq!(
        balance(&net, &bob_key.account()).await,
        0,
        "nothing was paid"
    );
    assert_eq!(
        balance(&net, &net.payer.account()).await,
        1_000_000_000,
        "nothing left alice's account"
    );

    evil_server.abort();
    browser.quit().await;
    alice.stop().await;
    bob.stop().await;
    net.stop().await;
}

/// Coins in the browser: alice withdraws coins from her account, exports them as a token
/// (shown as text and as a QR code), and bob, in a browser of his own, imports the token
/// into his wallet, where every validator grades the coins authentic; value moved from
/// alice's account to bob's coins and nowhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coins_are_withdrawn_exported_as_a_token_and_imported_by_another_wallet() {
    let net = Net::start().await;
    let alice = net.web(net.wallet("alice", Some(&net.payer))).await;
    let bob = net
        .web(net.wallet("bob", Some(&SecretKey::generate())))
        .await;

    let browser = Browser::start().await;
    browser.goto(&alice.url()).await;
    browser
        .type_into("#withdraw-0 .withdraw-amount", "30")
        .await;
    browser.click("#withdraw-0 .withdraw-submit").await;
    browser.wait_text("#outcome", "Withdrew 30 cash", 30).await;
    browser.goto(&format!("http://{}/", alice.address())).await;
    assert_eq!(browser.wait_text("#spendable-0", "30", 10).await, "30");
    browser.wait_text("td.balance", "970", 10).await;
    // Each coin is listed (25 + 5), folded away until asked for.
    browser.click("#coin-list-0 summary").await;
    let listed = browser.wait_text("#coin-list-0", "Bank", 10).await;
    assert_eq!(listed.matches("Bank").count(), 2, "{listed}");
    browser.screenshot("coins-withdrawn").await;

    browser.type_into("#export-0 .export-amount", "30").await;
    browser.click("#export-0 .export-submit").await;
    let token = browser.wait_text("#token", "tallycoin1", 30).await;
    assert!(
        browser.find("#token-qr svg").await.is_some(),
        "the token is shown as a QR code too"
    );
    browser.screenshot("coins-exported-token").await;
    browser.goto(&format!("http://{}/", alice.address())).await;
    assert_eq!(browser.wait_text("#spendable-0", "0", 10).await, "0");
    browser.quit().await;

    let other = Browser::start().await;
    other.goto(&bob.url()).await;
    other.type_into("#import-0 .import-coins", &token).await;
    other.click("#import-0 .import-submit").await;
    other
        .wait_text("#outcome", "30 cash added to the Bank", 60)
        .await;
    other.screenshot("coins-imported").await;
    other.goto(&format!("http://{}/", bob.address())).await;
    assert_eq!(other.wait_text("#spendable-0", "30", 10).await, "30");
    other.click(".detect-submit").await;
    let grades = other.wait_text("#grades", "Authentic", 30).await;
    assert!(!grades.contains("Counterfeit"), "{grades}");
    other.screenshot("coins-detected").await;
    other.quit().await;

    assert_eq!(
        balance(&net, &net.payer.account()).await,
        970_000_000,
        "alice's account paid exactly the coins"
    );
    alice.stop().await;
    bob.stop().await;
    net.stop().await;
}

/// A live transfer between two browser sessions: alice starts a send of 31 cash, her page
/// shows the connection file and then the seed's numbered steps as they happen; bob pastes
/// the file into his wallet's page, and both pages end in success with the coins in bob's
/// Bank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_transfer_runs_between_two_browsers_showing_its_steps() {
    let net = Net::start().await;
    let alice = net.web(net.wallet("alice", Some(&net.payer))).await;
    let bob = net
        .web(net.wallet("bob", Some(&SecretKey::generate())))
        .await;

    let sender = Browser::start().await;
    sender.goto(&alice.url()).await;
    sender.type_into("#live-send-0 .live-amount", "31").await;
    sender.click("#live-send-0 .live-send-submit").await;
    let connection = sender.wait_text("#connection", "tally", 30).await;
    assert!(
        sender.find("#connection-qr svg").await.is_some(),
        "the connection file is shown as a QR code too"
    );
    sender.screenshot("live-send-started").await;

    let receiver = Browser::start().await;
    receiver.goto(&bob.url()).await;
    receiver
        .type_into("#live-receive-0 .live-connection", &connection)
        .await;
    receiver.click("#live-receive-0 .live-receive-submit").await;
    receiver
        .wait_text("#live-outcome", "Received 31 of the 31 cash", 90)
        .await;
    let steps = receiver.text("#steps").await;
    assert!(steps.lines().count() >= 3, "the steps were shown: {steps}");
    receiver.screenshot("live-received").await;

    sender
        .wait_text("#live-outcome", "Delivered 31 cash", 90)
        .await;
    let steps = sender.text("#steps").await;
    assert!(steps.lines().count() >= 3, "the steps were shown: {steps}");
    sender.screenshot("live-delivered").await;

    receiver.goto(&format!("http://{}/", bob.address())).await;
    assert_eq!(receiver.wait_text("#spendable-0", "31", 10).await, "31");
    sender.quit().await;
    receiver.quit().await;
    alice.stop().await;
    bob.stop().await;
    net.stop().await;
}

/// A wire in the browser: networks A and B that know each other, a relay and a maker
/// quoting A → B. Alice sees the maker's quote on the topic, wires 20 cash from A to B, and
/// her page shows the seed's steps as they happen and the wire receipt; she ends with 20
/// cash on B, and the maker with 20 + its fee on A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wire_runs_in_the_browser_showing_its_steps_and_receipt() {
    let (a, b) = Net::pair().await;
    let relay = a.relay.clone().unwrap();
    let maker = SecretKey::generate();
    let maker_dir = a.wallet("maker", Some(&maker));
    let client_b = QuorumClient::new(b.contract.clone(), Duration::from_secs(2)).unwrap();
    let funder = Wallet::open(&b.wallet("funder", Some(&b.payer))).unwrap();
    ops::pay(
        &funder,
        &client_b,
        &b.payer,
        maker.account(),
        Amount::from_cash(500).unwrap(),
    )
    .await
    .unwrap();
    let (status_tx, _status) = tokio::sync::watch::channel(tally_maker::MakerStatus::default());
    let stop_maker = tokio_util::sync::CancellationToken::new();
    let settings = tally_maker::MakerSettings {
        wallet_dir: maker_dir,
        account: None,
        pairs: vec![(a.contract.clone(), b.contract.clone())],
        relay: relay.clone(),
        fee_ppm: 10_000,
        fee_fixed: Amount::ZERO,
        min: Amount::from_cash(1).unwrap(),
        max: Amount::from_cash(100).unwrap(),
        lock_time: Duration::from_secs(120),
        delta: None,
        announce_every: Duration::from_secs(1),
        max_open_per_taker: 4,
        accounts: 1,
        bounds: tally_wallet::wire::Bounds::default(),
        timeout: Duration::from_secs(2),
    };
    let maker_task = tokio::spawn(tally_maker::run(settings, status_tx, stop_maker.clone()));

    let alice = a
        .web_on(
            a.wallet("alice", Some(&a.payer)),
            vec![a.contract.clone(), b.contract.clone()],
        )
        .await;
    let browser = Browser::start().await;
    browser.goto(&alice.url()).await;
    browser
        .goto(&format!(
            "http://{}/wire/quotes?from_network=0&to_network=1",
            alice.address()
        ))
        .await;
    browser
        .wait_text("#quotes-heard", "1 quote heard", 10)
        .await;
    assert!(browser.text("#quotes").await.contains("1.00 % + 0 cash"));
    browser.screenshot("wire-quotes").await;

    browser.goto(&format!("http://{}/", alice.address())).await;
    browser.type_into("#wire-0-1 .wire-amount", "20").await;
    browser.type_into("#wire-0-1 .wire-max-fee", "1").await;
    browser.click("#wire-0-1 .wire-submit").await;
    browser.wait_text("#wire-outcome", "completed", 60).await;
    let steps = browser.text("#wire-steps").await;
    for step in [
        "1. quote",
        "2. locked 20.2",
        "3. the maker locked 20",
        "4. claimed on B",
    ] {
        assert!(steps.contains(step), "{step:?} missing from {steps}");
    }
    let receipt = browser.text("#wire-receipt").await;
    assert!(receipt.contains("claim on B: certificate"), "{receipt}");
    browser.screenshot("wire-completed").await;

    assert_eq!(
        balance(&b, &a.payer.account()).await,
        20_000_000,
        "20 cash on B"
    );
    assert!(steps.contains("5. the maker claimed on A"), "{steps}");
    assert_eq!(
        balance(&a, &maker.account()).await,
        20_200_000,
        "the maker holds 20 + 0.2 fee on A"
    );
    stop_maker.cancel();
    let _ = maker_task.await;
    browser.quit().await;
    alice.stop().await;
    a.stop().await;
    b.stop().await;
}
