#![no_main]
//! AV1 as Enhanced RTMP, FLV and MP4 bring it: OBUs, leb128 sizes, the
//! sequence header and the `av1C` record, hostile. Never a panic;
//! `normalize` gives sized OBUs only and is a fixed point; leb128 and the
//! record read back to what they were written from.
use camrouter_media::av1::{self, obu_type, ConfigRecord, SequenceHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((v, n)) = av1::read_leb128(data) {
        let mut w = Vec::new();
        av1::write_leb128(&mut w, v);
        assert!(w.len() <= n);
        assert_eq!(av1::read_leb128(&w).ok(), Some((v, w.len())));
    }
    if let Ok(tu) = av1::normalize(data) {
        for obu in av1::obus(&tu) {
            let obu = obu.expect("normalized OBUs parse");
            assert!(obu.header[0] & 0x02 != 0, "an OBU without its size field");
            assert!(!matches!(
                obu.kind,
                obu_type::TEMPORAL_DELIMITER | obu_type::PADDING | obu_type::TILE_LIST
            ));
        }
        assert_eq!(av1::normalize(&tu).ok().as_ref(), Some(&tu));
        let _ = av1::is_keyframe(&tu, false);
    }
    let _ = av1::is_keyframe(data, data.len() % 2 == 0);
    if let Some(sh) = av1::find_sequence_header(data) {
        let keyframe = av1::with_sequence_header(&sh, data.to_vec());
        assert!(keyframe.len() >= data.len());
    }
    if let Ok(s) = SequenceHeader::parse(data) {
        let _ = (s.profile_name(), s.level_name(), s.mime());
    }
    if let Ok(rec) = av1::config_record(data) {
        let info = rec.codec_info();
        assert_eq!(
            (info.width, info.height),
            (rec.sequence.width, rec.sequence.height)
        );
        let again = ConfigRecord::parse(&rec.to_bytes()).expect("our record reads back");
        assert_eq!(again, rec);
    }
});
