//! The cross-server wire: the lines of a maker's topic room and a quote's binary form.

use tally_core::{AccountId, Amount, Decode, Encode};
use tally_swap::timing::Timing;
use tally_swap::wire::TopicLine;
use tally_swap::{Quote, SignedQuote, Want};

/// `wire_quote`: one line of a wire topic room as payers and makers read it
/// ([`TopicLine::parse`]: a maker's signed quote, or a message between a payer and a
/// maker, from anyone in the public room), and the same bytes as a signed quote's binary
/// form (what a lock's counterpart hash covers).
///
/// Properties: an accepted line writes out ([`TopicLine::to_line`]) and parses back equal;
/// a quote's check as a payer runs it ([`SignedQuote::check`]) completes; its fee is
/// monotone and [`Quote::amount_for_total`] inverts [`Quote::total_for`] exactly on the
/// quote's range (how a maker reads a payer's lock); its binary form reads back equal
/// when its asset fits the bound; and an accepted binary quote re-encodes to exactly its
/// bytes.
pub fn wire_quote(data: &[u8]) {
    if let Some(text) = crate::text(data)
        && let Ok(line) = TopicLine::parse(text)
    {
        let written = line.to_line();
        let again = TopicLine::parse(&written);
        assert!(
            again.as_ref().is_ok_and(|again| *again == line),
            "a topic line does not read back: {line:?} -> {again:?}"
        );
        if let TopicLine::Quote(quote) = &line {
            check_quote(quote);
            let bytes = quote.to_bytes();
            let back = SignedQuote::from_bytes(&bytes);
            assert!(
                back.as_ref().is_ok_and(|back| back == quote.as_ref())
                    || quote.quote.asset.len() > tally_swap::MAX_ASSET_LEN,
                "a quote does not survive the binary codec: {back:?}"
            );
        }
    }
    if let Ok(quote) = SignedQuote::from_bytes(data) {
        assert_eq!(
            quote.to_bytes(),
            data,
            "a quote is not written the one way it is encoded"
        );
        assert_eq!(quote.encoded_len(), data.len());
        check_quote(&quote);
    }
}

fn check_quote(signed: &SignedQuote) {
    let quote: &Quote = &signed.quote;
    let _ = signed.verify();
    let _ = signed.hash();
    let _ = quote.topic();
    let _ = quote.check_shape();
    let want = Want {
        asset: quote.asset.clone(),
        network_a: quote.network_a,
        network_b: quote.network_b,
    };
    let payer = AccountId::from([0x77; 32]);
    for amount in [quote.min_amount, quote.max_amount] {
        let _ = signed.check(&want, &payer, amount, &Timing::default(), 0);
    }
    if quote.check_shape().is_err() {
        return;
    }
    let mut previous: Option<Amount> = None;
    for amount in [quote.min_amount, midpoint(quote), quote.max_amount] {
        let Some(total) = quote.total_for(amount) else {
            continue;
        };
        assert!(total >= amount);
        if let Some(previous) = previous {
            assert!(total >= previous, "the total falls as the amount grows");
        }
        previous = Some(total);
        assert_eq!(
            quote.amount_for_total(total),
            Some(amount),
            "amount_for_total does not invert total_for at {amount}"
        );
        if let Some(one_less) = total.checked_sub(Amount::from_microcash(1)) {
            assert_ne!(quote.amount_for_total(one_less), Some(amount));
        }
    }
}

fn midpoint(quote: &Quote) -> Amount {
    let (low, high) = (quote.min_amount.microcash(), quote.max_amount.microcash());
    Amount::from_microcash(low + (high - low) / 2)
}
