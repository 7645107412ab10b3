//! What a plugin sends to a worker and gets back.

use bytes::Bytes;

/// One message to or from a PHP worker: a context (usually JSON, the PHP
/// side calls it the header) and a body.
///
/// Both parts are reference-counted [`Bytes`], so cloning a payload or handing
/// the reply to a plugin never copies its contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload {
    /// The context bytes (PHP `Payload::$header`).
    pub context: Bytes,
    /// The body bytes (PHP `Payload::$body`).
    pub body: Bytes,
    /// The codec bits of the frame's flags byte (advisory for worker payloads).
    pub codec: u8,
}

impl Payload {
    /// A payload with the given context and body and no codec bits.
    pub fn new(context: impl Into<Bytes>, body: impl Into<Bytes>) -> Self {
        Payload {
            context: context.into(),
            body: body.into(),
            codec: 0,
        }
    }

    /// True when both the context and the body are empty, which RoadRunner
    /// refuses to send (`payload can not be empty`).
    pub fn is_empty(&self) -> bool {
        self.context.is_empty() && self.body.is_empty()
    }
}
