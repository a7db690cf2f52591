#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| latchkey_tests::fuzz::totp_code(data));
