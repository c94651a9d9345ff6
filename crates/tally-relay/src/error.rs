//! Errors of the relay library.

use std::io;

/// What can go wrong starting or running a relay.
#[cfg(feature = "server")]
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The configuration is inconsistent; the text says which limit.
    #[error("invalid relay configuration: {0}")]
    Config(String),
    /// The listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
    /// Another I/O failure of the relay itself (not of one connection).
    #[error("relay I/O error: {0}")]
    Io(#[from] io::Error),
    /// The relay's task ended abnormally.
    #[error("relay task failed: {0}")]
    Task(String),
}

/// What can go wrong for a relay client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not reach the relay.
    #[error("cannot connect to the relay: {0}")]
    Connect(io::Error),
    /// A socket error after connecting.
    #[error("relay connection error: {0}")]
    Io(#[from] io::Error),
    /// The relay refused the join (or closed with an error) and said why.
    #[error("the relay refused: {code} {text}")]
    Refused {
        /// The `@error` code.
        code: String,
        /// The relay's explanation.
        text: String,
    },
    /// Nothing arrived within the configured timeout.
    #[error("no answer from the relay within {0:?}")]
    Timeout(std::time::Duration),
    /// The relay sent a line longer than the client accepts.
    #[error("the relay sent a line longer than {0} bytes")]
    LineTooLong(usize),
    /// The relay sent something the protocol does not allow here.
    #[error("unexpected line from the relay: {0}")]
    Protocol(String),
    /// The relay closed the connection.
    #[error("the relay closed the connection")]
    Closed,
    /// The caller tried to send a line the relay would refuse.
    #[error("cannot send this line: {0}")]
    InvalidLine(&'static str),
    /// The room name or token is not valid.
    #[error("invalid join: {0}")]
    InvalidJoin(&'static str),
}
