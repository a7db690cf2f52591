//! QR codes of otpauth URIs: PNG for APIs, Unicode blocks for the terminal.
//!
//! The codes come from the fast_qr crate. The qrcode crate drew them before; choosing its mask
//! took 1.3 ms of the enrolment step's 1.5 (crypto bench, `qr_png`), where fast_qr's whole
//! code takes about 0.2 ms.

use fast_qr::{ECL, QRBuilder};

use super::CryptoError;

/// Modules of light margin around the code, as the standard asks.
const QUIET_ZONE: usize = 4;
const PIXELS_PER_MODULE: usize = 6;

/// A QR code's modules with its quiet zone: `side` modules a row, dark or light.
struct Matrix {
    side: usize,
    dark: Vec<bool>,
}

impl Matrix {
    fn of(data: &str) -> Result<Matrix, CryptoError> {
        let code = QRBuilder::new(data)
            .ecl(ECL::M)
            .build()
            .map_err(|e| CryptoError::Input(format!("QR code: {e}")))?;
        let modules = code.size;
        let side = modules + 2 * QUIET_ZONE;
        let mut dark = vec![false; side * side];
        for (y, row) in code.data.chunks(modules.max(1)).take(modules).enumerate() {
            let start = (y + QUIET_ZONE) * side + QUIET_ZONE;
            if let Some(cells) = dark.get_mut(start..start + modules) {
                for (cell, module) in cells.iter_mut().zip(row) {
                    *cell = module.value();
                }
            }
        }
        Ok(Matrix { side, dark })
    }

    /// Whether the module at (`x`, `y`) is dark; outside the code, light.
    fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.side && self.dark.get(y * self.side + x).copied().unwrap_or(false)
    }
}

