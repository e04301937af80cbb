//! Any bytes (plain or gzip) through the decoder and the curator: no panics, and every
//! line ends up curated, rejected or blank.
#![no_main]

use bucketlog::curate::{CollectingSink, Curator};
use bucketlog::input::decode_reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let curator = Curator::new(CollectingSink::default(), None);
    let Ok((curator, _)) = decode_reader(data, curator) else {
        return;
    };
    let s = curator.stats();
    assert_eq!(s.records + s.rejected + s.blank, s.lines, "{s:?}");
});
