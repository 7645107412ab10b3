//! Arbitrary bytes through the goridge frame decoder: it must never panic,
//! never consume bytes when it asks for more, and every frame it accepts must
//! encode back to exactly the bytes it consumed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rr_goridge::Frame;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        match Frame::decode(&mut buf, 1 << 20) {
            Ok(Some(frame)) => {
                let consumed = before.len() - buf.len();
                let mut encoded = BytesMut::new();
                frame.encode(&mut encoded).expect("a decoded frame encodes");
                // Byte 11 is reserved and not covered by the CRC: the decoder
                // ignores it, the encoder writes zero.
                let mut original = before[..consumed].to_vec();
                original[11] = 0;
                assert_eq!(&encoded[..], &original[..]);
            }
            Ok(None) => {
                assert_eq!(buf, before, "nothing consumed while waiting for more");
                break;
            }
            Err(_) => break,
        }
    }
});
