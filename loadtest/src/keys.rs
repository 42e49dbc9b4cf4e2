//! `insight-loadtest keys`: a fresh key pair, its private half for this tool and its
//! JWKS for `insight serve`, so that both sides of a run agree.

use std::fs;
use std::path::Path;

use anyhow::Context as _;
use insight::auth::DevKeyPair;

use crate::cli::KeysArgs;

/// Writes `private.pem` (readable by the owner only) and `jwks.json` into the folder.
pub fn write(args: &KeysArgs) -> anyhow::Result<()> {
    let key = DevKeyPair::generate(&args.kid).context("generating an RSA key pair")?;

    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let private = args.out.join("private.pem");
    write_private(&private, &key.private_pem())?;

    let jwks = args.out.join("jwks.json");
    fs::write(&jwks, key.jwks_json()).with_context(|| format!("writing {}", jwks.display()))?;

    println!(
        "key '{}': {} (for insight-loadtest --private-key) and {} (for HELSENORGE_JWKS)",
        args.kid,
        private.display(),
        jwks.display()
    );
    Ok(())
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;

    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);

    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
