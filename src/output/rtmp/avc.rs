//! H.264 in the form FLV carries it: Annex B access units (start codes) in,
//! 4-byte length-prefixed NAL units and the AVCDecoderConfigurationRecord
//! (ISO/IEC 14496-15, 5.2.4.1) out.

/// NAL unit types (ITU-T H.264, table 7-1) that this module treats apart.
pub mod nal_type {
    pub const IDR: u8 = 5;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const FILLER: u8 = 12;
}

/// Size of the length prefix before each NAL unit, in bytes. The record
/// announces it as `lengthSizeMinusOne = 3`.
pub const NAL_LENGTH_BYTES: usize = 4;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AvcError {
    #[error(
        "an H.264 SPS of {length} bytes is too short to hold profile and level: the encoder \
         sent a damaged SPS"
    )]
    ShortSps { length: usize },

    #[error(
        "an H.264 parameter set of {length} bytes does not fit the AVC configuration record's \
         16-bit length"
    )]
    ParameterSetTooLong { length: usize },
}

/// Returns the type of a NAL unit (its low five header bits).
pub fn nal_unit_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |header| header & 0x1f)
}

/// Splits an Annex B byte stream into NAL units, without start codes and
/// without the zero bytes that may trail a NAL unit.
pub fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut units = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(begin) = start {
                push_trimmed(&mut units, &data[begin..i]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(begin) = start {
        push_trimmed(&mut units, &data[begin..]);
    }
    units
}

fn push_trimmed<'a>(units: &mut Vec<&'a [u8]>, unit: &'a [u8]) {
    let end = unit
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(0, |i| i + 1);
    if end > 0 {
        units.push(&unit[..end]);
    }
}

/// Converts NAL units to the length-prefixed form FLV and MP4 use.
pub fn length_prefixed<'a>(units: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for unit in units {
        out.extend_from_slice(&(unit.len() as u32).to_be_bytes());
        out.extend_from_slice(unit);
    }
    out
}

/// Builds the AVCDecoderConfigurationRecord for `sps` and `pps`. Both must
/// be non-empty, so the caller keeps video back until it has them. Profile,
/// compatibility and level come from the first SPS. For the High profiles
/// the record ends with chroma format and bit depths read from that SPS;
/// when they cannot be read, that optional ending is left out, as many
/// muxers do.
pub fn decoder_configuration_record(sps: &[Vec<u8>], pps: &[Vec<u8>]) -> Result<Vec<u8>, AvcError> {
    let first = &sps[0];
    if first.len() < 4 {
        return Err(AvcError::ShortSps {
            length: first.len(),
        });
    }
    let (profile, compatibility, level) = (first[1], first[2], first[3]);

    let mut record = vec![1, profile, compatibility, level];
    // Six reserved one bits, then lengthSizeMinusOne.
    record.push(0xfc | (NAL_LENGTH_BYTES as u8 - 1));
    // Three reserved one bits, then the SPS count (at most 31).
    let sps = &sps[..sps.len().min(31)];
    record.push(0xe0 | sps.len() as u8);
    push_parameter_sets(&mut record, sps)?;
    let pps = &pps[..pps.len().min(255)];
    record.push(pps.len() as u8);
    push_parameter_sets(&mut record, pps)?;

    if matches!(profile, 100 | 110 | 122 | 144) {
        if let Some(format) = chroma_format(first) {
            record.push(0xfc | format.chroma_format_idc);
            record.push(0xf8 | format.bit_depth_luma_minus8);
            record.push(0xf8 | format.bit_depth_chroma_minus8);
            // No SPS extensions.
            record.push(0);
        }
    }
    Ok(record)
}

