//! The crate's one error type. Every user-facing failure names the file or tensor involved and,
//! where there is one, what to do about it.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading inputs, planning or writing outputs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O failure on a named file.
    #[error("{path}: {source}{}", hint_for_io(source))]
    Io {
        /// The file (or directory) being read or written.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its contents are not what the format requires.
    #[error("{path}: {message}")]
    Format {
        /// The offending file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// One tensor is malformed or does not fit the model.
    #[error("{path}: tensor `{tensor}`: {message}")]
    Tensor {
        /// The file holding the tensor.
        path: String,
        /// The tensor's name.
        tensor: String,
        /// What is wrong with it.
        message: String,
    },
    /// A required input file is missing.
    #[error("{path}: not found{}", hint_prefix(hint))]
    Missing {
        /// The file that should exist.
        path: String,
        /// What the user can do about it.
        hint: String,
    },
    /// The request itself cannot be carried out (bad option, unsupported model, refused overwrite).
    #[error("{message}")]
    Usage {
        /// What is wrong and what to do instead.
        message: String,
    },
}

fn hint_prefix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(" ({hint})")
    }
}

fn hint_for_io(e: &std::io::Error) -> &'static str {
    // ENOSPC has no stable ErrorKind on our MSRV; match the raw code on unix.
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        " (the disk is full: free space or choose another --out; nothing was left behind)"
    } else {
        ""
    }
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    /// A malformed file.
    pub fn format(path: impl fmt::Display, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// A malformed or unfitting tensor.
    pub fn tensor(
        path: impl fmt::Display,
        tensor: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Tensor {
            path: path.to_string(),
            tensor: tensor.into(),
            message: message.into(),
        }
    }

    /// A missing file, with what to do about it.
    pub fn missing(path: impl fmt::Display, hint: impl Into<String>) -> Self {
        Error::Missing {
            path: path.to_string(),
            hint: hint.into(),
        }
    }

    /// A request that cannot be carried out.
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
        }
    }
}
