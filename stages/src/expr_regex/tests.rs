use super::*;

#[test]
fn the_translation_follows_i_regexp() {
    assert_eq!(translate("a.b", true), r"^(?:a[^\n\r]b)$");
    assert_eq!(translate(r"[.]\.", false), r"[.]\.");
    let e = Origin::Expression;
    assert!(compile("a|b", true, e).unwrap().is_match("a"));
    assert!(!compile("a|b", true, e).unwrap().is_match("ab"));
    assert!(compile("a|b", false, e).unwrap().is_match("xbx"));
}

#[test]
fn limits_refuse_oversized_patterns() {
    let long = "a".repeat(MAX_PATTERN_LEN + 1);
    assert!(
        compile(&long, true, Origin::Expression)
            .unwrap_err()
            .contains("bytes long")
    );
    for origin in [Origin::Expression, Origin::Record] {
        let big = compile(r"(\w{100}){100}", true, origin).unwrap_err();
        assert!(big.contains("compiles to more than"), "{big}");
        let err = compile("abc(", true, origin).unwrap_err();
        assert!(err.contains("not a valid regular expression"), "{err}");
    }
    // A written pattern may be larger than one a record supplies.
    assert!(compile(r"[\p{L}\d]{8,32}", true, Origin::Expression).is_ok());
    assert!(compile(r"[\p{L}\d]{8,32}", true, Origin::Record).is_err());
}

#[test]
fn the_cache_compiles_each_pattern_once_and_stays_small() {
    std::thread::spawn(|| {
        let r = Origin::Record;
        for _ in 0..100 {
            assert!(is_match("abc", "a.c", true, Origin::Expression));
            assert!(is_match("abc", "a.c", true, r));
            assert!(!is_match("abc", r"(\w{100}){100}", true, r));
        }
        assert_eq!(compilations(), 3);
        for i in 0..(CACHE_ENTRIES * 3) {
            is_match("x", &format!("x{i}?"), true, r);
        }
        CACHE.with(|c| assert_eq!(c.borrow().entries.len(), CACHE_ENTRIES));
        // The expression's own pattern was not evicted.
        assert!(is_match("abc", "a.c", true, Origin::Expression));
        assert_eq!(compilations(), 3 + CACHE_ENTRIES as u64 * 3);
    })
    .join()
    .unwrap();
}
