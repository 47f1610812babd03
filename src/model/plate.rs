//! Plate normalization.
//!
//! Three forms of a plate are kept apart:
//! - **raw**: the text as the camera captured it, kept inside the encrypted object only;
//! - **canonical**: uppercase ASCII letters and digits, with spaces, dashes and dots removed —
//!   exact search compares this form;
//! - **folded**: the canonical form with OCR look-alikes mapped together (0/O/D/Q, 1/I, 2/Z, 5/S,
//!   8/B, 6/G), so a misread still finds its vehicle. The blind index is computed on this form, so
//!   the exact and the folded match of a plate fall in the same bucket.
//!
//! The issuing jurisdiction (state) is a separate field, never part of the plate.
//!
//! Changing either mapping changes blind-index buckets: stored data would no longer be found.

/// The longest canonical plate accepted. US plates have at most 8 characters; a little margin
/// allows other jurisdictions and vanity formats.
pub const MAX_PLATE_LEN: usize = 10;

/// Why a plate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlateError {
    /// Nothing left after removing separators.
    #[error("plate is empty")]
    Empty,
    /// Longer than [`MAX_PLATE_LEN`] after normalization.
    #[error("plate has {len} characters after normalization; at most {MAX_PLATE_LEN} are allowed")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A character that is neither a letter, a digit nor a separator. The character's position is
    /// given instead of the plate, which must not appear in errors.
    #[error("plate contains a character that is not an ASCII letter (A-Z), digit, space, dash or dot (at position {position})")]
    BadCharacter {
        /// 1-based position in the raw text.
        position: usize,
    },
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || c == '-' || c == '.' || c == '·' || c == '_'
}

/// The canonical form: ASCII uppercase letters and digits only.
pub fn canonical(raw: &str) -> Result<String, PlateError> {
    let mut out = String::with_capacity(raw.len());
    for (i, c) in raw.chars().enumerate() {
        if is_separator(c) {
            continue;
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else {
            return Err(PlateError::BadCharacter { position: i + 1 });
        }
    }
    if out.is_empty() {
        return Err(PlateError::Empty);
    }
    if out.len() > MAX_PLATE_LEN {
        return Err(PlateError::TooLong { len: out.len() });
    }
    Ok(out)
}

/// Maps one canonical character to its OCR look-alike class.
pub fn fold_char(c: char) -> char {
    match c {
        'O' | 'D' | 'Q' => '0',
        'I' => '1',
        'Z' => '2',
        'S' => '5',
        'B' => '8',
        'G' => '6',
        other => other,
    }
}

/// The folded form of a canonical plate.
pub fn folded(canonical: &str) -> String {
    canonical.chars().map(fold_char).collect()
}

/// How a stored plate matched a searched one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateMatch {
    /// Canonical forms are equal.
    Exact,
    /// Only the folded forms are equal (an OCR look-alike).
    Folded,
}

/// Compares a stored canonical plate with a searched canonical plate.
pub fn matches(stored: &str, searched: &str, allow_folded: bool) -> Option<PlateMatch> {
    if stored == searched {
        Some(PlateMatch::Exact)
    } else if allow_folded && stored.len() == searched.len() && folded(stored) == folded(searched) {
        Some(PlateMatch::Folded)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strips_separators_and_uppercases() {
        assert_eq!(canonical(" abc-12.3 ").unwrap(), "ABC123");
        assert_eq!(canonical("7\tXYZ 001").unwrap(), "7XYZ001");
    }

    #[test]
    fn refuses_bad_input_without_echoing_it() {
        assert_eq!(canonical(" - . "), Err(PlateError::Empty));
        assert_eq!(canonical("AB#12"), Err(PlateError::BadCharacter { position: 3 }));
        assert_eq!(canonical("ÄBC123"), Err(PlateError::BadCharacter { position: 1 }));
        assert_eq!(canonical("ABCDEFGHIJK"), Err(PlateError::TooLong { len: 11 }));
        let msg = canonical("SECRET#1").unwrap_err().to_string();
        assert!(!msg.contains("SECRET"));
    }

    #[test]
    fn folds_ocr_look_alikes() {
        assert_eq!(folded("O0DQ1I2Z5S8B6G"), "00001122558866");
        assert_eq!(matches("ABC123", "ABC123", true), Some(PlateMatch::Exact));
        assert_eq!(matches("A8C123", "ABC123", true), Some(PlateMatch::Folded));
        assert_eq!(matches("A8C123", "ABC123", false), None);
        assert_eq!(matches("ABC1234", "ABC123", true), None);
    }

    proptest! {
        #[test]
        fn canonical_is_idempotent(raw in "[ a-zA-Z0-9.-]{0,14}") {
            if let Ok(c) = canonical(&raw) {
                prop_assert_eq!(canonical(&c).unwrap(), c.clone());
                prop_assert!(c.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit()));
            }
        }

        #[test]
        fn separators_never_matter(raw in "[A-Z0-9]{1,8}", seps in proptest::collection::vec("[ .-]", 0..4)) {
            let mut spaced = String::new();
            for (i, ch) in raw.chars().enumerate() {
                spaced.push(ch);
                if let Some(s) = seps.get(i) { spaced.push_str(s); }
            }
            prop_assert_eq!(canonical(&spaced).unwrap(), raw);
        }

        #[test]
        fn folding_is_idempotent_and_a_superset_of_exact(raw in "[A-Z0-9]{1,8}") {
            let f = folded(&raw);
            prop_assert_eq!(folded(&f), f.clone());
            prop_assert_eq!(matches(&raw, &raw, true), Some(PlateMatch::Exact));
            prop_assert!(matches(&f, &raw, true).is_some());
        }

        #[test]
        fn case_never_matters(raw in "[a-zA-Z0-9]{1,8}") {
            prop_assert_eq!(canonical(&raw.to_lowercase()).unwrap(), canonical(&raw.to_uppercase()).unwrap());
        }
    }
}
