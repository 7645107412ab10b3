//! Reading and writing frames over any async byte stream (pipes, TCP, Unix).
//!
//! Both halves keep their buffers between frames, so the steady state of a
//! worker round trip allocates only the payload the reader hands out.

use std::io::IoSlice;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{encode_header, Frame, FrameError, HEADER_LEN, MAX_HEADER_LEN};

/// What PHP prints when the worker script does not exist (`Could not open
/// input file: app.php`). RoadRunner recognises it by these first 12 bytes.
const PHP_FILE_NOT_FOUND: &[u8; HEADER_LEN] = b"Could not op";

/// The first read reserves this much; later reads grow towards the frame size.
const READ_CHUNK: usize = 64 * 1024;

/// Without vectored writes, payloads up to this size are copied next to the
/// header and sent with one write; larger ones are written in place.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Header plus this many parts minus one go out in one vectored write.
const MAX_VECTORED_PARTS: usize = 4;

/// Default for [`FrameReader::with_max_payload`]: large enough for any real
/// reply, small enough that a corrupt length cannot make us wait for 4 GiB.
pub const DEFAULT_MAX_PAYLOAD: u32 = 1 << 30;

/// Reads frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_payload: u32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader with the [`DEFAULT_MAX_PAYLOAD`] limit.
    pub fn new(inner: R) -> Self {
        Self::with_max_payload(inner, DEFAULT_MAX_PAYLOAD)
    }

    /// A reader that refuses frames announcing more than `max_payload` bytes.
    pub fn with_max_payload(inner: R, max_payload: u32) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            max_payload,
        }
    }

    /// Reads one whole frame.
    ///
    /// Memory grows with the bytes that really arrive, never with the length a
    /// header announces, so a lying header costs nothing before it is refused.
    pub async fn read_frame(&mut self) -> Result<Frame, FrameError> {
        loop {
            match Frame::decode(&mut self.buf, self.max_payload) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(FrameError::Crc(_)) if self.buf.starts_with(PHP_FILE_NOT_FOUND) => {
                    return Err(self.php_file_not_found().await);
                }
                Err(FrameError::Crc(_)) => return Err(FrameError::Crc(self.buffered_text())),
                Err(err) => return Err(err),
            }
            let needed = self.bytes_needed();
            self.buf
                .reserve(needed.clamp(HEADER_LEN, READ_CHUNK.max(needed.min(1 << 24))));
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() {
                    FrameError::Closed
                } else if self.buf.starts_with(PHP_FILE_NOT_FOUND) {
                    self.php_file_not_found().await
                } else {
                    FrameError::Truncated {
                        got: self.buf.len(),
                        expected: self.buf.len() + needed,
                    }
                });
            }
        }
    }

    /// Bytes still missing before the buffered frame is whole (at least one).
    fn bytes_needed(&self) -> usize {
        match crate::frame::peek_header(&self.buf) {
            Ok(Some(header)) => {
                (header.len() + header.payload_len as usize).saturating_sub(self.buf.len())
            }
            _ => HEADER_LEN - self.buf.len().min(HEADER_LEN),
        }
        .max(1)
    }

    /// The buffered bytes as text, for error messages about stray output.
    fn buffered_text(&self) -> String {
        const SHOWN: usize = 512;
        let shown = &self.buf[..self.buf.len().min(SHOWN)];
        String::from_utf8_lossy(shown).trim_end().to_owned()
    }

    /// Collects PHP's "Could not open input file" message to the end of the line.
    async fn php_file_not_found(&mut self) -> FrameError {
        while !self.buf.contains(&b'\n') && self.buf.len() < 4096 {
            match self.inner.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        FrameError::FileNotFound(self.buffered_text())
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

/// Writes frames to a byte stream, reusing one header/coalescing buffer.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer over `inner`.
    pub fn new(inner: W) -> Self {
        FrameWriter {
            inner,
            buf: Vec::with_capacity(MAX_HEADER_LEN + COALESCE_LIMIT),
        }
    }

    /// Writes one frame whose payload is the concatenation of `parts`, then flushes.
    ///
    /// Streams that take vectored writes (pipes, sockets) get header and
    /// parts in one `writev`, without copying the payload; others get small
    /// frames coalesced into one write. Either way the header goes out in
    /// the first write: PHP's official worker reads it with a single `fread`.
    pub async fn write_parts(
        &mut self,
        flags: u8,
        stream: u8,
        options: &[u32],
        parts: &[&[u8]],
    ) -> Result<(), FrameError> {
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        let mut header = [0u8; MAX_HEADER_LEN];
        let header_len = encode_header(&mut header, flags, stream, options, payload_len)?;
        if self.inner.is_write_vectored() && parts.len() < MAX_VECTORED_PARTS {
            let mut slices = [IoSlice::new(&[]); MAX_VECTORED_PARTS];
            slices[0] = IoSlice::new(&header[..header_len]);
            for (slot, part) in slices[1..].iter_mut().zip(parts) {
                *slot = IoSlice::new(part);
            }
            let mut pending = &mut slices[..=parts.len()];
            while !pending.is_empty() {
                let written = self.inner.write_vectored(pending).await?;
                if written == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                }
                IoSlice::advance_slices(&mut pending, written);
            }
        } else {
            self.buf.clear();
            self.buf.extend_from_slice(&header[..header_len]);
            if payload_len <= COALESCE_LIMIT {
                for part in parts {
                    self.buf.extend_from_slice(part);
                }
                self.inner.write_all(&self.buf).await?;
            } else {
                self.inner.write_all(&self.buf).await?;
                for part in parts {
                    self.inner.write_all(part).await?;
                }
            }
        }
        self.inner.flush().await?;
        Ok(())
    }

    /// Writes a whole [`Frame`].
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), FrameError> {
        self.write_parts(
            frame.flags,
            frame.stream,
            frame.options.as_slice(),
            &[&frame.payload],
        )
        .await
    }

    /// Shuts the stream down (closes a pipe, half-closes a socket).
    pub async fn shutdown(&mut self) -> Result<(), FrameError> {
        self.inner.shutdown().await?;
        Ok(())
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::flags;

    #[tokio::test]
    async fn frames_cross_a_duplex_stream_in_order() {
        let (client, server) = tokio::io::duplex(64);
        let mut writer = FrameWriter::new(client);
        let mut reader = FrameReader::new(server);
        let big = vec![7u8; 200_000];
        let send = async {
            writer
                .write_parts(0, 0, &[3], &[b"ctx", b"body"])
                .await
                .expect("small frame");
            writer
                .write_parts(flags::CODEC_RAW, 0, &[0], &[&big])
                .await
                .expect("big frame");
        };
        let receive = async {
            let first = reader.read_frame().await.expect("first");
            assert_eq!(first.options.as_slice(), &[3]);
            assert_eq!(&first.payload[..], b"ctxbody");
            let second = reader.read_frame().await.expect("second");
            assert_eq!(second.payload.len(), 200_000);
        };
        tokio::join!(send, receive);
    }

    #[tokio::test]
    async fn vectored_writes_survive_partial_writes_and_empty_parts() {
        let (client, server) = tokio::net::UnixStream::pair().expect("socket pair");
        let mut writer = FrameWriter::new(client);
        assert!(writer.get_ref().is_write_vectored());
        let mut reader = FrameReader::new(server);
        let big = vec![3u8; 300_000];
        let send = async {
            for _ in 0..3 {
                writer
                    .write_parts(0, 0, &[0], &[b"", &big])
                    .await
                    .expect("big frame, empty context");
            }
        };
        let receive = async {
            for _ in 0..3 {
                let frame = reader.read_frame().await.expect("frame");
                assert_eq!(frame.options.as_slice(), &[0]);
                assert_eq!(frame.payload.len(), 300_000);
                assert!(frame.payload.iter().all(|b| *b == 3));
            }
        };
        tokio::join!(send, receive);
    }

    #[tokio::test]
    async fn closing_between_frames_is_closed_and_inside_is_truncated() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server);
        drop(client.write_all(&[]).await);
        drop(client);
        assert!(matches!(reader.read_frame().await, Err(FrameError::Closed)));

        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(server);
        let mut buf = BytesMut::new();
        Frame::new(0, &[0], &b"hello world"[..])
            .expect("frame")
            .encode(&mut buf)
            .expect("encodes");
        client
            .write_all(&buf[..buf.len() - 3])
            .await
            .expect("write");
        drop(client);
        match reader.read_frame().await {
            Err(FrameError::Truncated { got, expected }) => {
                assert_eq!(got, buf.len() - 3);
                assert_eq!(expected, buf.len());
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn php_missing_script_message_is_recognised() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(server);
        client
            .write_all(b"Could not open input file: nope.php\n")
            .await
            .expect("write");
        drop(client);
        match reader.read_frame().await {
            Err(FrameError::FileNotFound(text)) => {
                assert_eq!(text, "Could not open input file: nope.php")
            }
            other => panic!("expected FileNotFound, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_4_gib_announcement_is_refused_without_waiting() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FrameReader::with_max_payload(server, 1 << 20);
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, 0, 0, &[0], u32::MAX as usize).expect("header");
        client.write_all(&header[..n]).await.expect("write");
        assert!(matches!(
            reader.read_frame().await,
            Err(FrameError::TooLarge { .. })
        ));
    }
}
