// TEMPSTUB-LEAD
pub mod ffi;
