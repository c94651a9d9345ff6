//! The relay's line protocol: its line splitter, the join line, members' lines, and the
//! notices a client reads.

use std::ops::ControlFlow;

use tally_relay::Notice;
use tally_relay::framing::{Frame, LineBuffer};
use tally_relay::protocol::{
    MemberLine, classify_member_line, join_line, parse_join, substitute_into,
};

/// The line limit the target's splitter keeps: small, so over-long lines are common.
const FUZZ_MAX_LINE: usize = 256;

/// `relay_lines`: a client's byte stream as the relay reads it: split into lines by
/// [`LineBuffer`] (in the read sizes the first byte chooses), the first line parsed as a
/// join ([`parse_join`]), the others classified ([`classify_member_line`]) and `#`
/// substituted ([`substitute_into`]); every line also read by a client as a relay notice
/// ([`Notice::parse`]).
///
/// Properties: no line handed out exceeds the limit, and none contains `\n`; the buffer
/// never holds more than the limit plus one read; an accepted join line is exactly what
/// [`join_line`] writes for it; a forwarded message is valid UTF-8 and not reserved, and
/// substitution changes exactly its `#`s; a parsed notice, written out and parsed again,
/// writes out the same line (what a client shows is what the relay meant).
pub fn relay_lines(data: &[u8]) {
    let Some((&read, stream)) = data.split_first() else {
        return;
    };
    let read = usize::from(read % 64) + 1;
    let mut buffer = LineBuffer::new(FUZZ_MAX_LINE);
    let mut joined = false;
    for chunk in stream.chunks(read) {
        buffer.read_target(chunk.len()).extend_from_slice(chunk);
        let _ = buffer.drain(|frame| {
            if let Frame::Line(line) = frame {
                assert!(
                    line.len() <= FUZZ_MAX_LINE,
                    "a line over the limit was handed out"
                );
                assert!(!line.contains(&b'\n'), "a line holds a newline");
                if joined {
                    member(line);
                } else {
                    joined = join(line);
                }
                notice(line);
            }
            ControlFlow::Continue(())
        });
        assert!(
            buffer.buffered() <= FUZZ_MAX_LINE + 1,
            "the splitter holds {} bytes",
            buffer.buffered()
        );
        buffer.release_if_empty();
    }
}

fn join(line: &[u8]) -> bool {
    let Ok(request) = parse_join(line) else {
        return false;
    };
    assert_eq!(
        join_line(request.kind, request.room, request.token).as_bytes(),
        line,
        "an accepted join line is not the one a client writes"
    );
    true
}

fn member(line: &[u8]) {
    match classify_member_line(line) {
        MemberLine::Keepalive => assert!(line.is_empty()),
        MemberLine::Refused(_) => {}
        MemberLine::Message(message) => {
            assert!(std::str::from_utf8(message).is_ok());
            assert_ne!(
                message.first(),
                Some(&b'@'),
                "a reserved line was forwarded"
            );
            let ip = b"203.0.113.9";
            let mut out = Vec::new();
            let written = substitute_into(&mut out, message, ip);
            let hashes = message.iter().filter(|&&b| b == b'#').count();
            assert_eq!(written, out.len());
            assert_eq!(out.len(), message.len() + hashes * (ip.len() - 1));
            assert!(std::str::from_utf8(&out).is_ok());
        }
    }
}

fn notice(line: &[u8]) {
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    let Some(notice) = Notice::parse(text) else {
        return;
    };
    let written = notice.to_string();
    let again = Notice::parse(&written);
    assert!(
        again
            .as_ref()
            .is_some_and(|again| again.to_string() == written),
        "a notice written out does not read back: {text:?} -> {written:?} -> {again:?}"
    );
    let mut line = notice.to_line();
    assert_eq!(line.pop(), Some(b'\n'));
}
