//! Byte scanners shared by the readers and the JSON writer: the first byte that ends an
//! unescaped string, the length of an indentation, a separator's positions. Sixteen bytes
//! at a time with SSE2 (every x86-64 has it), eight at a time elsewhere and on shorter
//! runs. The crate's only `unsafe` is the SSE2 calls below.

const SPACES: u64 = u64::from_ne_bytes(*b"        ");
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// How many spaces `line` starts with, eight at a time (the first non-space byte of a
/// word is its first non-zero byte once XORed with eight spaces).
#[inline(always)]
pub(crate) fn leading_spaces(line: &[u8]) -> usize {
    let mut at = 0;
    #[cfg(target_arch = "x86_64")]
    while let Some(block) = line.get(at..).and_then(|l| l.first_chunk::<16>()) {
        let others = !sse2::equal(block, b' ') & 0xffff;
        if others != 0 {
            return at + others.trailing_zeros() as usize;
        }
        at += 16;
    }
    while let Some(word) = line.get(at..).and_then(|l| l.first_chunk::<8>()) {
        let other = u64::from_le_bytes(*word) ^ SPACES;
        if other != 0 {
            return at + (other.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + line
        .get(at..)
        .map_or(0, |rest| rest.iter().take_while(|b| **b == b' ').count())
}

/// The high bit set in each byte of `w` equal to `c`, exact up to the first one.
#[inline(always)]
fn bytes_equal(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * u64::from(c));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Whether a byte ends or breaks an unescaped JSON string.
fn stops_string(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The first byte of `bytes` that ends or breaks an unescaped string — a quote, a
/// backslash (an escape: not ours to read) or a control byte (not JSON) — sixteen
/// or eight bytes at a time.
#[inline(always)]
pub(crate) fn string_end(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    let mut at = match first_in_blocks(bytes, sse2::string_stops) {
        Ok(found) => return Some(found),
        Err(at) => at,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(|b| b.first_chunk::<8>()) {
        let found = string_stops_word(u64::from_le_bytes(*word));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes
        .get(at..)?
        .iter()
        .position(|b| stops_string(*b))
        .map(|n| at + n)
}

/// The first byte that `hits` marks in the whole sixteen-byte blocks of `bytes`, or
/// where those blocks end (the shorter rest is for the caller).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn first_in_blocks(bytes: &[u8], hits: impl Fn(&[u8; 16]) -> u32) -> Result<usize, usize> {
    let mut at = 0;
    while let Some(block) = bytes.get(at..).and_then(|b| b.first_chunk::<16>()) {
        let found = hits(block);
        if found != 0 {
            return Ok(at + found.trailing_zeros() as usize);
        }
        at += 16;
    }
    Err(at)
}

/// Whether `bytes` holds no byte that ends or breaks an unescaped string. Values are
/// mostly a few bytes long (`sdb`, `8:16`, `ready`, a WWN): up to sixteen bytes are
/// gathered, overlapping, into one or two words and checked with no loop.
#[inline(always)]
pub(crate) fn plain(bytes: &[u8]) -> bool {
    let len = bytes.len();
    let word = |at: usize| bytes.get(at..).and_then(|b| b.first_chunk::<8>());
    let half = |at: usize| bytes.get(at..).and_then(|b| b.first_chunk::<4>());
    let words = match len {
        0 => return true,
        // First, middle and last byte: all of one to three; the fourth is a letter.
        1..4 => bytes.get(len / 2).zip(bytes.last()).map(|(middle, last)| {
            let low = u32::from_le_bytes([bytes[0], *middle, *last, b'a']);
            let word = u64::from(low) | u64::from(u32::from_le_bytes(*b"aaaa")) << 32;
            (word, word)
        }),
        4..8 => half(0).zip(half(len - 4)).map(|(head, tail)| {
            let join =
                u64::from(u32::from_le_bytes(*head)) | u64::from(u32::from_le_bytes(*tail)) << 32;
            (join, join)
        }),
        8..=16 => word(0)
            .zip(word(len - 8))
            .map(|(head, tail)| (u64::from_le_bytes(*head), u64::from_le_bytes(*tail))),
        _ => None,
    };
    match words {
        Some((a, b)) => string_stops_word(a) | string_stops_word(b) == 0,
        None => string_end(bytes).is_none(),
    }
}

/// The high bit set in each byte of `w` that ends or breaks an unescaped string, exact up
/// to the first one.
#[inline(always)]
fn string_stops_word(w: u64) -> u64 {
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    bytes_equal(w, b'"') | bytes_equal(w, b'\\') | control
}

/// Where the first ASCII whitespace byte of `bytes` is (what `u8::is_ascii_whitespace`
/// holds to be whitespace), sixteen bytes at a time: the words of a topology line are
/// split on it, thousands of times per reply.
#[inline(always)]
pub(crate) fn whitespace(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    let at = match first_in_blocks(bytes, sse2::whitespace) {
        Ok(found) => return Some(found),
        Err(at) => at,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let at = 0;
    bytes
        .get(at..)?
        .iter()
        .position(u8::is_ascii_whitespace)
        .map(|n| at + n)
}

/// Where `byte` occurs in a text, in order. Sixteen bytes are compared at a time and the
/// block's hits kept as a bit mask between calls: lines of topology text are a few dozen
/// bytes, where setting up a search per line cost more than the search.
pub(crate) struct Positions<'a> {
    bytes: &'a [u8],
    byte: u8,
    /// Where the block of `hits` starts.
    base: usize,
    hits: u32,
}

impl<'a> Positions<'a> {
    pub(crate) fn new(bytes: &'a [u8], byte: u8) -> Self {
        Self {
            bytes,
            byte,
            base: 0,
            hits: block_hits(bytes, byte),
        }
    }
}

impl Iterator for Positions<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.hits == 0 {
            self.base += 16;
            self.hits = block_hits(self.bytes.get(self.base..)?, self.byte);
        }
        let at = self.base + self.hits.trailing_zeros() as usize;
        self.hits &= self.hits - 1;
        Some(at)
    }
}

/// Bit `i` set where byte `i` of the first sixteen of `bytes` is `byte`.
#[inline(always)]
fn block_hits(bytes: &[u8], byte: u8) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(block) = bytes.first_chunk::<16>() {
        return sse2::equal(block, byte);
    }
    bytes
        .iter()
        .take(16)
        .enumerate()
        .filter(|(_, b)| **b == byte)
        .fold(0, |hits, (i, _)| hits | 1 << i)
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };

    /// Bit `i` set where byte `i` of `block` is `byte`.
    #[inline(always)]
    pub(crate) fn equal(block: &[u8; 16], byte: u8) -> u32 {
        // SAFETY: SSE2 is in the x86-64 baseline, so the instructions exist on every
        // machine this code is compiled for.
        unsafe { equal_sse2(block, byte) }
    }

    /// Bit `i` set where byte `i` of `block` ends or breaks an unescaped string: a
    /// quote, a backslash or a control byte.
    #[inline(always)]
    pub(crate) fn string_stops(block: &[u8; 16]) -> u32 {
        // SAFETY: as above.
        unsafe { string_stops_sse2(block) }
    }

    /// Bit `i` set where byte `i` of `block` is ASCII whitespace.
    #[inline(always)]
    pub(crate) fn whitespace(block: &[u8; 16]) -> u32 {
        // SAFETY: as above.
        unsafe { whitespace_sse2(block) }
    }

    #[target_feature(enable = "sse2")]
    fn load(block: &[u8; 16]) -> __m128i {
        let (low, high) = block.split_at(8);
        let word = |half: &[u8]| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(half);
            i64::from_le_bytes(bytes)
        };
        _mm_set_epi64x(word(high), word(low))
    }

    #[target_feature(enable = "sse2")]
    fn equal_sse2(block: &[u8; 16], byte: u8) -> u32 {
        let hits = _mm_cmpeq_epi8(load(block), _mm_set1_epi8(byte as i8));
        _mm_movemask_epi8(hits) as u32
    }

    #[target_feature(enable = "sse2")]
    fn whitespace_sse2(block: &[u8; 16]) -> u32 {
        let v = load(block);
        let is = |byte: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8));
        let hits = _mm_or_si128(
            _mm_or_si128(
                _mm_or_si128(is(b' '), is(b'\t')),
                _mm_or_si128(is(b'\n'), is(0x0c)),
            ),
            is(b'\r'),
        );
        _mm_movemask_epi8(hits) as u32
    }

    #[target_feature(enable = "sse2")]
    fn string_stops_sse2(block: &[u8; 16]) -> u32 {
        let v = load(block);
        let control = _mm_set1_epi8(0x1f);
        let hits = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
            ),
            // A byte is at most 0x1f when the larger of it and 0x1f is 0x1f.
            _mm_cmpeq_epi8(_mm_max_epu8(v, control), control),
        );
        _mm_movemask_epi8(hits) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes rich in what the scanners look for, after a run of spaces so that whole
    /// blocks of them are crossed too.
    fn text() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            Just(b' '),
            Just(b'"'),
            Just(b'\\'),
            Just(b'\n'),
            Just(b'\t'),
            any::<u8>(),
        ];
        (0usize..40, proptest::collection::vec(byte, 0..80))
            .prop_map(|(indent, bytes)| std::iter::repeat_n(b' ', indent).chain(bytes).collect())
    }

    proptest! {
        #[test]
        fn the_scanners_find_what_a_byte_loop_finds(bytes in text(), byte in any::<u8>()) {
            let stops = |b: &u8| *b == b'"' || *b == b'\\' || *b < 0x20;
            prop_assert_eq!(string_end(&bytes), bytes.iter().position(stops));
            prop_assert_eq!(
                leading_spaces(&bytes),
                bytes.iter().take_while(|b| **b == b' ').count()
            );
            prop_assert_eq!(whitespace(&bytes), bytes.iter().position(u8::is_ascii_whitespace));
            // Every tail, so that every length meets `plain`'s word gathering.
            for start in 0..bytes.len() {
                let tail = &bytes[start..];
                prop_assert_eq!(plain(tail), !tail.iter().any(stops), "{:?}", tail);
            }
            let found: Vec<usize> = Positions::new(&bytes, byte).collect();
            let expected: Vec<usize> = (0..bytes.len()).filter(|i| bytes[*i] == byte).collect();
            prop_assert_eq!(found, expected);
        }
    }
}
