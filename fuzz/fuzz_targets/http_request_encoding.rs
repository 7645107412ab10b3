//! The http plugin's request encoding: the PHP bracket form-tree parser on
//! urlencoded bodies and the `http.v1` protobuf codec never panic, and a
//! decoded message encodes back to one that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rr_http::form::parse_urlencoded;
use rr_http::proto::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = parse_urlencoded(data) {
        let _ = tree.to_json().to_string();
    }
    if let Ok(request) = Request::decode(data) {
        assert_eq!(Request::decode(&request.encode()), Ok(request));
    }
    if let Ok(response) = Response::decode(data) {
        assert_eq!(Response::decode(&response.encode()), Ok(response));
    }
});
