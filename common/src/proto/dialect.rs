//! Which produce dialect a request speaks, from its `Content-Type`: the raw contract or
//! the Kafka REST Proxy v2 (see `rest`). Decided while the head is decoded.

/// How a request body is to be read, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// The raw contract: the body is the record value.
    #[default]
    Raw,
    /// REST v2, binary embedded format (base64 key/value).
    Binary,
    /// REST v2, JSON embedded format.
    Json,
    /// A Kafka REST media type this gateway does not speak (415).
    Unsupported,
}

impl Dialect {
    /// Classifies a `Content-Type` header value (parameters, case and blanks ignored).
    pub fn from_content_type(value: &[u8]) -> Dialect {
        let essence = value
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let is = |t: &str| essence.eq_ignore_ascii_case(t.as_bytes());
        if is("application/vnd.kafka.binary.v2+json") {
            Dialect::Binary
        } else if is("application/vnd.kafka.json.v2+json") {
            Dialect::Json
        } else if essence.len() >= 22
            && essence[..22].eq_ignore_ascii_case(b"application/vnd.kafka.")
        {
            Dialect::Unsupported
        } else {
            Dialect::Raw
        }
    }

    pub fn is_rest(self) -> bool {
        self != Dialect::Raw
    }
}
