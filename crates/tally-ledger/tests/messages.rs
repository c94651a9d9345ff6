//! What a person reads when the ledger refuses an order: amounts in cash, exact decimals.

use tally_core::Amount;
use tally_ledger::LedgerError;

#[test]
fn an_overdraft_names_both_amounts_in_cash() {
    let error = LedgerError::InsufficientFunds {
        balance: 1_000_000_000,
        amount: Amount::from_microcash(99_999),
    };
    assert_eq!(
        error.to_string(),
        "balance 1000 cash cannot pay 0.099999 cash"
    );
    let behind = LedgerError::InsufficientFunds {
        balance: -1_500_000,
        amount: Amount::from_microcash(2_000_000),
    };
    assert_eq!(behind.to_string(), "balance -1.5 cash cannot pay 2 cash");
}
