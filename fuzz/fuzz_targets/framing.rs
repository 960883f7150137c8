#![no_main]

// Body and documentation: strom_broker::fuzzing::frames.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_broker::fuzzing::frames(data));
