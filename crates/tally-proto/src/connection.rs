//! A framed connection with a size limit on every frame and a timeout on every read and
//! write, so a slow or abusive peer can neither exhaust memory nor hang its counterpart.

use std::io;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder, Framed, LengthDelimitedCodec};

use crate::Packet;

/// Size and time limits of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest frame accepted or sent, in bytes.
    pub max_frame: usize,
    /// How long a read may wait for a frame.
    pub read_timeout: Duration,
    /// How long a write may wait for the peer to take bytes.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 4 * 1024 * 1024,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// What went wrong on a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("connection closed by peer")]
    Closed,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed packet: {0}")]
    Malformed(#[from] serde_json::Error),
}

impl ConnectionError {
    /// Whether the peer sent bytes that are not a packet (to be held against it), as
    /// opposed to a network failure. An oversized length prefix is reported by the codec as
    /// an `InvalidData` I/O error.
    pub fn is_peer_fault(&self) -> bool {
        match self {
            ConnectionError::Malformed(_) => true,
            ConnectionError::Io(e) => e.kind() == std::io::ErrorKind::InvalidData,
            ConnectionError::Closed | ConnectionError::Timeout(_) => false,
        }
    }
}

/// The codec every Tally TCP connection uses (quorum and `pow` networks alike): u32
/// big-endian length, then JSON.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// One whole frame of [`codec`]'s bytes around `body`, for a writer that sends pre-encoded
/// frames outside a [`Connection`] (a refusal written once to a fresh socket, a benchmark's
/// prepared load). A body never comes near 4 GiB: every limit here is megabytes.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// [`codec`] with separate limits for the frames read and the frames sent: the same bytes
/// on the wire, for a server whose answers (a tracker's lists of peers) outgrow the largest
/// request it accepts.
#[derive(Debug)]
pub struct FrameCodec {
    read: LengthDelimitedCodec,
    send: LengthDelimitedCodec,
}

