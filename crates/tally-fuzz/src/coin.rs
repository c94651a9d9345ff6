//! Bearer coins: the coin file and the coin token, both handed from person to person.

use tally_core::coin::{decode_bundle, encode_bundle};
use tally_core::{Coin, CoinFile, Decode, Encode, decode_token, encode_token};

use crate::quorum::order_shape_ok;

/// Whether every coin's funding certificate carries an order a validator could have
/// certified (only those must survive the binary codec a token uses).
fn fundings_shaped(coins: &[Coin]) -> bool {
    coins.iter().all(|coin| {
        coin.funding.as_ref().is_none_or(|certificate| {
            order_shape_ok(&certificate.order)
                && certificate.votes.len() <= tally_core::Certificate::MAX_VOTES
        })
    })
}

/// `coin_file`: a coin file's text as a wallet imports one a person hands it
/// ([`CoinFile::from_json`]).
///
/// Properties of an accepted file: it holds at least one coin, all of its network; its
/// text ([`CoinFile::to_json`]) reads back to an equal file; and its coins, made into a
/// token (what `export` does), read back from the token equal, unless a funding
/// certificate carries an order no validator could certify.
pub fn coin_file(data: &[u8]) {
    let Some(text) = crate::text(data) else {
        return;
    };
    let Ok(file) = CoinFile::from_json(text) else {
        return;
    };
    assert!(!file.coins().is_empty());
    let network = file.network();
    assert!(file.coins().iter().all(|coin| coin.network == network));
    let again = CoinFile::from_json(&file.to_json());
    assert!(
        again.as_ref().is_ok_and(|again| *again == file),
        "a coin file does not read back: {again:?}"
    );
    for coin in file.coins() {
        let _ = coin.account();
        let _ = coin.amount();
    }
    let token = encode_token(file.coins());
    assert!(
        token.is_ok(),
        "a valid coin file's coins make no token: {token:?}"
    );
    if let Ok(token) = token {
        let back = decode_token(&token);
        assert!(
            back.as_ref().is_ok_and(|back| back == file.coins()) || !fundings_shaped(file.coins()),
            "a coin file's token does not read back: {back:?}"
        );
    }
}

/// `coin_token`: a coin token's text as a wallet imports one pasted to it
/// ([`decode_token`]), and the same bytes as a token's binary bundle ([`decode_bundle`],
/// which LiveConnect's sealed coins also carry) and as one stored coin ([`Coin`]'s codec).
///
/// Properties: an accepted token's coins make a token again that reads back to the same
/// coins; an accepted bundle and an accepted coin re-encode to exactly their bytes (one
/// encoding each); and an accepted set of coins is a valid coin file.
pub fn coin_token(data: &[u8]) {
    if let Some(text) = crate::text(data)
        && let Ok(coins) = decode_token(text)
    {
        let token = encode_token(&coins);
        let back = token.as_deref().map(decode_token);
        assert!(
            matches!(&back, Ok(Ok(back)) if *back == coins),
            "a token's coins do not make a token that reads back: {back:?}"
        );
        assert!(CoinFile::new(coins).is_ok());
    }
    if let Ok(coins) = decode_bundle(data) {
        let bundle = encode_bundle(&coins);
        assert!(
            bundle.as_deref().is_ok_and(|bundle| bundle == data),
            "a bundle is not written the one way it is encoded"
        );
    }
    if let Ok(coin) = Coin::from_bytes(data) {
        assert_eq!(
            coin.to_bytes(),
            data,
            "a coin is not written the one way it is encoded"
        );
        assert_eq!(coin.encoded_len(), data.len());
    }
}
