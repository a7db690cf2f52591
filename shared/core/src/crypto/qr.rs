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

/// A PNG image of `data` as a QR code: 1-bit greyscale, [`PIXELS_PER_MODULE`] pixels a module,
/// a 4-module quiet zone. One bit a pixel, not a byte: the image is the same, and compressing an
/// eighth of the bytes took the enrolment step's 5.6 ms to a fraction (crypto bench, `qr_png`).
pub fn png(data: &str) -> Result<Vec<u8>, CryptoError> {
    let code = code(data)?;
    let modules = code.width();
    let side = (modules + 2 * QUIET_ZONE) * PIXELS_PER_MODULE;
    // A row is `side` bits, most significant first, padded to a whole byte; 1 is white.
    let stride = side.div_ceil(8);
    let mut pixels = vec![0xFFu8; stride * side];
    let colors = code.to_colors();
    for (my, modules_row) in colors.chunks(modules.max(1)).enumerate() {
        let mut row = vec![0xFFu8; stride];
        for (mx, color) in modules_row.iter().enumerate() {
            if *color != qrcode::Color::Dark {
                continue;
            }
            let left = (mx + QUIET_ZONE) * PIXELS_PER_MODULE;
            for x in left..left + PIXELS_PER_MODULE {
                if let Some(byte) = row.get_mut(x / 8) {
                    *byte &= !(0x80 >> (x % 8));
                }
            }
        }
        let top = (my + QUIET_ZONE) * PIXELS_PER_MODULE;
        for y in top..top + PIXELS_PER_MODULE {
            if let Some(line) = pixels.get_mut(y * stride..(y + 1) * stride) {
                line.copy_from_slice(&row);
            }
        }
    }
    let side = u32::try_from(side).map_err(|_| CryptoError::Input("QR code too large".into()))?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_compression(png::Compression::Fast);
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

    /// Every pixel of the image, decoded back to 8-bit grey by the png crate, is the colour of
    /// the module it lies in, or white in the quiet zone.
    #[test]
    fn png_pixels_are_the_codes_modules() {
        let data =
            "otpauth://totp/latchkey:someone%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=latchkey";
        let bytes = png(data).unwrap();
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut image = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut image).unwrap();
        assert_eq!(frame.color_type, png::ColorType::Grayscale);
        assert_eq!(frame.bit_depth, png::BitDepth::Eight);
        let code = code(data).unwrap();
        let modules = code.width();
        let side = frame.width as usize;
        assert_eq!(side, (modules + 2 * QUIET_ZONE) * PIXELS_PER_MODULE);
        let colors = code.to_colors();
        let mut dark = 0;
        for y in 0..side {
            for x in 0..side {
                let (mx, my) = (x / PIXELS_PER_MODULE, y / PIXELS_PER_MODULE);
                let inside = (QUIET_ZONE..QUIET_ZONE + modules).contains(&mx)
                    && (QUIET_ZONE..QUIET_ZONE + modules).contains(&my);
                let expected = inside
                    && colors[(my - QUIET_ZONE) * modules + mx - QUIET_ZONE] == qrcode::Color::Dark;
                let pixel = image[y * frame.line_size + x];
                assert_eq!(pixel, if expected { 0 } else { 255 }, "pixel ({x}, {y})");
                dark += usize::from(expected);
            }
        }
        assert!(dark > 0);
    }

    #[test]
    fn terminal_rendering_has_even_lines() {
        let text = terminal("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP").unwrap();
        let widths: Vec<usize> = text.lines().map(|l| l.chars().count()).collect();
        assert!(widths.len() > 10);
        assert!(widths.iter().all(|w| *w == widths[0]));
    }
}
