//! Arbitrary bytes, fed to the HTTP decoder in pieces whose sizes come from the input
//! itself: never a panic, and never more buffered than the limits allow.
#![no_main]

use common::policy::config::Limits;
use common::proto::http::Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_head: 1024,
        max_headers: 16,
        max_body: 4096,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let step = usize::from(split).max(1);
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&buf) {
                Ok((n, req)) => {
                    buf.drain(..n);
                    if let Some(req) = req {
                        assert!(req.body.len() <= limits.max_body);
                    } else {
                        break;
                    }
                }
                Err(_) => return,
            }
        }
        // Unconsumed input is at most a partial head (or a partial chunk-size line).
        assert!(buf.len() <= limits.max_head + step + 1024);
    }
});
