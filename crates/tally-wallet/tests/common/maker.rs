//! The maker daemon in a test's process, for the wire tests.

use std::time::Duration;

use tally_maker::{MakerSettings, MakerStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The maker daemon with `settings`, running until the token is cancelled; its status.
pub fn start_maker(settings: MakerSettings) -> (CancellationToken, watch::Receiver<MakerStatus>) {
    let (status_tx, status_rx) = watch::channel(MakerStatus::default());
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        if let Err(error) = tally_maker::run(settings, status_tx, stop).await {
            panic!("the maker stopped: {error}");
        }
    });
    (cancel, status_rx)
}

/// Waits (up to 30 s) until the maker's status satisfies `done`.
pub async fn maker_until(
    status: &mut watch::Receiver<MakerStatus>,
    done: impl Fn(&MakerStatus) -> bool,
) {
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if done(&status.borrow_and_update()) {
                return;
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the maker never got there: {:?}",
        *status.borrow()
    );
}
