//! QR codes of otpauth URIs: PNG for APIs, Unicode blocks for the terminal.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

use super::CryptoError;

const QUIET_ZONE: usize = 4;
const PIXELS_PER_MODULE: usize = 6;

fn code(data: &str) -> Result<QrCode, CryptoError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|e| CryptoError::Input(format!("QR code: {e}")))
}

/// A PNG image of `data` as a QR code (8-bit greyscale, 4-module quiet zone).
pub fn png(data: &str) -> Result<Vec<u8>, CryptoError> {
    let code = code(data)?;
    let modules = code.width();
    let dark: Vec<bool> = code
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    let side = (modules + 2 * QUIET_ZONE) * PIXELS_PER_MODULE;
    let mut pixels = vec![255u8; side * side];
    for (i, is_dark) in dark.iter().enumerate() {
        if !is_dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        for y in my * PIXELS_PER_MODULE..(my + 1) * PIXELS_PER_MODULE {
            let row = y * side;
            if let Some(span) =
                pixels.get_mut(row + mx * PIXELS_PER_MODULE..row + (mx + 1) * PIXELS_PER_MODULE)
            {
                span.fill(0);
            }
        }
    }
    let side = u32::try_from(side).map_err(|_| CryptoError::Input("QR code too large".into()))?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let failure = |e: png::EncodingError| CryptoError::Failure(format!("PNG: {e}"));
    let mut writer = encoder.write_header().map_err(failure)?;
    writer.write_image_data(&pixels).map_err(failure)?;
    writer.finish().map_err(failure)?;
    Ok(out)
}

/// `data` as a QR code drawn with Unicode half blocks, for a terminal.
pub fn terminal(data: &str) -> Result<String, CryptoError> {
    Ok(code(data)?
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_is_a_decodable_square_image() {
        let bytes =
            png("otpauth://totp/latchkey:admin?secret=JBSWY3DPEHPK3PXP&issuer=latchkey").unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(info.width as usize % PIXELS_PER_MODULE, 0);
        assert!(info.width >= ((21 + 8) * PIXELS_PER_MODULE) as u32);
    }

    #[test]
    fn terminal_rendering_has_even_lines() {
        let text = terminal("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP").unwrap();
        let widths: Vec<usize> = text.lines().map(|l| l.chars().count()).collect();
        assert!(widths.len() > 10);
        assert!(widths.iter().all(|w| *w == widths[0]));
    }
}
