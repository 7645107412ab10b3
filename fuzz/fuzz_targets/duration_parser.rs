//! Go duration parsing and formatting: no panics, and format(parse(x)) parses
//! back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rr_config::duration::{format_go_duration, parse_go_duration};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = parse_go_duration(&text) {
        let again = parse_go_duration(&d.to_string());
        assert_eq!(again, Ok(d), "signed round trip of {text:?}");
        if let Some(std) = d.to_std() {
            let formatted = format_go_duration(std);
            assert_eq!(
                parse_go_duration(&formatted),
                Ok(d),
                "round trip of {text:?}"
            );
        }
    }
});
