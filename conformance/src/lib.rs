//! Test support for the conformance suite (`tests/conformance.rs`): start a gateway binary
//! as a real process on port 0, talk to it with plain blocking `std::net::TcpStream`s (no
//! runtime), and read records back from Kafka with an rdkafka consumer.
//!
//! The binaries are the workspace's own (`target/<profile>/gateway-*`, `kafka-mock`): build
//! them first with `cargo build --workspace --bins` (the README's test command does).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub mod tls;

/// `suite!(case_a, case_b, …)`: one `#[test]` per case and gateway variant, in modules
/// named after the variant (`tokio_multi::case_a`, …); each case is a `fn(&Variant)` of the
/// calling test file. The variants are the rows of `gateways.tsv`, by name (a test checks
/// that these four modules cover the table).
#[macro_export]
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod tokio_multi { $( #[test] fn $case() { super::$case($crate::variant("tokio-multi")) } )* }
        mod tokio_per_core { $( #[test] fn $case() { super::$case($crate::variant("tokio-per-core")) } )* }
        mod uring { $( #[test] fn $case() { super::$case($crate::variant("uring")) } )* }
        mod compio { $( #[test] fn $case() { super::$case($crate::variant("compio")) } )* }
    };
}

/// The gateway variant table, `gateways.tsv` at the workspace root: one source for
/// conformance, bench-client and the scripts (`bench-client variants` prints it).
pub const TABLE: &str = include_str!("../../gateways.tsv");

/// One gateway variant of the table: a binary and the arguments that select it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    pub bin: &'static str,
    pub args: &'static [&'static str],
    /// The runtime the binary reports (`--version`, gateway_info's `runtime` label).
    pub runtime: &'static str,
}

/// The rows of [`TABLE`] (tab-separated `name bin args runtime`, args split on spaces;
/// blank lines and `#` comments skipped), parsed once.
pub fn variants() -> &'static [Variant] {
    static ROWS: LazyLock<Vec<Variant>> = LazyLock::new(|| {
        TABLE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let [name, bin, args, runtime] = l.split('\t').collect::<Vec<_>>()[..] else {
                    panic!("gateways.tsv: bad line {l:?} (name, bin, args, runtime)")
                };
                // Leaked once: the table lives as long as the test binary.
                let args = Box::leak(args.split_whitespace().collect::<Box<[_]>>());
                Variant {
                    name,
                    bin,
                    args,
                    runtime,
                }
            })
            .collect()
    });
    &ROWS
}

/// The variant called `name` (a row of [`TABLE`]).
pub fn variant(name: &str) -> &'static Variant {
    variants()
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no gateway variant {name:?} in gateways.tsv"))
}

/// The directory holding the workspace binaries: the test executable lives in
/// `<target>/<profile>/deps/`, the binaries one level up.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

pub fn bin_path(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: build the workspace binaries first: cargo build --workspace --bins",
        p.display()
    );
    p
}

/// A running process whose stdout and stderr are collected line by line (every line
/// kept): the shared [`harness`] crate, with the suite's convention that a failure is a
/// panic quoting the process's output.
pub struct Proc(harness::Proc);

impl Proc {
    pub fn spawn(cmd: Command) -> Proc {
        Proc::spawn_inner(cmd, false)
    }

    /// Like `spawn`, keeping a pipe to the child's stdin (see `send_line`).
    pub fn spawn_with_stdin(cmd: Command) -> Proc {
        Proc::spawn_inner(cmd, true)
    }

