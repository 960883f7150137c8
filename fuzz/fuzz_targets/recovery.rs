#![no_main]

// Body and documentation: strom_log::fuzzing::recovery.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_log::fuzzing::recovery(data));
