//! The web wallet's JSON API (PROTOCOL.md §11) over real HTTP against four real
//! validators: what a script or a shop relies on. Protected: a payment through
//! `POST /api/pay` returns its receipt checked against the contract; the receipts, the
//! validators, the account's history, the certificate by slot and the coins answer with the
//! documented fields; bad input is refused in words with the documented status and changes
//! nothing; a bearer token from a script needs no `Origin`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Net;
use serde_json::{Value, json};
use tally_core::SecretKey;

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_pays_and_reads_everything_the_pages_show() {
    let net = Net::start().await;
    let web = net.web(net.wallet("shop", Some(&net.payer))).await;
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{}", web.address()),
        token: web.token().reveal().to_string(),
    };
    let payer = net.payer.account().to_string();
    let customer = SecretKey::generate().account().to_string();

    // Refusals, in words, and nothing paid.
    let (status, refused) = api
        .post(
            "/api/pay",
            json!({"from": "shop", "to": customer, "amount": "2000"}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        refused["error"].as_str().unwrap().contains("refused"),
        "{refused}"
    );
    let (status, bad) = api
        .post(
            "/api/pay",
            json!({"from": "shop", "to": "not-an-account", "amount": "1"}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        bad["error"].as_str().unwrap().contains("not an account"),
        "{bad}"
    );

    let (status, receipt) = api
        .post(
            "/api/pay",
            json!({"from": "shop", "to": customer, "amount": "2.25"}),
        )
        .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["verified"], true);
    assert_eq!(receipt["verdict"], "signed by 4 of 4 validators: verified");
    assert_eq!(receipt["payments"][0]["recipient"], customer);
    assert_eq!(receipt["payments"][0]["amount"], "2.25");
    assert_eq!(receipt["sequence"], 0);
    let checksum = receipt["checksum"].as_str().unwrap().to_string();

    let (_, wallet) = api.get("/api/wallet").await;
    assert_eq!(wallet["accounts"][0]["balance_cash"], "997.75");
    assert_eq!(wallet["accounts"][0]["agree"], 4);

    let (_, receipts) = api.get("/api/receipts").await;
    assert_eq!(receipts["total"], 1);
    assert_eq!(receipts["receipts"][0]["checksum"], checksum);
    let (status, one) = api.get(&format!("/api/receipts/{checksum}")).await;
    assert_eq!((status, one["checksum"].as_str()), (200, Some(&*checksum)));
    let (status, _) = api.get(&format!("/api/receipts/{}", "0".repeat(64))).await;
    assert_eq!(status, 404);
    let (status, _) = api.get("/api/receipts/xyz").await;
    assert_eq!(status, 400);

    let (_, validators) = api.get("/api/explorer/validators").await;
    let validators = validators.as_array().unwrap();
    assert_eq!(validators.len(), 4);
    assert!(validators.iter().all(|v| v["up"] == true && v["lag"] == 0));

    let (_, account) = api.get(&format!("/api/explorer/accounts/{payer}")).await;
    assert_eq!(account["balance_cash"], "997.75");
    assert_eq!(account["history"][0][1]["checksum"], checksum);
    let (status, certificate) = api
        .get(&format!("/api/explorer/certificates/{payer}/0"))
        .await;
    assert_eq!(
        (status, certificate["checksum"].as_str()),
        (200, Some(&*checksum))
    );
    let (status, _) = api
        .get(&format!("/api/explorer/certificates/{payer}/1"))
        .await;
    assert_eq!(status, 404, "no certificate for a slot not yet taken");
    let (status, _) = api.get("/api/explorer/validators?network=7").await;
    assert_eq!(status, 404);

    // Coins: withdraw, then the folders say so.
    let (status, withdrawn) = api
        .post("/api/coins/withdraw", json!({"amount": "6"}))
        .await;
    assert_eq!(status, 200, "{withdrawn}");
    assert_eq!(withdrawn["banked"].as_array().unwrap().len(), 2, "5 + 1");
    let (_, coins) = api.get("/api/coins").await;
    assert_eq!(coins["spendable"], 6);
    let (status, odd) = api
        .post("/api/coins/withdraw", json!({"amount": "0.5"}))
        .await;
    assert_eq!(status, 422, "coins hold whole cash: {odd}");
    let (status, _) = api.post("/api/coins/mint", json!({})).await;
    assert_eq!(status, 404);
    let (_, wallet) = api.get("/api/wallet").await;
    assert_eq!(wallet["accounts"][0]["balance_cash"], "991.75");

    web.stop().await;
    net.stop().await;
}