    fn spawn_inner(mut cmd: Command, with_stdin: bool) -> Proc {
        cmd.env("RUST_LOG", "info");
        let name = cmd.get_program().to_string_lossy().into_owned();
        let mut opts = harness::Options::new(name);
        opts.stdin = with_stdin;
        Proc(harness::Proc::spawn(cmd, opts).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        self.0.send_line(line).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Number of collected lines (to wait for lines that come after a point).
    pub fn line_count(&self) -> usize {
        self.0.line_count()
    }

    /// Waits for a line containing `needle` among lines after the first `skip`.
    pub fn wait_for_line_after(&self, skip: usize, needle: &str, timeout: Duration) -> String {
        self.0
            .wait_for_line_after(skip, needle, Instant::now() + timeout)
            .unwrap_or_else(|e| panic!("{e}\nwhole log:\n{}", self.log_text()))
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_line_after(0, needle, timeout)
    }

    /// Resident set size of the process, in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        self.0.rss_kib()
    }

    pub fn log_text(&self) -> String {
        self.0.log_text()
    }

    pub fn pid(&self) -> i32 {
        self.0.pid() as i32
    }

    pub fn signal(&self, sig: i32) {
        self.0.signal(sig);
    }

    /// Waits for exit up to `timeout`; `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.0.wait_exit(timeout).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A gateway process on 127.0.0.1:<ephemeral>.
pub struct Gateway {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// Bootstrap list of the Kafka it produces to.
    pub brokers: String,
}

impl Gateway {
    /// Starts `variant` with 2 I/O threads plus `extra` arguments. Without `--brokers` in
    /// `extra` the gateway starts its embedded mock cluster.
    pub fn start(variant: &Variant, extra: &[&str]) -> Gateway {
        let gw = Gateway::launch(variant, extra);
        gw.wait_ready();
        gw
    }

    /// Starts `variant` as `start` does, without waiting for it to be ready (a TLS gateway
    /// answers only over TLS: `tls::TlsGateway` waits itself).
    pub fn launch(variant: &Variant, extra: &[&str]) -> Gateway {
        let mut cmd = Command::new(bin_path(variant.bin));
        cmd.args(variant.args)
            .args(["--listen", "127.0.0.1:0", "--threads", "2"])
            .args(extra);
        let proc = Proc::spawn(cmd);
        let line = proc.wait_for_line("listening on ", Duration::from_secs(30));
        let addr: SocketAddr = line
            .split("listening on ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse the address in {line:?}"));
        let brokers = match extra.iter().position(|a| *a == "--brokers") {
            Some(i) => extra[i + 1].to_string(),
            None if extra.windows(2).any(|w| w == ["--sink", "null"]) => String::new(),
            None => {
                let l = proc.wait_for_line("embedded kafka bootstrap=", Duration::from_secs(10));
                l.split("bootstrap=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .unwrap()
                    .to_string()
            }
        };
        Gateway {
            proc,
            addr,
            brokers,
        }
    }

    fn wait_ready(&self) {
        self.wait_ready_with(|| self.connect_checked())
    }

    /// Waits until `/readyz` answers 200 on connections made by `connect`.
    pub fn wait_ready_with<S: OverTcp>(&self, connect: impl Fn() -> std::io::Result<Client<S>>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = connect() {
                if let Ok(r) = c.request("GET", "/readyz", &[], b"") {
                    if r.status == 200 {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "gateway never became ready; log:\n{}",
                self.proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn connect(&self) -> Client {
        self.connect_checked().expect("connect")
    }

    pub fn connect_checked(&self) -> std::io::Result<Client> {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.set_nodelay(true)?;
        Ok(Client {
            stream: s,
            buf: Vec::new(),
        })
    }

    /// SIGTERM, then the exit status (panics if it does not exit within `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(timeout).unwrap_or_else(|| {
            panic!(
                "gateway did not exit within {timeout:?} of SIGTERM; log:\n{}",
                self.proc.log_text()
            )
        })
    }

    /// The value of a series in /metrics (first line starting with `series`).
    pub fn metric(&self, series: &str) -> f64 {
        let r = self.connect().request("GET", "/metrics", &[], b"").unwrap();
        let text = String::from_utf8_lossy(&r.body).to_string();
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A blocking HTTP/1.1 client connection, over TCP or (`tls::TlsStream`) over TLS.
pub struct Client<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

/// A client's stream and the TCP socket under it (for read timeouts).
pub trait OverTcp: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl OverTcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl<S: OverTcp> Client<S> {
    pub fn from_stream(stream: S) -> Client<S> {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        self.send_raw(&encode_request(method, path, headers, body))?;
        self.read_response()
    }

    /// Reads one response (Content-Length framed, as every gateway response is).
    pub fn read_response(&mut self) -> std::io::Result<Response> {
        loop {
            let mut hs = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut hs);
            if let httparse::Status::Complete(n) = resp
                .parse(&self.buf)
                .map_err(|e| std::io::Error::other(format!("bad response: {e}")))?
            {
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).to_string(),
                        )
                    })
                    .collect();
                let status = resp.code.unwrap_or(0);
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.trim().parse().unwrap_or(0));
                if status == 101 {
                    self.buf.drain(..n);
                    return Ok(Response {
                        status,
                        headers,
                        body: Vec::new(),
                    });
                }
                if self.buf.len() >= n + len {
                    let body = self.buf[n..n + len].to_vec();
                    self.buf.drain(..n + len);
                    return Ok(Response {
                        status,
                        headers,
                        body,
                    });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let k = self.stream.read(&mut chunk)?;
            if k == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..k]);
        }
    }

    /// True if the server closed the connection (EOF) within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream.tcp().set_read_timeout(Some(timeout)).unwrap();
        let mut b = [0u8; 1024];
        let deadline = Instant::now() + timeout;
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                // UnexpectedEof: TLS without a close_notify.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    return true
                }
                Err(_) => return false,
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Bytes left over after the last parsed response (e.g. frames after a 101).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

