//! What the server makes of an uploaded image, without I/O: whether it is one of the types
//! shown inline, its size read from its header before any pixel is decoded (a
//! decompression bomb is refused there), its pixels upright by its EXIF orientation, the
//! bytes to store without the metadata that can say where a photo was taken, and a
//! thumbnail.

use image::{
    codecs::{jpeg::JpegEncoder, png::PngEncoder},
    imageops::FilterType,
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits,
};
use img_parts::{jpeg::Jpeg, png::Png, webp::WebP, Bytes, ImageEXIF};
use std::io::Cursor;

use app::protocol::{AVATAR_SIZE, THUMBNAIL_SIZE};

/// Widest or tallest image accepted, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Most pixels an image may have: 50 MP (a large phone photo is 12–48 MP). Decoded, that is
/// 200 MB of RGBA at most.
pub const MAX_PIXELS: u64 = 50_000_000;
/// What a decoder may allocate at most, a margin above [`MAX_PIXELS`] in RGBA.
const MAX_ALLOC: u64 = 256 << 20;
/// JPEG quality of thumbnails, and of photos re-encoded upright.
const THUMBNAIL_QUALITY: u8 = 80;
const UPRIGHT_QUALITY: u8 = 92;
/// JPEG quality of profile pictures.
const AVATAR_QUALITY: u8 = 85;

/// An image the server shows inline.
#[derive(Debug)]
pub struct Picture {
    /// One of `app::protocol::INLINE_IMAGE_TYPES`.
    pub content_type: &'static str,
    /// Upright.
    pub width: u32,
    pub height: u32,
    /// What to store instead of the upload: the same image without its metadata (EXIF,
    /// XMP, text chunks), re-encoded upright when its EXIF turned it. `None`: store the
    /// upload as it came.
    pub stored: Option<Vec<u8>>,
    /// At most [`THUMBNAIL_SIZE`] a side: PNG when the image has transparency, else JPEG.
    pub thumbnail: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PictureError {
    #[error(
        "the image is {width}×{height} pixels; at most {MAX_SIDE} a side and {MAX_PIXELS} in all"
    )]
    TooLarge { width: u32, height: u32 },
}

/// The inline type whose signature `head` (the first bytes of a file) starts with.
pub fn sniff(head: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(head).ok()? {
        f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP) => {
            Some(f)
        }
        _ => None,
    }
}

pub fn content_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "image/png",
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Gif => "image/gif",
        _ => "image/webp",
    }
}

fn reader(bytes: &[u8], format: ImageFormat) -> ImageReader<Cursor<&[u8]>> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    reader
}

/// The image in `bytes`; `Ok(None)` when it is not one of the inline types or cannot be
/// decoded (it is then kept as a file to download, never shown).
pub fn inspect(bytes: &[u8]) -> Result<Option<Picture>, PictureError> {
    let Some((img, format, turned)) = upright(bytes)? else {
        return Ok(None);
    };
    let stored = if turned {
        encode(&img, format)
    } else {
        without_metadata(bytes, format)
    };
    let thumbnail = thumbnail(&img);
    Ok(Some(Picture {
        content_type: content_type(format),
        width: img.width(),
        height: img.height(),
        stored,
        thumbnail,
    }))
}

/// A profile picture made of the image in `bytes`: its middle square, [`AVATAR_SIZE`]
/// pixels a side (smaller images are scaled up), upright, with no metadata; PNG when it
/// has transparency, else JPEG. With its type; `Ok(None)` when `bytes` is not an image of
/// the inline types.
pub fn avatar(bytes: &[u8]) -> Result<Option<(Vec<u8>, &'static str)>, PictureError> {
    let Some((img, _, _)) = upright(bytes)? else {
        return Ok(None);
    };
    let square = img.resize_to_fill(AVATAR_SIZE, AVATAR_SIZE, FilterType::Lanczos3);
    let mut out = Vec::new();
    let (done, kind) = if square.color().has_alpha() {
        let done = square
            .to_rgba8()
            .write_with_encoder(PngEncoder::new(&mut out));
        (done, "image/png")
    } else {
        let done = square
            .to_rgb8()
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, AVATAR_QUALITY));
        (done, "image/jpeg")
    };
    Ok(done.ok().map(|()| (out, kind)))
}

