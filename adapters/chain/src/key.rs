//! The signing key, read from a key file.

use std::fmt;
use std::path::Path;

use ethers::signers::{LocalWallet, Signer as _};
use zeroize::Zeroize as _;

use crate::error::ChainError;
use crate::types::Address;

/// An account's private key, from a key file holding one `0x`-prefixed hex
/// secp256k1 private key (as anvil prints them and `cast --key-file` reads
/// them; surrounding whitespace is ignored). Its `Debug` shows the address
/// only, and no error about it echoes the file's content.
#[derive(Clone)]
pub struct Key {
    wallet: LocalWallet,
}

impl Key {
    /// Reads the key file at `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Key, ChainError> {
        let path = path.as_ref();
        let mut text = std::fs::read_to_string(path).map_err(|e| {
            ChainError::Config(format!(
                "cannot read the key file {}: {}",
                path.display(),
                e.kind()
            ))
        })?;
        let key = parse(&text)
            .map_err(|reason| ChainError::Config(format!("key file {}: {reason}", path.display())));
        text.zeroize();
        key
    }

    /// Parses a `0x`-prefixed hex private key (whitespace around it ignored).
    /// The error says what is wrong without repeating any of the text.
    pub fn from_hex(text: &str) -> Result<Key, ChainError> {
        parse(text).map_err(|reason| ChainError::Config(format!("private key: {reason}")))
    }

    /// The account this key signs for.
    pub fn address(&self) -> Address {
        Address(self.wallet.address().0)
    }

    pub(crate) fn wallet(&self) -> &LocalWallet {
        &self.wallet
    }
}

fn parse(text: &str) -> Result<Key, String> {
    let text = text.trim();
    let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) else {
        return Err("expected one 0x-prefixed hex private key".into());
    };
    if hex.len() != 64 {
        return Err(format!(
            "expected 64 hex digits after 0x, found {} characters",
            hex.len()
        ));
    }
    let mut bytes = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
        match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(high), Some(low)) => bytes[i] = high << 4 | low,
            _ => {
                bytes.zeroize();
                return Err("the key contains a character that is not a hex digit".into());
            }
        }
    }
    let wallet = LocalWallet::from_bytes(&bytes).map_err(|_| {
        "not a valid secp256k1 private key (zero or above the curve order)".to_string()
    });
    bytes.zeroize();
    Ok(Key { wallet: wallet? })
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // anvil's first default account (a well-known test key).
    const ANVIL_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn parses_anvil_key() {
        let key = Key::from_hex(&format!("  {ANVIL_0}\n")).unwrap();
        assert_eq!(
            key.address().to_string(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        let debug = format!("{key:?}");
        assert!(!debug.contains(&ANVIL_0[2..10]), "{debug}");
    }

    #[test]
    fn errors_do_not_echo_the_key() {
        let secret = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff8z";
        for text in [
            secret.to_string(),
            format!("0x{secret}"),
            format!("0x{secret}00"),
        ] {
            let err = Key::from_hex(&text).unwrap_err().to_string();
            assert!(!err.contains("ac0974") && !err.contains("8z"), "{err}");
        }
        assert!(Key::from_hex(&format!("0x{}", "0".repeat(64))).is_err());
    }

    #[test]
    fn key_file_errors_name_the_path_only() {
        let dir = std::env::temp_dir().join(format!("fhirledger-chain-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.key");
        std::fs::write(&path, "0xdeadbeefnothex-secret-material").unwrap();
        let err = Key::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("bad.key"), "{err}");
        assert!(
            !err.contains("deadbeef") && !err.contains("secret"),
            "{err}"
        );
        std::fs::write(&path, ANVIL_0).unwrap();
        assert!(Key::from_file(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
