//! Sixteen bytes at a time where the hardware has it: SSE2 is part of every x86-64
//! processor. The parsers cross indentation, strings and field separators with these
//! masks, and take portable loops for shorter runs and on other architectures. The only
//! `unsafe` of the crate is here: calls into SSE2, which every x86-64 machine has.

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