/// The image in `bytes` decoded and turned upright by its EXIF orientation, its format,
/// and whether it was turned; `Ok(None)` when it is not one of the inline types or cannot
/// be decoded. Refused, before any pixel is decoded, when its header says it is too large.
fn upright(bytes: &[u8]) -> Result<Option<(DynamicImage, ImageFormat, bool)>, PictureError> {
    let Some(format) = sniff(bytes) else {
        return Ok(None);
    };
    // The header alone: nothing is decoded yet.
    let Ok((width, height)) =
        ImageReader::with_format(Cursor::new(bytes), format).into_dimensions()
    else {
        return Ok(None);
    };
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(PictureError::TooLarge { width, height });
    }
    let Ok(mut decoder) = reader(bytes, format).into_decoder() else {
        return Ok(None);
    };
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let Ok(mut img) = DynamicImage::from_decoder(decoder) else {
        return Ok(None);
    };
    let turned = orientation != image::metadata::Orientation::NoTransforms;
    img.apply_orientation(orientation);
    Ok(Some((img, format, turned)))
}

/// The image re-encoded (upright, and so with no EXIF); `None` if that fails.
fn encode(img: &DynamicImage, format: ImageFormat) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let done = match format {
        ImageFormat::Jpeg => img
            .to_rgb8()
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, UPRIGHT_QUALITY)),
        other => img.write_to(&mut Cursor::new(&mut out), other),
    };
    done.ok().map(|()| out)
}

/// `bytes` without EXIF, XMP, IPTC and text chunks (where cameras and editors write places
/// and names), the pixels untouched; `None` when there was none (or the container cannot be
/// read, which the decoder already accepted).
fn without_metadata(bytes: &[u8], format: ImageFormat) -> Option<Vec<u8>> {
    let data = Bytes::copy_from_slice(bytes);
    let cleaned: Bytes = match format {
        ImageFormat::Jpeg => {
            let mut jpeg = Jpeg::from_bytes(data).ok()?;
            // APP1: EXIF and XMP; APP13: Photoshop's IPTC.
            for marker in [0xE1, 0xED] {
                jpeg.remove_segments_by_marker(marker);
            }
            jpeg.encoder().bytes()
        }
        ImageFormat::Png => {
            let mut png = Png::from_bytes(data).ok()?;
            for kind in [*b"eXIf", *b"tEXt", *b"iTXt", *b"zTXt"] {
                png.remove_chunks_by_type(kind);
            }
            png.encoder().bytes()
        }
        ImageFormat::WebP => {
            let mut webp = WebP::from_bytes(data).ok()?;
            webp.set_exif(None);
            webp.remove_chunks_by_id(*b"XMP ");
            webp.encoder().bytes()
        }
        // GIF has no place for a location.
        _ => return None,
    };
    (cleaned.len() != bytes.len()).then(|| cleaned.to_vec())
}

