//! Decoding of object keys as S3-style event notifications carry them.
//!
//! S3 writes the key into a notification form-URL-encoded: a space becomes `+`, a literal `+`
//! becomes `%2B`, and other reserved or non-ASCII bytes (each byte of a multi-byte UTF-8
//! character included) become `%XX`. MinIO and moto use Go's and Python's form encoders, which
//! also turn `/` into `%2F`; the same decoding undoes all of these.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>
//!
//! [`decode_key`] decodes exactly once (`%252F` stays `%2F`) and never normalizes Unicode, so
//! the result is byte for byte the key the uploader chose.

use percent_encoding::percent_decode_str;

/// A key from a notification that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode object key {raw:?}: {problem}")]
pub struct KeyError {
    /// The key exactly as the payload carried it.
    pub raw: String,
    /// What is wrong with it.
    pub problem: KeyProblem,
}

/// Why a key could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// A `%` without two hex digits after it. S3 never sends that, so rather than guess
    /// (keep the `%`, drop it), the key is rejected.
    #[error("'%' at byte {offset} is not followed by two hex digits")]
    MalformedEscape {
        /// Byte offset of the `%` in the raw key.
        offset: usize,
    },
    /// The escapes decode to bytes that are not UTF-8; S3 keys are UTF-8 by definition.
    #[error("decoded bytes are not valid UTF-8")]
    InvalidUtf8,
}

/// Decodes a form-URL-encoded object key: `+` to space, then `%XX` escapes, then strict UTF-8.
///
/// The `+` step comes first so that an escaped plus (`%2B`) survives as `+`.
pub fn decode_key(raw: &str) -> Result<String, KeyError> {
    check_escapes(raw)?;
    let spaced = raw.replace('+', " ");
    match percent_decode_str(&spaced).decode_utf8() {
        Ok(decoded) => Ok(decoded.into_owned()),
        Err(_) => Err(key_error(raw, KeyProblem::InvalidUtf8)),
    }
}

/// Rejects a `%` that does not start a two-hex-digit escape.
///
/// The percent-encoding crate passes such a `%` through unchanged; a key that contains one was
/// not encoded the way S3 encodes, and guessing would hand routing a key that does not exist.
fn check_escapes(raw: &str) -> Result<(), KeyError> {
    let bytes = raw.as_bytes();
    for (offset, _) in raw.match_indices('%') {
        let digits = bytes.get(offset + 1..offset + 3);
        if !digits.is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit)) {
            return Err(key_error(raw, KeyProblem::MalformedEscape { offset }));
        }
    }
    Ok(())
}

fn key_error(raw: &str, problem: KeyProblem) -> KeyError {
    KeyError {
        raw: raw.to_owned(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_valid_keys() {
        let cases = [
            ("HappyFace.jpg", "HappyFace.jpg"),
            ("", ""),
            (
                "reports/Q3+report+%28final%29.pdf",
                "reports/Q3 report (final).pdf",
            ),
            ("a%2Bb.txt", "a+b.txt"),
            ("a+%2B+b", "a + b"),
            (
                "logs/2024-01-01T10%3A00%3A00.log",
                "logs/2024-01-01T10:00:00.log",
            ),
            ("folder%2Fsub%2Ffile.txt", "folder/sub/file.txt"),
            ("lower%2fcase%3a", "lower/case:"),
            (
                "photos/Caf%C3%A9+Z%C3%BCrich+%E6%9D%B1%E4%BA%AC.jpg",
                "photos/Café Zürich 東京.jpg",
            ),
            ("100%25+done", "100% done"),
            // Decoded once only: an escaped escape stays an escape.
            ("double%252Fencoded", "double%2Fencoded"),
            // Decomposed e + combining acute stays decomposed: no Unicode normalization.
            ("Cafe%CC%81", "Cafe\u{301}"),
            // Already-decoded non-ASCII passes through untouched.
            ("Zürich.txt", "Zürich.txt"),
            ("%F0%9F%93%84.txt", "\u{1F4C4}.txt"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_key(raw).as_deref(), Ok(want), "raw key {raw:?}");
        }
    }

    #[test]
    fn rejects_malformed_escapes() {
        let cases = [
            ("100%", 3),
            ("100%+done", 3),
            ("a%2", 1),
            ("a%zz", 1),
            ("ok%20then%g0", 9),
            ("%%41", 0),
        ];
        for (raw, offset) in cases {
            let want = key_error(raw, KeyProblem::MalformedEscape { offset });
            assert_eq!(decode_key(raw), Err(want), "raw key {raw:?}");
        }
    }

    #[test]
    fn rejects_invalid_utf8() {
        for raw in ["%FF.txt", "Caf%C3", "%C3%28", "%ED%A0%80"] {
            let want = key_error(raw, KeyProblem::InvalidUtf8);
            assert_eq!(decode_key(raw), Err(want), "raw key {raw:?}");
        }
    }

    #[test]
    fn error_message_names_the_raw_key() {
        let message = decode_key("bad%zzkey").map_err(|err| err.to_string());
        let want = "cannot decode object key \"bad%zzkey\": \
                    '%' at byte 3 is not followed by two hex digits";
        assert_eq!(message, Err(want.to_owned()));
    }
}
