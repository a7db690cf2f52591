//! QR codes of otpauth URIs: PNG for APIs, Unicode blocks for the terminal.
use super::CryptoError;

/// A PNG image of `data` as a QR code (8-bit greyscale, 4-module quiet zone).
pub fn png(data: &str) -> Result<Vec<u8>, CryptoError> {
    let _ = data;
    todo!()
}

/// `data` as a QR code drawn with Unicode half blocks, for a terminal.
pub fn terminal(data: &str) -> Result<String, CryptoError> {
    let _ = data;
    todo!()
}