fn thumbnail(img: &DynamicImage) -> Vec<u8> {
    let small = if img.width() <= THUMBNAIL_SIZE && img.height() <= THUMBNAIL_SIZE {
        img.clone()
    } else {
        img.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    };
    let mut out = Vec::new();
    let done = if small.color().has_alpha() {
        small
            .to_rgba8()
            .write_with_encoder(PngEncoder::new(&mut out))
    } else {
        small
            .to_rgb8()
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, THUMBNAIL_QUALITY))
    };
    // Encoding pixels already in memory into a Vec fails only on a bug in the encoder.
    if done.is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    #[test]
    fn a_profile_picture_is_the_middle_square_at_its_size() {
        // Wide: red on the left third, green in the middle, blue on the right third.
        let img = RgbImage::from_fn(900, 300, |x, _| match x / 300 {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let mut png = Vec::new();
        img.write_with_encoder(PngEncoder::new(&mut png)).unwrap();
        let (bytes, kind) = avatar(&png).unwrap().unwrap();
        assert_eq!(kind, "image/jpeg", "no transparency: a JPEG");
        let out = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(out.dimensions(), (AVATAR_SIZE, AVATAR_SIZE));
        let [r, g, b] = out.get_pixel(AVATAR_SIZE / 2, AVATAR_SIZE / 2).0;
        assert!(g > 200 && r < 60 && b < 60, "the middle third: {r},{g},{b}");
        // Transparency is kept; what is not an image is not a picture.
        let clear = RgbaImage::from_pixel(40, 40, Rgba([0, 0, 0, 0]));
        let mut png = Vec::new();
        clear.write_with_encoder(PngEncoder::new(&mut png)).unwrap();
        assert_eq!(avatar(&png).unwrap().unwrap().1, "image/png");
        assert_eq!(
            avatar(b"<svg xmlns='http://www.w3.org/2000/svg'/>").unwrap(),
            None
        );
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, _| Rgb([(x % 256) as u8, 80, 160]));
        let mut out = Vec::new();
        img.write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90))
            .unwrap();
        out
    }

    /// A TIFF block as cameras write it: orientation `turn`, then an ASCII field that
    /// stands for the location.
    fn exif(turn: u16) -> Vec<u8> {
        let mut t = b"MM\0\x2a\0\0\0\x08\0\x02".to_vec();
        t.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
        t.extend_from_slice(&turn.to_be_bytes());
        t.extend_from_slice(&[0, 0]);
        // Tag 0x010E (ImageDescription), ASCII, 12 bytes at offset 38.
        t.extend_from_slice(&[0x01, 0x0E, 0, 2, 0, 0, 0, 12, 0, 0, 0, 38]);
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(b"GPS 48N 2E\0\0");
        t
    }

    fn with_exif(bytes: Vec<u8>, turn: u16) -> Vec<u8> {
        let mut jpeg = Jpeg::from_bytes(Bytes::from(bytes)).unwrap();
        jpeg.set_exif(Some(Bytes::from(exif(turn))));
        jpeg.encoder().bytes().to_vec()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_photo_loses_its_location_and_keeps_its_pixels() {
        let photo = with_exif(jpeg(64, 32), 1);
        assert!(contains(&photo, b"GPS 48N"));
        let p = inspect(&photo).unwrap().unwrap();
        assert_eq!((p.content_type, p.width, p.height), ("image/jpeg", 64, 32));
        let stored = p.stored.expect("metadata removed");
        assert!(!contains(&stored, b"GPS 48N"));
        assert!(!contains(&stored, b"Exif"));
        assert_eq!(stored.len(), jpeg(64, 32).len(), "only the EXIF went");
        let (w, h) = ImageReader::new(Cursor::new(&p.thumbnail))
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap();
        assert_eq!((w, h), (64, 32), "small images keep their size");
    }

    #[test]
    fn a_turned_photo_is_stored_upright_without_exif() {
        // Orientation 6: shown turned a quarter clockwise.
        let p = inspect(&with_exif(jpeg(64, 32), 6)).unwrap().unwrap();
        assert_eq!((p.width, p.height), (32, 64));
        let stored = p.stored.expect("re-encoded upright");
        assert!(!contains(&stored, b"GPS 48N"));
        let (w, h) = ImageReader::new(Cursor::new(&stored))
            .with_guessed_format()
            .unwrap()
            .into_dimensions()
            .unwrap();
        assert_eq!((w, h), (32, 64));
    }

    #[test]
    fn thumbnails_fit_the_box_and_keep_transparency() {
        let p = inspect(&jpeg(1200, 600)).unwrap().unwrap();
        assert_eq!(p.stored, None, "nothing to remove");
        let thumb = ImageReader::new(Cursor::new(&p.thumbnail))
            .with_guessed_format()
            .unwrap();
        assert_eq!(thumb.format(), Some(ImageFormat::Jpeg));
        assert_eq!(thumb.into_dimensions().unwrap(), (THUMBNAIL_SIZE, 200));

        let clear = RgbaImage::from_pixel(500, 500, Rgba([0, 0, 0, 0]));
        let mut png = Vec::new();
        clear.write_with_encoder(PngEncoder::new(&mut png)).unwrap();
        let p = inspect(&png).unwrap().unwrap();
        assert_eq!(p.content_type, "image/png");
        assert_eq!(sniff(&p.thumbnail), Some(ImageFormat::Png));
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // A PNG header claiming 30,000 × 30,000 pixels (3.6 GB decoded), no pixel data.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&30_000u32.to_be_bytes());
        png.extend_from_slice(&30_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let header_crc = crc(&png[12..]);
        png.extend_from_slice(&header_crc.to_be_bytes());
        // The start of its pixels (an empty zlib stream), and the end.
        for (kind, data) in [
            (&b"IDAT"[..], &b"\x78\x9c\x03\x00\x00\x00\x00\x01"[..]),
            (b"IEND", b""),
        ] {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let start = png.len();
            png.extend_from_slice(kind);
            png.extend_from_slice(data);
            let chunk_crc = crc(&png[start..]);
            png.extend_from_slice(&chunk_crc.to_be_bytes());
        }
        assert_eq!(
            inspect(&png).unwrap_err(),
            PictureError::TooLarge {
                width: 30_000,
                height: 30_000
            }
        );
    }

    #[test]
    fn what_only_looks_like_an_image_is_a_plain_file() {
        assert!(inspect(b"<html><script>alert(1)</script></html>")
            .unwrap()
            .is_none());
        // A JPEG signature in front of HTML: not decodable, so never shown.
        let mut fake = vec![0xFF, 0xD8, 0xFF, 0xE0];
        fake.extend_from_slice(b"<html><script>alert(1)</script></html>");
        assert!(inspect(&fake).unwrap().is_none());
        // SVG is not an inline type.
        assert!(inspect(
            br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#
        )
        .unwrap()
        .is_none());
    }

    /// PNG's CRC-32 (the chunk's type and data).
    fn crc(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
}
