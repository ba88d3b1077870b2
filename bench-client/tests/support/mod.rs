//! Test support shared by bench-client's integration tests: the request loop of the small
//! fake HTTP servers they answer with (`mod support;` in each test file).

// Each test crate compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;

/// One request as the fake server saw it.
pub struct Req<'a> {
    /// The request head, request line to the empty line.
    pub head: &'a [u8],
    pub path: &'a str,
}

/// Serves one connection: reads requests (Content-Length bodies, pipelining allowed) and
/// hands each to `answer` with the output of this read so far; the output is written once
/// every complete request of a read is answered. `answer` may write (and clear) the
/// output itself, e.g. before holding an answer back. Returns at EOF, on a read or write
/// error, or on a request httparse rejects.
pub fn serve_http(c: TcpStream, answer: impl FnMut(&mut TcpStream, &Req<'_>, &mut Vec<u8>)) {
    let _ = c.set_nodelay(true);
    serve_http_on(c, answer);
}

/// [`serve_http`] on any byte stream (e.g. a TLS stream over the connection); the output
/// is flushed after each write.
pub fn serve_http_on<S: Read + Write>(
    mut c: S,
    mut answer: impl FnMut(&mut S, &Req<'_>, &mut Vec<u8>),
) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 64 * 1024];
    loop {
        let n = match c.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        let mut out = Vec::new();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let head = match req.parse(&buf) {
                Ok(httparse::Status::Complete(h)) => h,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            };
            let len: usize = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap_or(0);
            if buf.len() < head + len {
                break;
            }
            let r = Req {
                head: &buf[..head],
                path: req.path.unwrap_or(""),
            };
            answer(&mut c, &r, &mut out);
            buf.drain(..head + len);
        }
        if c.write_all(&out).and_then(|()| c.flush()).is_err() {
            return;
        }
    }
}

/// `<target-dir>/<profile>/<name>`, a workspace binary next to the test's own directory
/// (the test exe is `<target-dir>/<profile>/deps/<test>-…`); fails with how to build it.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join(name);
    assert!(
        bin.exists(),
        "{} not found: build the workspace binaries first: cargo build --workspace --bins",
        bin.display()
    );
    bin
}