fn push_parameter_sets(record: &mut Vec<u8>, sets: &[Vec<u8>]) -> Result<(), AvcError> {
    for set in sets {
        let length = u16::try_from(set.len())
            .map_err(|_| AvcError::ParameterSetTooLong { length: set.len() })?;
        record.extend_from_slice(&length.to_be_bytes());
        record.extend_from_slice(set);
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
struct ChromaFormat {
    chroma_format_idc: u8,
    bit_depth_luma_minus8: u8,
    bit_depth_chroma_minus8: u8,
}

/// Reads chroma format and bit depths from a High profile SPS (H.264
/// 7.3.2.1.1), or `None` when the SPS ends early or contains values out of
/// range.
fn chroma_format(sps: &[u8]) -> Option<ChromaFormat> {
    let rbsp = remove_emulation_prevention(sps.get(4..)?);
    let mut bits = BitReader::new(&rbsp);
    let _seq_parameter_set_id = bits.unsigned_exp_golomb()?;
    let chroma_format_idc = bits.unsigned_exp_golomb()?;
    if chroma_format_idc == 3 {
        let _separate_colour_plane = bits.bit()?;
    }
    let bit_depth_luma_minus8 = bits.unsigned_exp_golomb()?;
    let bit_depth_chroma_minus8 = bits.unsigned_exp_golomb()?;
    if chroma_format_idc > 3 || bit_depth_luma_minus8 > 6 || bit_depth_chroma_minus8 > 6 {
        return None;
    }
    Some(ChromaFormat {
        chroma_format_idc: chroma_format_idc as u8,
        bit_depth_luma_minus8: bit_depth_luma_minus8 as u8,
        bit_depth_chroma_minus8: bit_depth_chroma_minus8 as u8,
    })
}

/// Drops each 0x03 that follows two zero bytes (H.264 7.4.1).
fn remove_emulation_prevention(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &byte in data {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

struct BitReader<'a> {
    data: &'a [u8],
    position_bits: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            position_bits: 0,
        }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.position_bits / 8)?;
        let bit = (byte >> (7 - self.position_bits % 8)) & 1;
        self.position_bits += 1;
        Some(u32::from(bit))
    }

    /// Reads a ue(v) value, or `None` past the end or beyond 31 leading
    /// zeros.
    fn unsigned_exp_golomb(&mut self) -> Option<u32> {
        let mut leading_zeros = 0;
        while self.bit()? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return None;
            }
        }
        let mut suffix: u64 = 0;
        for _ in 0..leading_zeros {
            suffix = (suffix << 1) | u64::from(self.bit()?);
        }
        u32::try_from((1u64 << leading_zeros) - 1 + suffix).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SPS and PPS x264 (GStreamer 1.22) writes for 640x360 at 30 fps,
    /// High profile, level 3.0.
    const HIGH_SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x16, 0xa0, 0xc0, 0xc0,
        0xd4, 0xa0, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x07, 0x91, 0xe2, 0xc5, 0xb2, 0xc0,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xec, 0xb2, 0x2c];
    const BASELINE_SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];

    #[test]
    fn split_handles_start_code_forms() {
        // Name, Annex B input, expected NAL units.
        type Case = (&'static str, Vec<u8>, Vec<Vec<u8>>);
        let cases: Vec<Case> = vec![
            (
                "four-byte start codes",
                vec![0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x65, 0x88, 0x84],
                vec![vec![0x09, 0xf0], vec![0x65, 0x88, 0x84]],
            ),
            (
                "three-byte start codes",
                vec![0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce],
                vec![vec![0x67, 0x42], vec![0x68, 0xce]],
            ),
            (
                "mixed, with trailing zero bytes",
                vec![0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 0, 1, 0x41, 0x9a, 0, 0],
                vec![vec![0x67, 0x42], vec![0x41, 0x9a]],
            ),
            (
                "emulation prevention kept",
                vec![0, 0, 1, 0x65, 0, 0, 3, 1, 0x10],
                vec![vec![0x65, 0, 0, 3, 1, 0x10]],
            ),
            ("no start code", vec![0x65, 0x88], vec![]),
            ("empty", vec![], vec![]),
        ];
        for (name, input, expected) in cases {
            let units: Vec<Vec<u8>> = split_annex_b(&input).iter().map(|u| u.to_vec()).collect();
            assert_eq!(units, expected, "{name}");
        }
    }

    #[test]
    fn length_prefix_is_four_bytes_big_endian() {
        let units: [&[u8]; 2] = [&[0x65, 1, 2], &[0x06]];
        assert_eq!(
            length_prefixed(units),
            vec![0, 0, 0, 3, 0x65, 1, 2, 0, 0, 0, 1, 0x06]
        );
    }

    #[test]
    fn record_for_baseline_has_no_high_profile_ending() {
        let record =
            decoder_configuration_record(&[BASELINE_SPS.to_vec()], &[PPS.to_vec()]).unwrap();
        let mut expected = vec![1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, BASELINE_SPS.len() as u8];
        expected.extend_from_slice(BASELINE_SPS);
        expected.extend_from_slice(&[1, 0, PPS.len() as u8]);
        expected.extend_from_slice(PPS);
        assert_eq!(record, expected);
    }

    #[test]
    fn record_for_high_profile_has_chroma_ending() {
        let record = decoder_configuration_record(&[HIGH_SPS.to_vec()], &[PPS.to_vec()]).unwrap();
        assert_eq!(&record[..6], &[1, 0x64, 0x00, 0x1e, 0xff, 0xe1]);
        // 4:2:0, 8-bit luma and chroma, no SPS extensions.
        assert_eq!(&record[record.len() - 4..], &[0xfd, 0xf8, 0xf8, 0]);
        assert_eq!(record.len(), 6 + 2 + HIGH_SPS.len() + 1 + 2 + PPS.len() + 4);
    }

    #[test]
    fn record_counts_every_parameter_set() {
        let sps = vec![BASELINE_SPS.to_vec(), BASELINE_SPS.to_vec()];
        let pps = vec![PPS.to_vec(), PPS.to_vec(), PPS.to_vec()];
        let record = decoder_configuration_record(&sps, &pps).unwrap();
        assert_eq!(record[5], 0xe2);
        let pps_count_at = 6 + 2 * (2 + BASELINE_SPS.len());
        assert_eq!(record[pps_count_at], 3);
    }

    #[test]
    fn record_rejects_short_sps() {
        let error = decoder_configuration_record(&[vec![0x67, 0x42]], &[PPS.to_vec()]).unwrap_err();
        assert_eq!(error, AvcError::ShortSps { length: 2 });
    }

    #[test]
    fn chroma_format_reads_exp_golomb_fields() {
        let format = chroma_format(HIGH_SPS).unwrap();
        assert_eq!(
            format,
            ChromaFormat {
                chroma_format_idc: 1,
                bit_depth_luma_minus8: 0,
                bit_depth_chroma_minus8: 0,
            }
        );
        // An SPS that ends right after the level has no fields to read.
        assert_eq!(chroma_format(&HIGH_SPS[..4]), None);
    }

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        assert_eq!(
            remove_emulation_prevention(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 3]
        );
    }

    #[test]
    fn nal_type_from_header() {
        assert_eq!(nal_unit_type(&[0x65]), nal_type::IDR);
        assert_eq!(nal_unit_type(&[0x67]), nal_type::SPS);
        assert_eq!(nal_unit_type(&[0x68]), nal_type::PPS);
        assert_eq!(nal_unit_type(&[0x09]), nal_type::AUD);
        assert_eq!(nal_unit_type(&[]), 0);
    }
}
