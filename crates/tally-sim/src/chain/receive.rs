//! What miners and wallets do with a message that reaches them.

use tally_chain::Transaction;
use tally_core::AccountId;

use super::{ChainWorld, Message, Party, Payload, SYNC_BLOCKS};
use crate::check::Violation;

impl ChainWorld {
    pub(super) fn deliver(&mut self, message: Message) -> Result<(), Box<Violation>> {
        if self.cut_off(message.from) || self.cut_off(message.to) {
            return Ok(());
        }
        self.outcome.messages += 1;
        match (message.to, message.payload) {
            (Party::Miner(m), payload) => {
                if !self.miners[m].is_up() {
                    return Ok(());
                }
                self.miner_receives(m, message.from, payload)?;
            }
            (Party::Payer(p), Payload::StatusIs(tx, status)) => {
                let (done, ask) = self.payers[p].on_status(&tx, status);
                if done {
                    self.outcome.payments += 1;
                    self.note(format!("payer {p}: payment confirmed"));
                }
                if let Some(ask) = ask {
                    self.ask(p, ask);
                }
            }
            (Party::Payer(p), Payload::AccountIs(next_sequence)) => {
                let recipients: Vec<AccountId> = self
                    .payers
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != p)
                    .map(|(_, payer)| payer.account())
                    .collect();
                let network = self.network;
                let ask =
                    self.payers[p].on_account(next_sequence, &mut self.rng, &network, &recipients);
                if let Some(ask) = ask {
                    self.ask(p, ask);
                }
            }
            (Party::Payer(_), _) => {}
        }
        Ok(())
    }

    pub(super) fn miner_receives(
        &mut self,
        m: usize,
        from: Party,
        payload: Payload,
    ) -> Result<(), Box<Violation>> {
        match (payload, from) {
            (Payload::Block(block), Party::Miner(peer)) => {
                self.accept(m, *block, Some(peer), true)?;
            }
            (Payload::GetBlock(hash), Party::Miner(peer)) => {
                if let Some(block) = self.stored_block(m, &hash)? {
                    self.send(Message {
                        from: Party::Miner(m),
                        to: Party::Miner(peer),
                        payload: Payload::Block(Box::new(block)),
                    });
                }
            }
            (Payload::Connect { work, locator }, Party::Miner(peer)) => {
                let Some(chain) = &self.miners[m].chain else {
                    return Ok(());
                };
                let tip = chain.tip();
                if tip.work > work {
                    let fork = chain.find_fork(&locator);
                    let blocks = chain
                        .blocks_from(fork + 1, SYNC_BLOCKS, usize::MAX)
                        .map_err(|e| {
                            self.violation(format!("miner {m} cannot read its main chain: {e}"))
                        })?;
                    for block in blocks {
                        self.send(Message {
                            from: Party::Miner(m),
                            to: Party::Miner(peer),
                            payload: Payload::Block(Box::new(block)),
                        });
                    }
                } else if tip.work < work
                    && let Some(payload) = self.connect_payload(m)
                {
                    self.send(Message {
                        from: Party::Miner(m),
                        to: Party::Miner(peer),
                        payload,
                    });
                }
            }
            (Payload::Tx(txs), _) => {
                let Some(chain) = self.miners[m].chain.as_mut() else {
                    return Ok(());
                };
                // Relayed once: only what this miner took in.
                let taken: Vec<Transaction> = txs
                    .into_iter()
                    .filter(|tx| chain.submit_transaction(tx.clone()).is_ok())
                    .collect();
                if !taken.is_empty() {
                    self.broadcast(m, &Payload::Tx(taken), None);
                }
            }
            (Payload::Account(account), Party::Payer(p)) => {
                let Some(chain) = &self.miners[m].chain else {
                    return Ok(());
                };
                let next = chain.account(&account).next_sequence;
                self.send(Message {
                    from: Party::Miner(m),
                    to: Party::Payer(p),
                    payload: Payload::AccountIs(next),
                });
            }
            (Payload::Status(tx), Party::Payer(p)) => {
                let Some(chain) = &self.miners[m].chain else {
                    return Ok(());
                };
                let status = chain.transaction_status(&tx);
                self.send(Message {
                    from: Party::Miner(m),
                    to: Party::Payer(p),
                    payload: Payload::StatusIs(tx, status),
                });
            }
            _ => {}
        }
        Ok(())
    }
}
