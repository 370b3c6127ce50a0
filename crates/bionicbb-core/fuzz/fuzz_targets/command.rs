#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bionicbb_core::fuzzing::command(data));
