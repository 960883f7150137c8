#![no_main]

// Body and documentation: strom_log::fuzzing::record_batch.
libfuzzer_sys::fuzz_target!(|data: &[u8]| strom_log::fuzzing::record_batch(data));
