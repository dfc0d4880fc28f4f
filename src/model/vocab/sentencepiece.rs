//! The pieces of a SentencePiece `tokenizer.model` (a protobuf `ModelProto`).
//!
//! The converter only reads each piece's text, score and type, so this is a small hand-written
//! protobuf reader for exactly those fields rather than generated code and a protobuf runtime:
//! nothing else in the crate speaks protobuf, and codegen would cost build time on every target.

use crate::error::{Error, Result};

/// A piece's type, numbered as in sentencepiece's `ModelProto.SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    /// Ordinary text.
    Normal,
    /// The unknown-token piece.
    Unknown,
    /// A control symbol such as `<s>`.
    Control,
    /// A user-defined symbol, matched verbatim.
    UserDefined,
    /// A byte-fallback piece `<0xNN>`.
    Byte,
    /// A piece that is never produced.
    Unused,
}

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The piece text.
    pub text: String,
    /// Its log-probability score.
    pub score: f32,
    /// Its type.
    pub kind: PieceType,
}

/// Reads the pieces of `ModelProto` bytes; `path` names the file in errors.
pub fn read_pieces(bytes: &[u8], path: &str) -> Result<Vec<Piece>> {
    let bad = |what: &str| {
        Error::format(
            path,
            format!("not a SentencePiece model ({what}); re-save the tokenizer or copy tokenizer.model from the base model"),
        )
    };
    let mut pieces = Vec::new();
    let mut outer = Fields::new(bytes);
    while let Some((field, value)) = outer.next().map_err(bad)? {
        // ModelProto field 1: repeated SentencePiece; the specs (2, 3, ...) are not needed.
        let (1, Value::Bytes(piece)) = (field, value) else {
            continue;
        };
        let mut p = Piece {
            text: String::new(),
            score: 0.0,
            kind: PieceType::Normal,
        };
        let mut inner = Fields::new(piece);
        while let Some((field, value)) = inner.next().map_err(bad)? {
            match (field, value) {
                (1, Value::Bytes(b)) => {
                    p.text =
                        String::from_utf8(b.to_vec()).map_err(|_| bad("a piece is not UTF-8"))?
                }
                (2, Value::Fixed32(bits)) => p.score = f32::from_bits(bits),
                (3, Value::Varint(t)) => {
                    p.kind = match t {
                        1 => PieceType::Normal,
                        2 => PieceType::Unknown,
                        3 => PieceType::Control,
                        4 => PieceType::UserDefined,
                        5 => PieceType::Unused,
                        6 => PieceType::Byte,
                        _ => return Err(bad("unknown piece type")),
                    }
                }
                _ => {}
            }
        }
        pieces.push(p);
    }
    if pieces.is_empty() {
        return Err(bad("it has no pieces"));
    }
    Ok(pieces)
}

/// A field value by wire type.
enum Value<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    Fixed64,
}

/// Iterates the `(field number, value)` pairs of one protobuf message.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { rest: bytes }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.rest.split_first().ok_or("truncated varint")?;
            self.rest = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], &'static str> {
        let n = usize::try_from(n).map_err(|_| "length out of range")?;
        if n > self.rest.len() {
            return Err("truncated field");
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>, &'static str> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            _ => return Err("unsupported wire type"),
        };
        Ok(Some((key >> 3, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field.
    fn bytes_field(field: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![field << 3 | 2, data.len() as u8];
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_pieces_and_skips_other_fields() {
        let mut piece = bytes_field(1, b"<s>");
        piece.push(2 << 3 | 5);
        piece.extend_from_slice(&(-1.5f32).to_le_bytes());
        piece.extend_from_slice(&[3 << 3, 3]);
        let mut model = bytes_field(1, &piece);
        model.extend(bytes_field(1, &bytes_field(1, b"a")));
        // trainer_spec with a varint and a fixed64 inside, then an unknown varint field
        model.extend(bytes_field(
            2,
            &[3 << 3, 2, 9 << 3 | 1, 0, 0, 0, 0, 0, 0, 0, 0],
        ));
        model.extend_from_slice(&[7 << 3, 0x96, 0x01]);
        let pieces = read_pieces(&model, "t.model").unwrap();
        assert_eq!(
            pieces,
            vec![
                Piece {
                    text: "<s>".into(),
                    score: -1.5,
                    kind: PieceType::Control
                },
                Piece {
                    text: "a".into(),
                    score: 0.0,
                    kind: PieceType::Normal
                },
            ]
        );
    }

    #[test]
    fn rejects_truncated_and_foreign_bytes() {
        let model = bytes_field(1, &bytes_field(1, b"abc"));
        let err = read_pieces(&model[..model.len() - 1], "x/tokenizer.model").unwrap_err();
        assert!(err.to_string().contains("x/tokenizer.model"), "{err}");
        assert!(
            err.to_string().contains("not a SentencePiece model"),
            "{err}"
        );
        assert!(read_pieces(b"{\"json\": true}", "t").is_err());
        assert!(read_pieces(b"", "t").is_err());
    }
}
