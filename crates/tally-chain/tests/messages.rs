//! What a person reads when a block or a transaction is refused: amounts in cash, exact
//! decimals, as `Amount` prints them.

use tally_chain::{BlockError, TxRejected};
use tally_core::Amount;

#[test]
fn refusals_name_their_amounts_in_cash() {
    let mempool = TxRejected::InsufficientFunds {
        available: Amount::from_microcash(1_000_000_000),
        amount: Amount::from_microcash(99_999),
    };
    assert_eq!(
        mempool.to_string(),
        "the sender has 1000 cash after its pending transactions, 0.099999 cash needed"
    );
    let block = BlockError::Overdraft {
        index: 3,
        balance: Amount::from_microcash(1_500_000),
        amount: Amount::from_microcash(2_000_000),
    };
    assert_eq!(
        block.to_string(),
        "transaction 3 spends 2 cash but the sender has 1.5 cash"
    );
    let coinbase = BlockError::CoinbaseAmount {
        expected: Amount::from_microcash(50_000_000),
        got: Amount::from_microcash(50_000_001),
    };
    assert_eq!(
        coinbase.to_string(),
        "coinbase pays 50.000001 cash, the block reward is 50 cash"
    );
}
