//! Property tests of the mask types.

use mica_core::{connected_components, BinaryMask, Connectivity, LabelImage};
use proptest::prelude::*;

fn mask_strategy() -> impl Strategy<Value = BinaryMask> {
    (1u32..24, 1u32..24).prop_flat_map(|(w, h)| {
        proptest::collection::vec(any::<bool>(), (w * h) as usize)
            .prop_map(move |d| BinaryMask::new(w, h, d).unwrap())
    })
}

proptest! {
    #[test]
    fn components_cover_exactly_the_foreground(m in mask_strategy()) {
        for conn in [Connectivity::Four, Connectivity::Eight] {
            let l = connected_components(&m, conn);
            prop_assert_eq!(l.foreground(), m.clone());
            // Labels are 1..=N with no gaps.
            prop_assert_eq!(l.max_label() as usize, l.num_objects());
            prop_assert_eq!(l.relabel_sequential(), l.clone());
        }
    }

    #[test]
    fn eight_connectivity_never_has_more_objects(m in mask_strategy()) {
        let four = connected_components(&m, Connectivity::Four).num_objects();
        let eight = connected_components(&m, Connectivity::Eight).num_objects();
        prop_assert!(eight <= four);
    }

    #[test]
    fn relabel_preserves_partition(v in proptest::collection::vec(0u32..50, 1..200)) {
        let n = v.len() as u32;
        let l = LabelImage::new(n, 1, v.clone()).unwrap();
        let r = l.relabel_sequential();
        prop_assert_eq!(r.num_objects(), l.num_objects());
        for i in 0..v.len() {
            for j in 0..v.len() {
                prop_assert_eq!(v[i] == v[j], r.as_slice()[i] == r.as_slice()[j]);
            }
        }
    }
}
