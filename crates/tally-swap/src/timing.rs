//! The wire's timing rule (DESIGN §8): how far apart the two deadlines must be, when a
//! claimant must stop claiming, and when a refund can first be voted.
//!
//! **The argument.** Write T_A for the payer's deadline on A, T_B for the maker's on B, and
//! ε_A, ε_B for the networks' declared bounds on an honest validator's clock error.
//!
//! 1. A validator of B votes a claim only while its clock is before T_B; its clock is at
//!    most ε_B behind true time, so every honest claim vote on B is cast before true time
//!    T_B + ε_B. A claim certificate holds f+1 honest votes, and each vote publishes s (the
//!    validator answers it by hash lock and pushes it to A's validators: the notice). So if
//!    B is ever claimed, s is public before T_B + ε_B, whoever claimed and however late.
//! 2. The maker (or the notice) needs at most `notice` to learn s, and at most `certify_a`
//!    to get its claim to every honest validator of A (its own clock error and the driver's
//!    delay included). Those validators vote it while their clocks are before T_A, which
//!    holds while true time is before T_A − ε_A.
//! 3. A validator of A votes a refund only once its clock reaches T_A + ε_A, so no honest
//!    validator votes the payer's refund before true time T_A: the maker's claim, arriving
//!    before T_A − ε_A, wins every honest vote.
//!
//! Chaining 1–2: T_B + ε_B + notice + certify_a ≤ T_A − ε_A, that is
//! T_A − T_B ≥ ε_A + ε_B + certify_a + notice; `margin` pays for what the bounds miss. That
//! sum is [`min_delta`]. The claimant's own rule ([`last_claim_at`]) is the same argument
//! on one network: a claim sent by T − (ε + certify) reaches every honest validator before
//! its clock reaches T, so it gathers every honest vote; a later one may split the votes and
//! hurts only its sender (its votes still publish s, so the other side still claims).

use serde::{Deserialize, Serialize};

/// The bounds the rule is built from, all in milliseconds. `skew_*` come from the network
/// contracts (`max_clock_skew_ms`); the others are the operator's bounds on its own setup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// ε_A: network A's bound on an honest validator's clock error.
    pub skew_a: u64,
    /// ε_B: network B's bound on an honest validator's clock error.
    pub skew_b: u64,
    /// The longest a claim (or lock) takes from the claimant's decision to reach every
    /// honest validator of A: the driver's delay, delivery, and the claimant's own clock
    /// error.
    pub certify_a: u64,
    /// The same on B.
    pub certify_b: u64,
    /// The longest from a secret's publication (a validator's claim vote) to its use: the
    /// maker's polling and reaction, or the counterpart validators' notice; on the payer's
    /// side, from a lock's certificate to the payer seeing it.
    pub notice: u64,
    /// Slack for what the other bounds miss.
    pub margin: u64,
}

/// Why two deadlines do not satisfy the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// T_A is less than T_B + Δ: the maker could pay on B and be too late on A.
    #[error("deadline {t_a} on A is not at least {delta} ms after deadline {t_b} on B")]
    TooClose { t_a: u64, t_b: u64, delta: u64 },
}

/// The smallest Δ = T_A − T_B that keeps the maker safe: ε_A + ε_B + certify_A + notice +
/// margin (saturating: a sum past `u64::MAX` admits no Δ at all).
pub fn min_delta(timing: &Timing) -> u64 {
    timing
        .skew_a
        .saturating_add(timing.skew_b)
        .saturating_add(timing.certify_a)
        .saturating_add(timing.notice)
        .saturating_add(timing.margin)
}