/// A PNG image of `data` as a QR code: 1-bit greyscale, [`PIXELS_PER_MODULE`] pixels a module,
/// a 4-module quiet zone. One bit a pixel, not a byte: the image is the same, and compressing an
/// eighth of the bytes took the enrolment step's 5.6 ms to a fraction (crypto bench, `qr_png`).
pub fn png(data: &str) -> Result<Vec<u8>, CryptoError> {
    let matrix = Matrix::of(data)?;
    let side = matrix.side * PIXELS_PER_MODULE;
    // A row is `side` bits, most significant first, padded to a whole byte; 1 is white.
    let stride = side.div_ceil(8);
    let mut pixels = vec![0xFFu8; stride * side];
    for my in 0..matrix.side {
        let mut row = vec![0xFFu8; stride];
        for mx in (0..matrix.side).filter(|&mx| matrix.is_dark(mx, my)) {
            let left = mx * PIXELS_PER_MODULE;
            for x in left..left + PIXELS_PER_MODULE {
                if let Some(byte) = row.get_mut(x / 8) {
                    *byte &= !(0x80 >> (x % 8));
                }
            }
        }
        let top = my * PIXELS_PER_MODULE;
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
    // `Fastest`: fdeflate's fast mode, as `Fast` is, with every row filtered "up" where `Fast`
    // tries all five filters a row. Rows repeat six times here, so "up" makes them zeros: the
    // image 3,296 bytes against 3,243, in 40 µs against 60 (release, beside a build).
    encoder.set_compression(png::Compression::Fastest);
    let failure = |e: png::EncodingError| CryptoError::Failure(format!("PNG: {e}"));
    let mut writer = encoder.write_header().map_err(failure)?;
    writer.write_image_data(&pixels).map_err(failure)?;
    writer.finish().map_err(failure)?;
    Ok(out)
}

/// `data` as a QR code drawn with Unicode half blocks, two module rows a line, for a terminal
/// with a dark background: the light modules are drawn, the dark ones left blank. (fast_qr's
/// own text drawing keeps a one-module margin; phone cameras want the standard four.)
pub fn terminal(data: &str) -> Result<String, CryptoError> {
    let matrix = Matrix::of(data)?;
    let mut out = String::with_capacity(matrix.side * (matrix.side / 2 + 1) * 3);
    for y in (0..matrix.side).step_by(2) {
        for x in 0..matrix.side {
            let top = !matrix.is_dark(x, y);
            // Below the last row (an odd count) lies the terminal, not the quiet zone.
            let bottom = y + 1 < matrix.side && !matrix.is_dark(x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '\u{2588}',
                (true, false) => '\u{2580}',
                (false, true) => '\u{2584}',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    out.pop();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str =
        "otpauth://totp/latchkey:someone%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=latchkey";

    /// The PNG decoded to 8-bit grey: its side, its bytes a row, its pixels.
    fn grey_pixels(bytes: Vec<u8>) -> (usize, usize, Vec<u8>) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut image = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut image).unwrap();
        assert_eq!(frame.color_type, png::ColorType::Grayscale);
        assert_eq!(frame.bit_depth, png::BitDepth::Eight);
        assert_eq!(frame.width, frame.height);
        (frame.width as usize, frame.line_size, image)
    }

    /// Decodes a greyscale image's one QR code with rqrr, a reader that shares no code with the
    /// writer.
    fn read_qr(side: usize, grey: impl FnMut(usize, usize) -> u8) -> String {
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(side, side, grey);
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the image");
        grids[0].decode().expect("a readable QR code").1
    }

    #[test]
    fn png_is_a_square_image_a_reader_decodes_to_the_uri() {
        let bytes = png(URI).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let (side, line_size, image) = grey_pixels(bytes);
        assert_eq!(side % PIXELS_PER_MODULE, 0);
        assert!(side >= (21 + 2 * QUIET_ZONE) * PIXELS_PER_MODULE);
        assert!(
            image.iter().all(|&p| p == 0 || p == 255),
            "black and white only"
        );
        // The quiet zone is white all round.
        let margin = QUIET_ZONE * PIXELS_PER_MODULE;
        for y in 0..side {
            for x in 0..side {
                if x < margin || y < margin || x >= side - margin || y >= side - margin {
                    assert_eq!(image[y * line_size + x], 255, "pixel ({x}, {y})");
                }
            }
        }
        let text = read_qr(side, |x, y| image[y * line_size + x]);
        assert_eq!(text, URI);
    }

    #[test]
    fn long_uris_still_read_back() {
        let uri = format!("{URI}&label={}", "x".repeat(300));
        let (side, line_size, image) = grey_pixels(png(&uri).unwrap());
        let text = read_qr(side, |x, y| image[y * line_size + x]);
        assert_eq!(text, uri);
    }

    #[test]
    fn more_data_than_a_qr_code_holds_is_an_input_error() {
        let err = png(&"x".repeat(3_000)).unwrap_err();
        assert!(matches!(err, CryptoError::Input(_)), "{err:?}");
    }

    /// The terminal drawing, read back with light blocks as light modules (the terminal's dark
    /// background as dark), decodes to the URI, inside a light quiet zone of four modules.
    #[test]
    fn terminal_rendering_reads_back_to_the_uri() {
        let text = terminal(URI).unwrap();
        let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
        let width = lines[0].len();
        assert!(lines.iter().all(|l| l.len() == width), "lines of one width");
        assert_eq!(lines.len(), width.div_ceil(2));
        // The quiet zone: two full lines of light above; four light columns left and right;
        // below, a full light line and the last half line (an odd count of module rows), whose
        // lower half is the terminal's own.
        let (full, upper) = ('\u{2588}', '\u{2580}');
        let last = lines.len() - 1;
        for line in &lines[..2] {
            assert!(line.iter().all(|&c| c == full), "{line:?}");
        }
        assert!(lines[last - 1].iter().all(|&c| c == full));
        assert!(lines[last].iter().all(|&c| c == upper));
        for line in &lines[..last] {
            assert!(line[..QUIET_ZONE].iter().all(|&c| c == full), "{line:?}");
            assert!(
                line[width - QUIET_ZONE..].iter().all(|&c| c == full),
                "{line:?}"
            );
        }
        let px = 4;
        let light = |x: usize, y: usize| {
            let c = lines[y / 2][x];
            matches!(
                (y % 2, c),
                (_, '\u{2588}') | (0, '\u{2580}') | (1, '\u{2584}')
            )
        };
        let side = width * px;
        let grey = |x: usize, y: usize| if light(x / px, y / px) { 255 } else { 0 };
        assert_eq!(read_qr(side, grey), URI);
    }
}
