//! The chunked-body scanner: where a relayed chunked body ends.

/// A chunked body that breaks RFC 9112's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Finds where a chunked body ends as its bytes pass through, unchanged
/// (RFC 9112 §7.1: size line with optional extensions, data, CRLF; a zero
/// size, trailer lines, CRLF). Anything else is an error.
#[derive(Debug, Default)]
pub struct Chunks {
    state: ChunkState,
    size: u64,
    digits: u8,
}

impl Chunks {
    /// Feeds the next bytes: `Ok(Some(n))` when the body ends after the
    /// first `n` of them, `Ok(None)` when all belong to it.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, Malformed> {
        use ChunkState::*;
        let mut i = 0;
        while i < data.len() {
            if self.state == Data {
                let take =
                    usize::try_from(self.size).map_or(data.len() - i, |s| s.min(data.len() - i));
                self.size -= take as u64;
                i += take;
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let b = data[i];
            i += 1;
            self.state = match (self.state, b) {
                (Size, b) if b.is_ascii_hexdigit() => {
                    // 15 hex digits: far beyond any body, short of overflow.
                    if self.digits >= 15 {
                        return Err(Malformed);
                    }
                    self.digits += 1;
                    self.size = self.size * 16 + u64::from(hex(b));
                    Size
                }
                (Size, b';' | b' ' | b'\t') if self.digits > 0 => Ext,
                (Size, b'\r') if self.digits > 0 => SizeLf,
                (Ext, b'\r') => SizeLf,
                (Ext, b'\n') => return Err(Malformed),
                (Ext, _) => Ext,
                (SizeLf, b'\n') if self.size == 0 => TrailerStart,
                (SizeLf, b'\n') => Data,
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => {
                    self.digits = 0;
                    Size
                }
                (TrailerStart, b'\r') => EndLf,
                (TrailerStart | Trailer, b'\n') => return Err(Malformed),
                (Trailer, b'\r') => TrailerLf,
                (TrailerStart | Trailer, _) => Trailer,
                (TrailerLf, b'\n') => TrailerStart,
                (EndLf, b'\n') => {
                    self.state = Done;
                    return Ok(Some(i));
                }
                (Done, _) => return Ok(Some(i - 1)),
                _ => return Err(Malformed),
            };
        }
        Ok(if self.state == Done { Some(0) } else { None })
    }

    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(chunks: &[Vec<u8>], trailers: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:x};n=v\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for t in trailers {
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Feeds `data` in pieces cut at `cuts`; the end as found.
    fn end_of(data: &[u8], cuts: &[usize]) -> Result<Option<usize>, Malformed> {
        let mut c = Chunks::default();
        let mut points: Vec<usize> = cuts.iter().map(|x| x % (data.len() + 1)).collect();
        points.push(0);
        points.push(data.len());
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            if let Some(n) = c.feed(&data[w[0]..w[1]])? {
                return Ok(Some(w[0] + n));
            }
        }
        Ok(None)
    }

    proptest! {
        #[test]
        fn the_end_of_a_chunked_body_is_found_wherever_it_is_cut(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            trailer in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            after in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let trailers: &[&str] = if trailer { &["X-T: 1", "Y: 2"] } else { &[] };
            let body = encode(&chunks, trailers);
            let mut wire = body.clone();
            wire.extend_from_slice(&after);
            prop_assert_eq!(end_of(&wire, &cuts), Ok(Some(body.len())));
            // Cut short: never complete.
            prop_assert_eq!(end_of(&body[..body.len() - 1], &cuts), Ok(None));
        }
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"5\r\nhelloX\r\n",
            b"5\nhello\r\n",
            b"1000000000000000\r\n",
            b"0\r\nX: y\nZ",
            b"3;ext\nabc",
        ] {
            assert_eq!(
                Chunks::default().feed(bad),
                Err(Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
