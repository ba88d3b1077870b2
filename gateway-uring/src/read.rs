//! Reads without an idle buffer per connection. tokio-uring 0.5 has no provided-buffer ring,
//! so a posted read owns its buffer while it waits, which for an idle connection is forever.
//! The posted read is therefore small (`POSTED_READ` bytes: one bench request or a few
//! WebSocket frames fit), and when it fills, the bytes queued behind it are taken at once by
//! one `recv(2)` with `MSG_DONTWAIT` into the I/O thread's scratch buffer
//! (`common::driver::with_scratch`), not by another trip through the ring.
//!
//! A read that does not fill the posted buffer costs what it did before (one ring
//! operation); a read that fills it costs one more system call, for up to `READ_CHUNK` bytes.
//! Bytes are handed over in order and whole (the posted bytes first, then the queued ones,
//! in one slice); whatever is still queued after that is the next posted read's.

use std::cell::Cell;
use std::io;
use std::os::fd::AsRawFd;

use tokio_uring::net::TcpStream;

/// Bytes of the read every connection keeps posted (its read buffer while idle).
pub const POSTED_READ: usize = 256;

/// A connection's socket and the buffer its posted read lends to the kernel.
pub struct PostedReader {
    stream: TcpStream,
    /// The posted read's buffer between reads (empty while a read is in flight: the
    /// operation owns it then).
    buf: Cell<Vec<u8>>,
}

impl PostedReader {
    pub fn new(stream: TcpStream) -> PostedReader {
        PostedReader {
            stream,
            buf: Cell::new(Vec::new()),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Waits for bytes (or EOF) with a `POSTED_READ`-byte posted read, adds the bytes queued
    /// behind a read that filled it, and calls `consume` once with all of them (empty at
    /// EOF). Not called concurrently with itself (the driver has one reader per connection).
    pub async fn read<R>(&self, consume: impl FnOnce(&[u8]) -> R) -> io::Result<R> {
        let mut buf = self.buf.take();
        buf.clear();
        buf.reserve_exact(POSTED_READ);
        let (res, buf) = self.stream.read(buf).await;
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                self.buf.set(buf);
                return Err(e);
            }
        };
        let filled = n > 0 && n == buf.capacity();
        let out = if filled {
            common::driver::with_scratch(|scratch| {
                if scratch.len() <= n {
                    return consume(&buf[..n]);
                }
                scratch[..n].copy_from_slice(&buf[..n]);
                let more = recv_queued(&self.stream, &mut scratch[n..]);
                consume(&scratch[..n + more])
            })
        } else {
            consume(&buf[..n])
        };
        self.buf.set(buf);
        Ok(out)
    }
}

/// recv(2) with MSG_DONTWAIT: the bytes already queued on the socket, without waiting (the
/// accepted socket is blocking; the flag makes this one call not). 0 if none are queued, at
/// EOF and on an error: the next posted read meets the EOF or the socket's state again and
/// ends the connection as it would have.
fn recv_queued(stream: &TcpStream, buf: &mut [u8]) -> usize {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call, and the
        // descriptor belongs to `stream`, which is open while it is borrowed.
        let r = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match usize::try_from(r) {
            Ok(n) => return n,
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A connected pair: the client as a std stream, the server side as a `PostedReader`.
    async fn pair() -> (std::net::TcpStream, PostedReader) {
        let listener = tokio_uring::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, PostedReader::new(server))
    }

    /// Reads until `want` bytes came (or EOF), returning them and the sizes of the reads.
    async fn read_all(r: &PostedReader, want: usize) -> (Vec<u8>, Vec<usize>) {
        let (mut got, mut sizes) = (Vec::new(), Vec::new());
        while got.len() < want {
            let n = r.read(|b| {
                got.extend_from_slice(b);
                b.len()
            });
            let n = n.await.unwrap();
            if n == 0 {
                break;
            }
            sizes.push(n);
        }
        (got, sizes)
    }

    #[test]
    fn a_small_read_is_one_posted_read() {
        tokio_uring::start(async {
            let (mut client, reader) = pair().await;
            client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            let (got, sizes) = read_all(&reader, 18).await;
            assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
            assert_eq!(sizes, vec![18]);
        });
    }

    #[test]
    fn queued_bytes_behind_a_filled_read_come_whole_and_in_order() {
        tokio_uring::start(async {
            let (mut client, reader) = pair().await;
            // Pipelined data: far more than the posted read, less than the scratch buffer,
            // all queued before the read is posted.
            let sent: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
            client.write_all(&sent).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let (got, sizes) = read_all(&reader, sent.len()).await;
            assert_eq!(got, sent);
            // The posted read filled, and the queued rest came with it in the same call.
            assert_eq!(sizes[0], sent.len(), "reads: {sizes:?}");
        });
    }

    #[test]
    fn more_than_the_scratch_buffer_arrives_over_several_reads_then_eof() {
        tokio_uring::start(async {
            let (mut client, reader) = pair().await;
            let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
            let writer = std::thread::spawn(move || {
                client.write_all(&sent).unwrap();
                sent
            });
            let (got, sizes) = read_all(&reader, usize::MAX).await;
            let sent = writer.join().unwrap();
            assert_eq!(got, sent);
            assert!(
                sizes.iter().all(|&n| n <= common::driver::READ_CHUNK),
                "{sizes:?}"
            );
            // EOF stays EOF.
            assert_eq!(reader.read(|b| b.len()).await.unwrap(), 0);
        });
    }
}
