//! Request encoding: the record ids of a run (`<run id>-<seq>`), their padded values and
//! the HTTP requests that carry them (raw, or REST Proxy v2 with `--batch` records),
//! written into the caller's buffer without allocating.
//!
//! Part of the [load engine](crate::engine::load): knows nothing of the schedule or of
//! recording.

use std::sync::Arc;

use crate::engine::config::{Format, PayloadSize, RunConfig, Shard};

/// The query of every request: `ack=A`, then `&key=K` (percent-encoded) with `--key`.
pub(crate) fn query(cfg: &RunConfig) -> String {
    let mut q = format!("ack={}", cfg.ack.as_str());
    if let Some(k) = &cfg.key {
        q.push_str("&key=");
        q.extend(percent_encoding::utf8_percent_encode(
            k,
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    q
}

/// Everything a run's requests are made of, fixed at its start.
pub(crate) struct RequestEncoder {
    /// Prefix of every record id of this run.
    pub run_id: String,
    shard: Option<Shard>,
    payload: PayloadSize,
    /// `--body-file`'s content: every value is this.
    body: Option<Arc<Vec<u8>>>,
    format: Format,
    batch: usize,
    /// `POST /topics/T?ack=A HTTP/1.1\r\nHost: H\r\nContent-Length: `
    request_head: Vec<u8>,
    padding: Vec<u8>,
}

impl RequestEncoder {
    pub(crate) fn new(cfg: &RunConfig, run_id: String) -> Self {
        let content_type = cfg
            .format
            .content_type()
            .map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
        let mut head = format!(
            "POST /topics/{}?{} HTTP/1.1\r\nHost: {}\r\n{content_type}",
            cfg.topic,
            query(cfg),
            cfg.authority
        );
        for (n, v) in &cfg.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("Content-Length: ");
        RequestEncoder {
            run_id,
            shard: cfg.shard,
            payload: cfg.payload,
            body: cfg.body.clone(),
            format: cfg.format,
            batch: cfg.batch,
            request_head: head.into_bytes(),
            padding: vec![b'.'; cfg.payload.max],
        }
    }

    /// The id of request `seq`: `<run id>-<seq>`; shard I of N uses `seq × N + I`, so the
    /// shards of one run (same run id) never share an id.
    pub(crate) fn id(&self, seq: u64) -> String {
        format!("{}-{}", self.run_id, self.id_seq(seq))
    }

    fn id_seq(&self, seq: u64) -> u64 {
        match self.shard {
            Some(s) => seq * u64::from(s.count) + u64::from(s.index),
            None => seq,
        }
    }

    /// The size drawn for the next record value (`--payload MIN..MAX`).
    fn value_size(&self, rng: &mut fastrand::Rng) -> usize {
        let p = self.payload;
        if p.min == p.max {
            p.min
        } else {
            rng.usize(p.min..=p.max)
        }
    }

    /// Length of the value `value_into(seq, size)` writes: the id, padded up to `size`.
    fn value_len(&self, seq: u64, size: usize) -> usize {
        let digits = self
            .id_seq(seq)
            .checked_ilog10()
            .map_or(1, |d| d as usize + 1);
        size.max(self.run_id.len() + 1 + digits)
    }

    /// Append `<id>` then `.` padding up to `size` to `buf`, without allocating.
    fn value_into(&self, seq: u64, size: usize, buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.extend_from_slice(self.run_id.as_bytes());
        buf.push(b'-');
        buf.extend_from_slice(itoa::Buffer::new().format(self.id_seq(seq)).as_bytes());
        let idlen = buf.len() - start;
        buf.extend_from_slice(&self.padding[..size.saturating_sub(idlen)]);
    }

    /// Append the record value of `seq` (`<id>` then `.` padding up to the size) to `buf`.
    /// With `--body-file`, append that file's content instead.
    pub(crate) fn payload_into(&self, seq: u64, rng: &mut fastrand::Rng, buf: &mut Vec<u8>) {
        match &self.body {
            Some(b) => buf.extend_from_slice(b),
            None => {
                let size = self.value_size(rng);
                self.value_into(seq, size, buf);
            }
        }
    }

    /// Append one full HTTP request for `seq` to `buf`, without allocating: the value is
    /// written in place and its length (known before it is written) goes into the head.
    pub(crate) fn http_request_into(&self, seq: u64, rng: &mut fastrand::Rng, buf: &mut Vec<u8>) {
        if self.format != Format::Raw {
            return self.rest_request_into(seq, rng, buf);
        }
        let size = self.value_size(rng);
        let len = match &self.body {
            Some(b) => b.len(),
            None => self.value_len(seq, size),
        };
        buf.extend_from_slice(&self.request_head);
        buf.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
        buf.extend_from_slice(b"\r\n\r\n");
        match &self.body {
            Some(b) => buf.extend_from_slice(b),
            None => self.value_into(seq, size, buf),
        }
    }

    /// A REST Proxy v2 request for `seq`: `--batch` records, record `i` carrying the id of
    /// record number `seq × batch + i` (see [`RequestEncoder::record_ids`]), padded like a raw value;
    /// binary: base64 of that value, json: that value as a JSON string.
    fn rest_request_into(&self, seq: u64, rng: &mut fastrand::Rng, buf: &mut Vec<u8>) {
        use base64::Engine as _;
        let batch = self.batch as u64;
        let mut body = Vec::with_capacity(16 + (self.payload.max + 48) * batch as usize * 4 / 3);
        let mut value = Vec::with_capacity(self.payload.max + 32);
        body.extend_from_slice(b"{\"records\":[");
        for i in 0..batch {
            if i > 0 {
                body.push(b',');
            }
            value.clear();
            self.payload_into(seq * batch + i, rng, &mut value);
            body.extend_from_slice(b"{\"value\":\"");
            match self.format {
                Format::RestV2Binary => {
                    let at = body.len();
                    let n = base64::encoded_len(value.len(), true).unwrap_or(0);
                    body.resize(at + n, 0);
                    let _ = base64::engine::general_purpose::STANDARD
                        .encode_slice(&value, &mut body[at..]);
                }
                // Ids and padding are plain ASCII: no escaping needed in a JSON string.
                _ => body.extend_from_slice(&value),
            }
            body.extend_from_slice(b"\"}");
        }
        body.extend_from_slice(b"]}");
        let mut lens = itoa::Buffer::new();
        buf.extend_from_slice(&self.request_head);
        buf.extend_from_slice(lens.format(body.len()).as_bytes());
        buf.extend_from_slice(b"\r\n\r\n");
        buf.extend_from_slice(&body);
    }

    /// The ids of the records of request `seq`: `<run id>-<seq × batch + i>`.
    pub(crate) fn record_ids(&self, seq: u64) -> impl Iterator<Item = String> + '_ {
        let batch = self.batch.max(1) as u64;
        (seq * batch..(seq + 1) * batch).map(|n| self.id(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_requests_carry_the_id_padded_to_the_size_with_a_matching_length() {
        fn body_of(req: &[u8]) -> Vec<u8> {
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut r = httparse::Request::new(&mut headers);
            let head = match r.parse(req).unwrap() {
                httparse::Status::Complete(n) => n,
                httparse::Status::Partial => panic!("partial head"),
            };
            assert_eq!(r.method, Some("POST"));
            let len: usize = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            assert_eq!(req.len() - head, len, "Content-Length matches the body");
            req[head..].to_vec()
        }
        let shard = Some(Shard { index: 2, count: 3 });
        for (min, max, shard) in [
            (100, 100, None),
            (3, 3, None),
            (10, 400, None),
            (100, 100, shard),
        ] {
            let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
            cfg.payload = PayloadSize { min, max };
            cfg.shard = shard;
            let sh = RequestEncoder::new(&cfg, "run7".into());
            for seq in [0u64, 9, 12_345_678_901] {
                // The request's body is exactly the record value `payload_into` makes.
                let mut req = Vec::new();
                sh.http_request_into(seq, &mut fastrand::Rng::with_seed(seq), &mut req);
                let mut value = Vec::new();
                sh.payload_into(seq, &mut fastrand::Rng::with_seed(seq), &mut value);
                let body = body_of(&req);
                assert_eq!(body, value);
                let id = sh.id(seq);
                assert!(body.starts_with(id.as_bytes()));
                assert!(body.len() == id.len() || (body.len() >= min && body.len() <= max));
                assert!(body[id.len()..].iter().all(|&b| b == b'.'));
            }
        }
        let mut cfg = RunConfig::new("http://127.0.0.1:9").unwrap();
        cfg.body = Some(Arc::new(b"{\"fixed\":true}".to_vec()));
        let sh = RequestEncoder::new(&cfg, "run7".into());
        let mut req = Vec::new();
        sh.http_request_into(5, &mut fastrand::Rng::with_seed(1), &mut req);
        assert_eq!(body_of(&req), b"{\"fixed\":true}");
    }
}