impl FrameCodec {
    /// Refuses frames read over `max_read` bytes (from the length prefix, before buffering)
    /// and frames sent over `max_send`.
    pub fn new(max_read: usize, max_send: usize) -> Self {
        FrameCodec {
            read: codec(max_read),
            send: codec(max_send),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, io::Error> {
        self.read.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, io::Error> {
        self.read.decode_eof(src)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), io::Error> {
        self.send.encode(frame, dst)
    }
}

/// A connection carrying [`Packet`]s.
pub struct Connection {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    limits: Limits,
}

impl Connection {
    /// Wraps an established stream.
    pub fn new(stream: TcpStream, limits: Limits) -> Self {
        // Latency matters more than packet count for request/answer traffic.
        let _ = stream.set_nodelay(true);
        Connection {
            framed: Framed::new(stream, codec(limits.max_frame)),
            limits,
        }
    }

    /// Connects to `address` within `timeout`.
    pub async fn connect(
        address: &str,
        limits: Limits,
        timeout: Duration,
    ) -> Result<Self, ConnectionError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| ConnectionError::Timeout(timeout))??;
        Ok(Self::new(stream, limits))
    }

    /// Sends one packet.
    pub async fn send(&mut self, packet: &Packet) -> Result<(), ConnectionError> {
        let bytes = Bytes::from(serde_json::to_vec(packet)?);
        self.send_raw(bytes).await
    }

    /// Sends pre-encoded packet bytes (benchmarks pre-encode their load).
    pub async fn send_raw(&mut self, bytes: Bytes) -> Result<(), ConnectionError> {
        write_frame(&mut self.framed, bytes, self.limits.write_timeout).await
    }

    /// Queues a packet without flushing; [`Self::flush`] sends everything queued.
    pub async fn feed(&mut self, bytes: Bytes) -> Result<(), ConnectionError> {
        let timeout = self.limits.write_timeout;
        tokio::time::timeout(timeout, self.framed.feed(bytes))
            .await
            .map_err(|_| ConnectionError::Timeout(timeout))??;
        Ok(())
    }

    /// Queues one packet without flushing: a pipelined exchange queues its requests, then
    /// flushes once and reads the answers in order.
    pub async fn feed_packet(&mut self, packet: &Packet) -> Result<(), ConnectionError> {
        let bytes = Bytes::from(serde_json::to_vec(packet)?);
        self.feed(bytes).await
    }

    /// Flushes queued packets.
    pub async fn flush(&mut self) -> Result<(), ConnectionError> {
        let timeout = self.limits.write_timeout;
        tokio::time::timeout(timeout, SinkExt::<Bytes>::flush(&mut self.framed))
            .await
            .map_err(|_| ConnectionError::Timeout(timeout))??;
        Ok(())
    }

    /// Receives one packet.
    pub async fn recv(&mut self) -> Result<Packet, ConnectionError> {
        read_packet(&mut self.framed, self.limits.read_timeout).await
    }

    /// Sends a request and waits for its answer.
    pub async fn call(&mut self, packet: &Packet) -> Result<Packet, ConnectionError> {
        self.send(packet).await?;
        self.recv().await
    }
}

/// Sends one frame within `timeout`.
async fn write_frame<S>(
    sink: &mut S,
    bytes: Bytes,
    timeout: Duration,
) -> Result<(), ConnectionError>
where
    S: Sink<Bytes, Error = std::io::Error> + Unpin,
{
    tokio::time::timeout(timeout, sink.send(bytes))
        .await
        .map_err(|_| ConnectionError::Timeout(timeout))??;
    Ok(())
}

/// Reads one whole frame within `timeout`.
async fn read_frame<S>(stream: &mut S, timeout: Duration) -> Result<BytesMut, ConnectionError>
where
    S: Stream<Item = Result<BytesMut, std::io::Error>> + Unpin,
{
    Ok(tokio::time::timeout(timeout, stream.next())
        .await
        .map_err(|_| ConnectionError::Timeout(timeout))?
        .ok_or(ConnectionError::Closed)??)
}

/// Reads one whole frame within `timeout` and decodes it as a `P`.
async fn read_packet<S, P>(stream: &mut S, timeout: Duration) -> Result<P, ConnectionError>
where
    S: Stream<Item = Result<BytesMut, std::io::Error>> + Unpin,
    P: DeserializeOwned,
{
    let frame = read_frame(stream, timeout).await?;
    Ok(serde_json::from_slice(&frame)?)
}

/// The reading half of a [`split`] connection, carrying packets of type `P`: one task reads
/// while another writes (a miner's connection does both at once).
pub struct PacketReader<P> {
    stream: SplitStream<Framed<TcpStream, FrameCodec>>,
    read_timeout: Duration,
    packet: PhantomData<fn() -> P>,
}

/// The writing half of a [`split`] connection.
pub struct PacketWriter {
    sink: SplitSink<Framed<TcpStream, FrameCodec>, Bytes>,
    write_timeout: Duration,
}

/// Splits a stream into a reader of `P` packets and a writer, each keeping `limits`.
pub fn split<P>(stream: TcpStream, limits: Limits) -> (PacketReader<P>, PacketWriter) {
    split_with_send_limit(stream, limits, limits.max_frame)
}

/// [`split`], except that frames sent may be up to `max_send_frame` bytes while frames read
/// stay within `limits.max_frame`: for a server whose answers outgrow its requests.
pub fn split_with_send_limit<P>(
    stream: TcpStream,
    limits: Limits,
    max_send_frame: usize,
) -> (PacketReader<P>, PacketWriter) {
    let _ = stream.set_nodelay(true);
    let codec = FrameCodec::new(limits.max_frame, max_send_frame);
    let (sink, stream) = Framed::new(stream, codec).split();
    (
        PacketReader {
            stream,
            read_timeout: limits.read_timeout,
            packet: PhantomData,
        },
        PacketWriter {
            sink,
            write_timeout: limits.write_timeout,
        },
    )
}

impl<P: DeserializeOwned> PacketReader<P> {
    /// Reads one packet: the whole frame must arrive within the read timeout.
    pub async fn recv(&mut self) -> Result<P, ConnectionError> {
        read_packet(&mut self.stream, self.read_timeout).await
    }

    /// Reads one whole frame within the read timeout without decoding it, for a server that
    /// answers a body that is not a packet by saying why. Cancel-safe: a frame partly read
    /// when the future is dropped stays buffered for the next call.
    pub async fn recv_frame(&mut self) -> Result<BytesMut, ConnectionError> {
        read_frame(&mut self.stream, self.read_timeout).await
    }
}

impl PacketWriter {
    /// Sends one encoded packet within the write timeout.
    pub async fn send_bytes(&mut self, bytes: Bytes) -> Result<(), ConnectionError> {
        write_frame(&mut self.sink, bytes, self.write_timeout).await
    }

    /// Sends encoded packets with one flush, all within the write timeout: answers that are
    /// ready together reach a pipelining peer in one segment (when they fit) and one wake-up.
    pub async fn send_all(
        &mut self,
        frames: impl IntoIterator<Item = Bytes>,
    ) -> Result<(), ConnectionError> {
        let sink = &mut self.sink;
        let sent = async move {
            for frame in frames {
                sink.feed(frame).await?;
            }
            SinkExt::<Bytes>::flush(sink).await
        };
        tokio::time::timeout(self.write_timeout, sent)
            .await
            .map_err(|_| ConnectionError::Timeout(self.write_timeout))??;
        Ok(())
    }

