//! The parity suite lives in `tests/`; this crate has no library code.
