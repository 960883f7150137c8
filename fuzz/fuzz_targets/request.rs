#![no_main]

// Body and documentation: strom_broker::fuzzing::request.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_broker::fuzzing::request(data));
