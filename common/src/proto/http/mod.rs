//! HTTP/1.1: request decoding (`decode`), the decoded request and its routing (`request`),
//! response encoding (`response`). The decoder is incremental and bounded by `Limits`; every
//! error maps to one status in one place (`HttpError::status`).

pub mod decode;
pub mod request;
pub mod response;
#[cfg(test)]
mod tests;

pub use decode::Decoder;
pub use request::{percent_decode_strict, route_label, HttpError, Query, Request, Route};
pub use response::{
    add_header, error_headers, int_object, reason, write_error, write_error_with, write_response,
    write_switching_protocols,
};
