//! WebSocket on tungstenite, sans-IO: the socket is an in-memory `MemStream`, so one
//! implementation (framing, masking rules, UTF-8 checks, ping/pong, close handshake)
//! serves every runtime. The connection state machine feeds bytes in and takes bytes out.
//!
//! tungstenite's buffers are sized on purpose: its defaults (128 KiB read buffer per
//! connection) would dominate memory per idle connection.

use std::io::{self, Read, Write};

use tungstenite::error::{CapacityError, Error as WsError};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::{CloseFrame, Role, WebSocket, WebSocketConfig};
use tungstenite::Message;

use crate::policy::config::{Limits, IDLE_BUFFER_FLOOR};

/// Bytes in from the peer, bytes out to the peer; reading an empty buffer is `WouldBlock`.
#[derive(Debug, Default)]
pub struct MemStream {
    rd: Vec<u8>,
    rd_pos: usize,
    wr: Vec<u8>,
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = &self.rd[self.rd_pos..];
        if avail.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.rd_pos += n;
        if self.rd_pos == self.rd.len() {
            self.rd.clear();
            self.rd_pos = 0;
        }
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wr.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the next call to `WsSession::read` produced.
#[derive(Debug, PartialEq, Eq)]
pub enum WsRead {
    /// A complete data message (text or binary): one record value, as tungstenite
    /// assembled it (not copied again).
    Message(tungstenite::Bytes),
    /// A control frame was handled (ping answered, pong noted); keep reading.
    Control,
    /// Not enough bytes for a whole message yet.
    NeedMore,
    /// The peer sent close (our reply is queued); no more messages will come.
    PeerClosed,
    /// The closing handshake is complete (or the peer vanished): done.
    Closed,
    /// The peer broke the protocol or a limit: close with this code (after the acks).
    Failed(CloseCode),
}

pub struct WsSession {
    ws: WebSocket<MemStream>,
    /// A closing handshake has begun (either side).
    closing: bool,
    /// Our close frame (or our reply to the peer's) is queued: no data frame may follow.
    sealed: bool,
    /// The code of the peer's close frame (1005 when it carried none).
    peer_close: Option<u16>,
}

/// Read buffer tungstenite keeps per connection (it only holds a partial frame), and the
/// most it copies out of the `MemStream` per step. Small: it is kept while the connection
/// is idle, and tungstenite grows it to a whole frame when a larger one arrives.
pub const WS_READ_BUFFER: usize = 512;

impl WsSession {
    /// Starts a server-side session; `leftover` are bytes that followed the upgrade request.
    pub fn new(limits: &Limits, leftover: &[u8]) -> WsSession {
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER)
            .write_buffer_size(0)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(limits.max_body))
            .max_frame_size(Some(limits.max_body))
            .accept_unmasked_frames(false);
        let stream = MemStream {
            rd: leftover.to_vec(),
            ..MemStream::default()
        };
        WsSession {
            ws: WebSocket::from_raw_socket(stream, Role::Server, Some(config)),
            closing: false,
            sealed: false,
            peer_close: None,
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.ws.get_mut().rd.extend_from_slice(data);
    }

    /// Bytes received but not yet decoded (bounded: we stop reading the socket when full).
    pub fn buffered(&self) -> usize {
        let s = self.ws.get_ref();
        s.rd.len() - s.rd_pos
    }

    /// Heap bytes of the stream buffers (received bytes not yet decoded, frames not yet
    /// taken), by capacity. tungstenite's own buffers are not visible from here.
    /// (read side, write side).
    pub fn held_bytes(&self) -> (usize, usize) {
        let s = self.ws.get_ref();
        (s.rd.capacity(), s.wr.capacity())
    }

    /// Frees the stream buffers once they are empty, unless they are small.
    pub fn release_idle(&mut self) {
        let s = self.ws.get_mut();
        if s.rd_pos == s.rd.len() && s.rd.capacity() > IDLE_BUFFER_FLOOR {
            s.rd = Vec::new();
            s.rd_pos = 0;
        }
        if s.wr.is_empty() && s.wr.capacity() > IDLE_BUFFER_FLOOR {
            s.wr = Vec::new();
        }
    }

    /// The code of the close frame the peer sent, if it sent one.
    pub fn peer_close_code(&self) -> Option<u16> {
        self.peer_close
    }

    pub fn is_closing(&self) -> bool {
        self.closing
    }

