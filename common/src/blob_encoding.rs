//! How a blob may travel encoded: a text blob of at most
//! [`MAX_ENCODED_BLOB`] bytes (a tree's manifest, a configuration file) is
//! sent gzip-encoded to a node that accepts it, when that makes it
//! smaller. A manifest is JSON with a hex digest per file, and was most of
//! what an update level fetched beyond its changed files; jars and other
//! binary files are sent as they are (they are compressed already).
//!
//! The node decodes as it receives and checks the digest of the decoded
//! bytes, as for any blob; a blob that decodes to more than
//! [`MAX_ENCODED_BLOB`] bytes is refused, so a hostile master cannot send
//! a small stream that fills the node's disk.

use std::io::Write;

/// The encoding's name on the wire.
pub const GZIP: &str = "gzip";

/// The largest blob sent encoded, and the most an encoded blob may decode to.
pub const MAX_ENCODED_BLOB: usize = 4 << 20;

/// Whether `bytes` look like text: no NUL and no control character other
/// than tab, line feed, form feed and carriage return in them.
pub fn is_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r'))
}

/// The gzip encoding of `bytes` when the blob is text, at most
/// [`MAX_ENCODED_BLOB`] bytes, and encodes to less than nine tenths of
/// itself; `None` when it is better sent as it is.
pub fn encode(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.is_empty() || bytes.len() > MAX_ENCODED_BLOB || !is_text(bytes) {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).ok()?;
    let encoded = encoder.finish().ok()?;
    (encoded.len() < bytes.len() / 10 * 9).then_some(encoded)
}

/// Decodes one encoded blob as its chunks arrive, into `out`.
pub struct Decoder<W: Write> {
    inner: flate2::write::GzDecoder<Bounded<W>>,
}

/// A writer that refuses more than [`MAX_ENCODED_BLOB`] bytes.
pub struct Bounded<W: Write> {
    out: W,
    written: usize,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() > MAX_ENCODED_BLOB {
            return Err(std::io::Error::other(format!(
                "it decodes to more than the {MAX_ENCODED_BLOB} bytes an encoded blob may have"
            )));
        }
        let n = self.out.write(buf)?;
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Decoder<W> {
    /// A decoder writing the decoded bytes to `out`.
    pub fn new(out: W) -> Self {
        Self {
            inner: flate2::write::GzDecoder::new(Bounded { out, written: 0 }),
        }
    }

    /// Decodes one chunk of encoded bytes.
    pub fn write(&mut self, encoded: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(encoded)
    }

    /// Ends the blob: the encoded stream must be whole. Returns `out` and
    /// how many decoded bytes it was given.
    pub fn finish(self) -> std::io::Result<(W, usize)> {
        let bounded = self.inner.finish()?;
        Ok((bounded.out, bounded.written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_encoded_and_decodes_back_in_pieces() {
        let manifest: String = (0..3000)
            .map(|i| {
                format!(
                    "{{\"path\":\"lib/lib{i}.jar\",\"digest\":\"sha256:{:064x}\"}}\n",
                    i * 7919
                )
            })
            .collect();
        let encoded = encode(manifest.as_bytes()).expect("a manifest compresses");
        assert!(
            encoded.len() < manifest.len() / 2,
            "{} of {}",
            encoded.len(),
            manifest.len()
        );
        let mut decoder = Decoder::new(Vec::new());
        for piece in encoded.chunks(1000) {
            decoder.write(piece).unwrap();
        }
        let (decoded, written) = decoder.finish().unwrap();
        assert_eq!(decoded, manifest.as_bytes());
        assert_eq!(written, manifest.len());
    }

    #[test]
    fn binary_large_or_incompressible_blobs_go_as_they_are() {
        assert!(encode(b"PK\x03\x04 a jar").is_none());
        assert!(encode(&vec![b'a'; MAX_ENCODED_BLOB + 1]).is_none());
        assert!(encode(b"").is_none());
        // Text that does not shrink by a tenth.
        assert!(encode(b"short").is_none());
    }

    #[test]
    fn a_bomb_and_a_cut_stream_are_refused() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder
            .write_all(&vec![b' '; MAX_ENCODED_BLOB + 1])
            .unwrap();
        let bomb = encoder.finish().unwrap();
        let mut decoder = Decoder::new(Vec::new());
        let refused = decoder
            .write(&bomb)
            .and_then(|()| decoder.finish().map(|_| ()));
        assert!(
            refused
                .unwrap_err()
                .to_string()
                .contains("decodes to more than")
        );

        let encoded = encode(&vec![b'x'; 100_000]).unwrap();
        let mut decoder = Decoder::new(Vec::new());
        decoder.write(&encoded[..encoded.len() / 2]).unwrap();
        assert!(
            decoder.finish().is_err(),
            "a cut stream is not a whole blob"
        );
    }
}
