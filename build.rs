//! Regenerates `include/dgram.h` from the Rust sources and gives the shared
//! library its SONAME.
//!
//! The header is committed: C users read it without building anything, and CI
//! fails when the committed copy differs from what this script generates.

use std::{env, fs, path::PathBuf};

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));

    // The ABI major version is 0: bump the SONAME when the ABI breaks.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdgram.so.0");

    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");

    let mut config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is readable and valid");
    // The version as macros, from Cargo.toml: the one source of the number.
    let version_part = |part: &str| env::var(format!("CARGO_PKG_VERSION_{part}")).expect("cargo sets the version");
    config.after_includes = Some(format!(
        "\n/** The version of this header: compare with dgram_version() at run time. */\n\
         #define DGRAM_VERSION_MAJOR {}\n#define DGRAM_VERSION_MINOR {}\n#define DGRAM_VERSION_PATCH {}\n",
        version_part("MAJOR"),
        version_part("MINOR"),
        version_part("PATCH"),
    ));
    let header = match cbindgen::generate_with_config(&crate_dir, config) {
        Ok(bindings) => bindings,
        Err(err) => panic!("cbindgen could not generate include/dgram.h: {err}"),
    };
    let mut raw = Vec::new();
    header.write(&mut raw);
    let generated = parenthesize_negative_macros(&String::from_utf8(raw).expect("cbindgen writes UTF-8")).into_bytes();

    // Write only on change so that an unchanged header keeps its timestamp and
    // C builds depending on it are not redone.
    let path = crate_dir.join("include").join("dgram.h");
    if fs::read(&path).ok().as_deref() != Some(&generated[..]) {
        fs::create_dir_all(path.parent().expect("include/ has a parent")).expect("include/ can be created");
        fs::write(&path, &generated).expect("include/dgram.h is writable");
    }
}

/// `#define DGRAM_EINVAL -22` would break in `x-DGRAM_EINVAL`; cbindgen drops
/// parentheses written in Rust, so they are added here.
fn parenthesize_negative_macros(header: &str) -> String {
    let mut out = String::with_capacity(header.len() + 256);
    for line in header.split_inclusive('\n') {
        let mut words = line.trim_end().splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("#define"), Some(name), Some(value))
                if value.starts_with('-') && value[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                out.push_str(&format!("#define {name} ({value})\n"));
            }
            _ => out.push_str(line),
        }
    }
    out
}
