//! The tokenizer files of a model folder, each read and parsed at most once, with errors that name
//! the file.

use crate::error::{Error, Result};
use crate::io::InputDir;
use serde_json::{Map, Value};
use std::cell::OnceCell;

/// A JSON object file: its bytes (for parsers that take them) and its parsed contents.
pub(super) type JsonFile = (Vec<u8>, Map<String, Value>);

/// Lazily opened tokenizer files of one folder.
pub(super) struct TokenizerFiles<'a> {
    dir: &'a dyn InputDir,
    tokenizer_json: OnceCell<Option<JsonFile>>,
    tokenizer_config: OnceCell<Option<Map<String, Value>>>,
}

impl<'a> TokenizerFiles<'a> {
    pub(super) fn new(dir: &'a dyn InputDir) -> Self {
        TokenizerFiles {
            dir,
            tokenizer_json: OnceCell::new(),
            tokenizer_config: OnceCell::new(),
        }
    }

    /// How to name `name` in messages.
    pub(super) fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir.display())
    }

    pub(super) fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.dir.open(name)?.is_some())
    }

    /// The bytes of `name`, if present.
    pub(super) fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.dir.open(name)?.map(|f| f.read_all()).transpose()
    }

    /// A UTF-8 text file, if present.
    pub(super) fn text(&self, name: &str) -> Result<Option<String>> {
        self.bytes(name)?
            .map(|b| {
                String::from_utf8(b)
                    .map_err(|_| Error::format(self.path(name), "not valid UTF-8 text"))
            })
            .transpose()
    }

    /// A JSON file, if present.
    pub(super) fn json(&self, name: &str) -> Result<Option<Value>> {
        self.bytes(name)?
            .map(|b| parse_json(&b, &self.path(name)))
            .transpose()
    }

    /// A JSON file whose top level must be an object, if present.
    fn json_object(&self, name: &str) -> Result<Option<JsonFile>> {
        let Some(bytes) = self.bytes(name)? else {
            return Ok(None);
        };
        match parse_json(&bytes, &self.path(name))? {
            Value::Object(map) => Ok(Some((bytes, map))),
            _ => Err(Error::format(self.path(name), "expected a JSON object")),
        }
    }

    /// `tokenizer.json` as raw bytes and parsed, if present.
    pub(super) fn tokenizer_json(&self) -> Result<Option<&JsonFile>> {
        if self.tokenizer_json.get().is_none() {
            let v = self.json_object("tokenizer.json")?;
            let _ = self.tokenizer_json.set(v);
        }
        Ok(self.tokenizer_json.get().and_then(Option::as_ref))
    }

    /// `tokenizer_config.json`, if present.
    pub(super) fn tokenizer_config(&self) -> Result<Option<&Map<String, Value>>> {
        if self.tokenizer_config.get().is_none() {
            let v = self.json_object("tokenizer_config.json")?.map(|(_, m)| m);
            let _ = self.tokenizer_config.set(v);
        }
        Ok(self.tokenizer_config.get().and_then(Option::as_ref))
    }
}

fn parse_json(bytes: &[u8], path: &str) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::format(
            path,
            format!("not valid JSON ({e}); re-save the tokenizer with save_pretrained"),
        )
    })
}