/// The shortest lock on B that still lets a prompt payer claim it: the lock's own
/// certification, the payer seeing it, then its claim sent by [`last_claim_at`] — that is
/// certify_B + notice + ε_B + certify_B + margin. Also more than ε_B, which B's validators
/// demand of any deadline. A quote whose lock time is shorter is refused, and a maker
/// never locks for less.
pub fn min_lock_window(timing: &Timing) -> u64 {
    timing
        .certify_b
        .saturating_add(timing.notice)
        .saturating_add(timing.skew_b)
        .saturating_add(timing.certify_b)
        .saturating_add(timing.margin)
        .max(timing.skew_b.saturating_add(1))
}

/// Checks T_A ≥ T_B + Δ (an overflow fails it).
pub fn check_deadlines(t_a: u64, t_b: u64, delta: u64) -> Result<(), TimingError> {
    match t_b.checked_add(delta) {
        Some(least) if t_a >= least => Ok(()),
        _ => Err(TimingError::TooClose { t_a, t_b, delta }),
    }
}

/// The last moment (by the claimant's clock) a claim on an escrow with this deadline may be
/// sent: deadline − (ε + certify). A claim sent later may reach an honest validator whose
/// clock has passed the deadline, split the votes and freeze the escrow. Saturates at 0.
pub fn last_claim_at(deadline: u64, skew: u64, certify: u64) -> u64 {
    deadline.saturating_sub(skew.saturating_add(certify))
}

/// When validators start voting a refund: deadline + ε (saturating). Before it the refund is
/// refused; the refunder tries again a little later, since honest clocks differ by up to 2ε.
pub fn refund_from(deadline: u64, skew: u64) -> u64 {
    deadline.saturating_add(skew)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            skew_a: 500,
            skew_b: 700,
            certify_a: 300,
            certify_b: 250,
            notice: 2_000,
            margin: 100,
        }
    }

    #[test]
    fn min_delta_sums_the_bounds_of_design_section_8() {
        assert_eq!(min_delta(&timing()), 500 + 700 + 300 + 2_000 + 100);
        let huge = Timing {
            skew_a: u64::MAX,
            ..timing()
        };
        assert_eq!(min_delta(&huge), u64::MAX);
    }

    #[test]
    fn min_lock_window_covers_lock_notice_and_claim() {
        assert_eq!(min_lock_window(&timing()), 250 + 2_000 + 700 + 250 + 100);
        let bare = Timing {
            skew_b: 9,
            ..Timing::default()
        };
        assert_eq!(min_lock_window(&bare), 10, "always beyond ε_B");
    }

    #[test]
    fn deadlines_must_be_delta_apart() {
        assert_eq!(check_deadlines(10_000, 7_000, 3_000), Ok(()));
        assert_eq!(
            check_deadlines(9_999, 7_000, 3_000),
            Err(TimingError::TooClose {
                t_a: 9_999,
                t_b: 7_000,
                delta: 3_000
            })
        );
        assert!(check_deadlines(u64::MAX, u64::MAX, 1).is_err());
    }

    #[test]
    fn claim_stops_before_and_refund_starts_after_the_deadline() {
        assert_eq!(last_claim_at(10_000, 700, 250), 9_050);
        assert_eq!(last_claim_at(100, 700, 250), 0);
        assert_eq!(refund_from(10_000, 700), 10_700);
        assert_eq!(refund_from(u64::MAX, 1), u64::MAX);
    }

    /// The chain of the module's argument, on the numbers: s is out by T_B + ε_B; learned
    /// `notice` later; the claim reaches A's validators `certify_a` later; that is before
    /// true time T_A − ε_A, so every honest clock of A is still before T_A.
    #[test]
    fn the_argument_holds_at_the_minimum_delta() {
        let timing = timing();
        let t_b = 1_000_000;
        let t_a = t_b + min_delta(&timing);
        let secret_out = t_b + timing.skew_b;
        let claim_arrives = secret_out + timing.notice + timing.certify_a;
        assert!(claim_arrives + timing.skew_a < t_a);
        // The maker, learning s at the latest, is still allowed to claim.
        assert!(secret_out + timing.notice <= last_claim_at(t_a, timing.skew_a, timing.certify_a));
    }
}