    pub fn read(&mut self) -> WsRead {
        match self.ws.read() {
            Ok(Message::Text(t)) => WsRead::Message(t.into()),
            Ok(Message::Binary(b)) => WsRead::Message(b),
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => WsRead::Control,
            Ok(Message::Close(frame)) => {
                self.closing = true;
                self.peer_close = Some(frame.map_or(1005, |f| u16::from(f.code)));
                WsRead::PeerClosed
            }
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => WsRead::NeedMore,
            Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => WsRead::Closed,
            Err(e) => {
                let code = match &e {
                    WsError::Capacity(CapacityError::MessageTooLong { .. }) => CloseCode::Size,
                    WsError::Capacity(_) => CloseCode::Size,
                    WsError::Utf8(_) => CloseCode::Invalid,
                    WsError::Protocol(_) => CloseCode::Protocol,
                    _ => CloseCode::Error,
                };
                tracing::debug!(error = %e, "websocket peer error");
                WsRead::Failed(code)
            }
        }
    }

    /// Queues a text frame (acks and nacks). Formatted straight into the output, not through
    /// tungstenite's writer: after the peer's close tungstenite refuses data frames, yet the
    /// acks of messages received before that close must still precede our close reply
    /// (which tungstenite only writes on the next flush).
    pub fn send_text(&mut self, text: String) {
        if self.sealed {
            return;
        }
        let frame = Frame::message(text.into_bytes(), OpCode::Data(Data::Text), true);
        let _ = frame.format(&mut self.ws.get_mut().wr);
    }

    /// Bytes queued for the peer, not yet taken by `take_output`.
    pub fn pending_output(&self) -> usize {
        self.ws.get_ref().wr.len()
    }

    pub fn ping(&mut self) {
        let _ = self.ws.write(Message::Ping(Vec::new().into()));
    }

    /// Starts the closing handshake with `code` (idempotent).
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.sealed = true;
        let _ = self.ws.close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        }));
    }

    /// Moves every queued frame (pongs, acks, close) into `out`.
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        let _ = self.ws.flush();
        if self.closing {
            // A peer close's reply went out with this flush.
            self.sealed = true;
        }
        let wr = &mut self.ws.get_mut().wr;
        if out.is_empty() {
            std::mem::swap(out, wr);
        } else {
            out.append(wr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    pub(crate) fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | opcode];
        let mask = [1u8, 2, 3, 4];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    fn session() -> WsSession {
        WsSession::new(
            &Limits {
                max_body: 100,
                ..Limits::default()
            },
            &[],
        )
    }

    #[test]
    fn messages_split_anywhere() {
        let mut bytes = frame(true, 2, b"hello");
        bytes.extend(frame(true, 1, b"world"));
        for split in 0..bytes.len() {
            let mut s = session();
            let mut got = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                s.feed(part);
                while let WsRead::Message(m) = s.read() {
                    got.push(m.to_vec());
                }
            }
            assert_eq!(
                got,
                vec![b"hello".to_vec(), b"world".to_vec()],
                "split {split}"
            );
        }
    }

    fn close_code(out: &[u8]) -> u16 {
        assert_eq!(out[0], 0x88, "close frame expected: {out:?}");
        u16::from_be_bytes([out[2], out[3]])
    }

    #[test]
    fn bad_input_close_codes() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (frame(true, 2, &[0u8; 101]), 1009),
            (frame(true, 1, &[0xff, 0xfe]), 1007),
            (vec![0x82, 0x01, b'x'], 1002), // unmasked client frame
            (frame(true, 3, b"x"), 1002),   // reserved opcode
            (frame(false, 9, b"x"), 1002),  // fragmented control frame
        ];
        for (input, code) in cases {
            let mut s = session();
            s.feed(&input);
            let r = s.read();
            let WsRead::Failed(c) = r else {
                panic!("{r:?} for {input:?}");
            };
            s.close(c, "");
            let mut out = Vec::new();
            s.take_output(&mut out);
            assert_eq!(close_code(&out), code, "{input:?}");
        }
    }

    #[test]
    fn ping_is_answered() {
        let mut s = session();
        s.feed(&frame(true, 9, b"p"));
        assert_eq!(s.read(), WsRead::Control);
        let mut out = Vec::new();
        s.take_output(&mut out);
        assert_eq!(out, vec![0x8a, 1, b'p']);
    }

    #[test]
    fn peer_close_is_answered() {
        let mut s = session();
        s.feed(&frame(true, 8, &1000u16.to_be_bytes()));
        assert_eq!(s.read(), WsRead::PeerClosed);
        let mut out = Vec::new();
        s.take_output(&mut out);
        assert_eq!(close_code(&out), 1000);
        assert_eq!(s.peer_close_code(), Some(1000));
        assert_eq!(s.read(), WsRead::Closed);
    }
}
