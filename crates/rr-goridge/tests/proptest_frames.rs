//! Property tests for the frame codec: every frame we can encode decodes to
//! itself, and no byte sequence makes the decoder panic.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rr_goridge::{Frame, FrameError};

fn any_frame() -> impl Strategy<Value = Frame> {
    (
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec(any::<u32>(), 0..=10),
        proptest::collection::vec(any::<u8>(), 0..2048),
    )
        .prop_map(|(flags, stream, options, payload)| {
            let mut frame =
                Frame::new(flags, &options, Bytes::from(payload)).expect("<= 10 options");
            frame.stream = stream;
            frame
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(frames in proptest::collection::vec(any_frame(), 1..5)) {
        let mut buf = BytesMut::new();
        for frame in &frames {
            frame.encode(&mut buf).expect("encodes");
        }
        for frame in &frames {
            let decoded = Frame::decode(&mut buf, u32::MAX).expect("valid").expect("whole");
            prop_assert_eq!(&decoded, frame);
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = Frame::decode(&mut buf, 1 << 20);
    }

    #[test]
    fn any_corrupted_checksummed_byte_is_detected(frame in any_frame(), at in 0usize..10, bit in 0u8..8) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf).expect("encodes");
        buf[at] ^= 1 << bit;
        prop_assert!(matches!(Frame::decode(&mut buf, u32::MAX), Err(FrameError::Crc(_))));
    }
}