pub fn encode_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: test\r\n");
    let mut has_te = false;
    for (k, v) in headers {
        has_te |= k.eq_ignore_ascii_case("transfer-encoding");
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_te && (method == "POST" || !body.is_empty()) {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A masked client WebSocket frame.
pub fn ws_frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | opcode];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n < 65536 => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// One record read back from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Sends `n` POSTs to `topic` and a `GET /healthz` in one write (plaintext or TLS alike),
/// reads the `n` answers in order (each 200 with a partition and offset), checks in Kafka
/// that answer `i` is request `i`'s record, and returns the health answer.
pub fn pipelined_answers_are_their_records<S: OverTcp>(
    c: &mut Client<S>,
    brokers: &str,
    topic: &str,
    n: usize,
) -> Response {
    let mut bytes = Vec::new();
    for i in 0..n {
        let body = format!("p{i}");
        bytes.extend(encode_request(
            "POST",
            &format!("/topics/{topic}"),
            &[],
            body.as_bytes(),
        ));
    }
    bytes.extend(encode_request("GET", "/healthz", &[], b""));
    c.send_raw(&bytes).unwrap();
    let mut acked = Vec::new();
    for i in 0..n {
        let r = c.read_response().unwrap();
        assert_eq!(r.status, 200, "answer {i}: {r:?}");
        let j = r.json();
        acked.push((
            i,
            j["partition"].as_i64().unwrap(),
            j["offset"].as_i64().unwrap(),
        ));
    }
    let health = c.read_response().unwrap();
    let records = consume(brokers, topic, Duration::from_secs(20), |rs| rs.len() >= n);
    for (i, p, o) in acked {
        let rec = records
            .iter()
            .find(|x| i64::from(x.partition) == p && x.offset == o)
            .expect("record present");
        assert_eq!(
            rec.value,
            format!("p{i}").as_bytes(),
            "answer {i} belongs to request {i}"
        );
    }
    health
}

/// Reads `topic` from the beginning of every partition until `done(records)` or `timeout`.
pub fn consume(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[Consumed]) -> bool,
) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "conformance")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let deadline = Instant::now() + timeout;
    let md = loop {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md)
                if md
                    .topics()
                    .first()
                    .is_some_and(|t| !t.partitions().is_empty()) =>
            {
                break md
            }
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("no metadata for {topic}: {:?}", other.err()),
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    // `done` looks at every record read so far: asked after each one it made reading n
    // records O(n^2) (9,000 records in a debug build on a loaded machine ran past the
    // deadline, and the unread ones looked lost). Ask when the stream pauses and each time
    // the count has doubled: O(n) in all.
    let mut ask_at = 1usize;
    let mut idle = true;
    loop {
        if (idle || out.len() >= ask_at) && done(&out) {
            break;
        }
        if out.len() >= ask_at {
            ask_at = out.len() * 2;
        }
        if Instant::now() >= deadline {
            break;
        }
        idle = false;
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => idle = true,
        }
    }
    out
}

/// Starts `kafka-mock` (3 brokers, fault injection on stdin: see `kafka_control`) and
/// returns it with its bootstrap list.
pub fn start_kafka_mock(topics: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(bin_path("kafka-mock"));
    cmd.arg("--control-stdin");
    for t in topics {
        cmd.args(["--topic", t]);
    }
    let proc = Proc::spawn_with_stdin(cmd);
    let line = proc.wait_for_line("kafka-mock ready at ", Duration::from_secs(20));
    let brokers = line
        .split("ready at ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("bootstrap list")
        .to_string();
    (proc, brokers)
}

/// Sends a fault-injection command to a `kafka-mock` started by `start_kafka_mock` and
/// waits for its `ok`.
pub fn kafka_control(kafka: &mut Proc, command: &str) {
    let skip = kafka.line_count();
    kafka.send_line(command);
    let reply = kafka.wait_for_line_after(skip, "reply=", Duration::from_secs(10));
    assert!(reply.contains("reply=ok"), "{command}: {reply}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run by `suite!` once per module: each of its four names is a row of the table.
    fn is_a_row(v: &Variant) {
        assert!(variants().iter().any(|w| std::ptr::eq(w, v)), "{v:?}");
    }

    crate::suite!(is_a_row);

    #[test]
    fn the_table_has_the_four_variants() {
        let names: Vec<_> = variants().iter().map(|v| v.name).collect();
        // with `suite!`'s four modules (above), every row gets its tests
        assert_eq!(names, ["tokio-multi", "tokio-per-core", "uring", "compio"]);
        let multi = variant("tokio-multi");
        assert_eq!(
            (multi.bin, multi.args),
            ("gateway-tokio", &["--flavor", "multi"][..])
        );
        let per_core = variant("tokio-per-core");
        assert_eq!(per_core.args, ["--flavor", "per-core"]);
        assert_eq!(
            (variant("uring").bin, variant("uring").runtime),
            ("gateway-uring", "tokio-uring")
        );
        assert!(variant("compio").args.is_empty());
    }

    /// bench-client parses the same file: `bench-client variants` prints this table.
    #[test]
    fn bench_client_agrees() {
        let out = Command::new(bin_path("bench-client"))
            .arg("variants")
            .output()
            .expect("running bench-client variants");
        assert!(out.status.success(), "{out:?}");
        let ours: String = variants()
            .iter()
            .map(|v| {
                format!(
                    "{}\t{}\t{}\t{}\n",
                    v.name,
                    v.bin,
                    v.args.join(" "),
                    v.runtime
                )
            })
            .collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), ours);
    }
}