    /// Sends one packet.
    pub async fn send<P: Serialize>(&mut self, packet: &P) -> Result<(), ConnectionError> {
        self.send_bytes(Bytes::from(serde_json::to_vec(packet)?))
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{ErrorCode, LedgerRequest};

    #[test]
    fn an_encoded_frame_is_what_the_codec_reads() {
        let mut buffer = BytesMut::from(&encode_frame(b"{\"Type\":\"X\"}")[..]);
        let read = codec(1024).decode(&mut buffer).unwrap().unwrap();
        assert_eq!(&read[..], b"{\"Type\":\"X\"}");
        assert!(buffer.is_empty());
        assert_eq!(encode_frame(b"")[..], [0, 0, 0, 0]);
    }

    #[test]
    fn packets_use_the_seed_shape() {
        let json = serde_json::to_value(Packet::ReqLedger(LedgerRequest::default())).unwrap();
        assert_eq!(json, serde_json::json!({"Type": "REQ_LEDGER", "Data": {}}));
        let back: Packet = serde_json::from_str(r#"{"Type":"REQ_LEDGER","Data":{}}"#).unwrap();
        assert_eq!(back, Packet::ReqLedger(LedgerRequest::default()));
        let error = serde_json::to_value(Packet::error(ErrorCode::Busy, "later")).unwrap();
        assert_eq!(error["Data"]["Code"], "Busy");
    }

    #[test]
    fn unknown_types_and_fields_are_refused() {
        assert!(serde_json::from_str::<Packet>(r#"{"Type":"REQ_FOO","Data":{}}"#).is_err());
        assert!(serde_json::from_str::<Packet>(r#"{"Type":"REQ_LEDGER","Data":{"X":1}}"#).is_err());
        assert!(serde_json::from_str::<Packet>(r#"{"Data":{}}"#).is_err());
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_before_they_are_buffered() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let limits = Limits {
                max_frame: 1024,
                ..Limits::default()
            };
            Connection::new(stream, limits).recv().await
        });
        let mut stream = TcpStream::connect(address).await.unwrap();
        use tokio::io::AsyncWriteExt;
        stream.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
        let result = server.await.unwrap();
        assert!(matches!(result, Err(ConnectionError::Io(_))), "{result:?}");
        assert!(
            result.unwrap_err().is_peer_fault(),
            "an oversized frame is the peer's"
        );
    }

    /// The split halves carry any packet type both ways; a frame that is not one is the
    /// peer's fault, a closed connection is not.
    #[tokio::test]
    async fn split_halves_carry_packets_and_tell_peer_faults_apart() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = TcpStream::connect(address).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (mut reader, _writer) = split::<Packet>(server, Limits::default());
        let (_, mut writer) = split::<Packet>(client, Limits::default());
        let packet = Packet::ReqLedger(LedgerRequest::default());
        writer.send(&packet).await.unwrap();
        assert_eq!(reader.recv().await.unwrap(), packet);
        writer
            .send_bytes(Bytes::from_static(b"not json"))
            .await
            .unwrap();
        let malformed = reader.recv().await.unwrap_err();
        assert!(malformed.is_peer_fault(), "{malformed:?}");
        drop(writer);
        let closed = reader.recv().await.unwrap_err();
        assert!(matches!(closed, ConnectionError::Closed), "{closed:?}");
        assert!(!closed.is_peer_fault());
    }

    /// A server's halves: frames read stay within the request limit (an oversized one is
    /// refused from its length prefix, as the peer's fault) while answers sent may be
    /// larger; frames sent together arrive in order; raw frames come back undecoded.
    #[tokio::test]
    async fn a_server_reads_small_frames_and_sends_large_ones() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = TcpStream::connect(address).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let small = Limits {
            max_frame: 64,
            ..Limits::default()
        };
        let (mut requests, mut answers) =
            split_with_send_limit::<Packet>(server, small, 1024 * 1024);
        let (mut from_server, mut to_server) = split::<Packet>(client, Limits::default());

        to_server
            .send_bytes(Bytes::from_static(b"not json"))
            .await
            .unwrap();
        assert_eq!(&requests.recv_frame().await.unwrap()[..], b"not json");

        let large = Bytes::from(vec![b'x'; 4096]);
        let batch = [Bytes::from_static(b"first"), large.clone()];
        answers.send_all(batch).await.unwrap();
        let first = from_server.recv_frame().await.unwrap();
        assert_eq!(&first[..], b"first");
        assert_eq!(from_server.recv_frame().await.unwrap(), large);

        to_server
            .send_bytes(Bytes::from(vec![b'y'; 65]))
            .await
            .unwrap();
        let oversized = requests.recv_frame().await.unwrap_err();
        assert!(oversized.is_peer_fault(), "{oversized:?}");
    }
}
