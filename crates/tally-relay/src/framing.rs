//! Splitting a byte stream into bounded lines, without I/O: the relay reads into
//! [`LineBuffer::read_target`] and then drains complete lines. Memory stays bounded however a
//! client misbehaves: an over-long line is reported once and discarded up to its newline.

use std::ops::ControlFlow;

use bytes::{Buf, BytesMut};

/// One item drained from a [`LineBuffer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line, without `\n` and without a trailing `\r`.
    Line(&'a [u8]),
    /// A line longer than the limit was seen; its bytes are discarded up to its newline.
    TooLong,
}

/// A read buffer that yields complete lines of at most `max_line` bytes (line ending
/// excluded). It holds at most `max_line` bytes of an unfinished line plus one read.
#[derive(Debug)]
pub struct LineBuffer {
    buf: BytesMut,
    max_line: usize,
    /// Inside an over-long line that was already reported: drop bytes up to the next `\n`.
    discarding: bool,
}

impl LineBuffer {
    /// A buffer for lines of at most `max_line` bytes. It allocates nothing until a read.
    pub fn new(max_line: usize) -> LineBuffer {
        LineBuffer {
            buf: BytesMut::new(),
            max_line,
            discarding: false,
        }
    }

    /// Room for one read of at most `chunk` bytes: read into the returned buffer's spare
    /// capacity (for example with `(&mut buf).limit(chunk)`).
    pub fn read_target(&mut self, chunk: usize) -> &mut BytesMut {
        self.buf.reserve(chunk);
        &mut self.buf
    }

    /// Bytes held (an unfinished line, or undrained lines).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Frees the buffer's memory when it holds nothing, so idle connections cost little.
    pub fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// Calls `f` with each complete line (and with [`Frame::TooLong`] once per over-long
    /// line) until the buffer holds only an unfinished line or `f` breaks. Lines after a
    /// break stay buffered.
    pub fn drain<F>(&mut self, mut f: F) -> ControlFlow<()>
    where
        F: FnMut(Frame<'_>) -> ControlFlow<()>,
    {
        let mut start = 0;
        let mut flow = ControlFlow::Continue(());
        while let Some(at) = memchr::memchr(b'\n', &self.buf[start..]) {
            let end = start + at;
            let mut line = &self.buf[start..end];
            start = end + 1;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            let frame = if line.len() > self.max_line {
                Frame::TooLong
            } else {
                Frame::Line(line)
            };
            if f(frame).is_break() {
                flow = ControlFlow::Break(());
                break;
            }
        }
        self.buf.advance(start);
        if flow.is_continue() {
            // An unfinished line: allow one byte more than the limit for a `\r`.
            if self.discarding {
                self.buf.clear();
            } else if self.buf.len() > self.max_line + 1 {
                self.buf.clear();
                self.discarding = true;
                flow = f(Frame::TooLong);
            }
        }
        flow
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn feed(buffer: &mut LineBuffer, data: &[u8]) -> Vec<Option<Vec<u8>>> {
        buffer.read_target(data.len()).extend_from_slice(data);
        let mut out = Vec::new();
        let _ = buffer.drain(|frame| {
            out.push(match frame {
                Frame::Line(line) => Some(line.to_vec()),
                Frame::TooLong => None,
            });
            ControlFlow::Continue(())
        });
        out
    }

    /// Lines split across reads come out whole; CRLF and LF both end a line.
    #[test]
    fn lines_across_reads() {
        let mut b = LineBuffer::new(16);
        assert!(feed(&mut b, b"he").is_empty());
        assert_eq!(feed(&mut b, b"llo\r\nwor"), vec![Some(b"hello".to_vec())]);
        assert_eq!(
            feed(&mut b, b"ld\n\nx\n"),
            vec![Some(b"world".to_vec()), Some(vec![]), Some(b"x".to_vec())]
        );
        assert_eq!(b.buffered(), 0);
    }

    /// An over-long line is reported once, discarded to its newline, and the next line
    /// comes through, whether it arrived whole or in pieces.
    #[test]
    fn over_long_lines_are_reported_once_and_skipped() {
        let mut b = LineBuffer::new(4);
        assert_eq!(
            feed(&mut b, b"abcdefgh\nok\n"),
            vec![None, Some(b"ok".to_vec())]
        );
        assert_eq!(feed(&mut b, b"abcdef"), vec![None]);
        assert!(feed(&mut b, b"ghijkl").is_empty());
        assert_eq!(b.buffered(), 0, "discarded bytes are not kept");
        assert_eq!(feed(&mut b, b"mn\nfine\n"), vec![Some(b"fine".to_vec())]);
        // Exactly the limit, with CRLF, is fine.
        assert_eq!(feed(&mut b, b"abcd\r"), Vec::<Option<Vec<u8>>>::new());
        assert_eq!(feed(&mut b, b"\n"), vec![Some(b"abcd".to_vec())]);
    }

    /// A break stops draining and keeps the rest for later.
    #[test]
    fn break_keeps_the_rest() {
        let mut b = LineBuffer::new(16);
        b.read_target(16).extend_from_slice(b"a\nb\nc\n");
        let mut seen = Vec::new();
        let flow = b.drain(|frame| {
            seen.push(frame == Frame::Line(b"a"));
            ControlFlow::Break(())
        });
        assert!(flow.is_break());
        assert_eq!(seen, vec![true]);
        assert_eq!(b.buffered(), 4);
    }

    proptest::proptest! {
        /// Whatever arrives, in whatever pieces, nothing panics, the buffer stays bounded,
        /// and no yielded line is longer than the limit.
        #[test]
        fn bounded_on_any_input(
            pieces in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n', b'\r', 0xff]), 0..40),
                0..20),
            max in 0usize..12,
        ) {
            let mut b = LineBuffer::new(max);
            for piece in pieces {
                b.read_target(piece.len()).extend_from_slice(&piece);
                let _ = b.drain(|frame| {
                    if let Frame::Line(line) = frame {
                        assert!(line.len() <= max);
                        assert!(!line.contains(&b'\n'));
                    }
                    ControlFlow::Continue(())
                });
                proptest::prop_assert!(b.buffered() <= max + 1);
            }
        }
    }
}
