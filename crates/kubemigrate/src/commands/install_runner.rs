//! `kubemigrate install-runner`: copy this executable to a path, for images that
//! have no `cp`.

use std::fs::Permissions;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::exit::{CommandResult, Exit, Failure};
use crate::output::Reporter;

/// Copy this kubemigrate executable to DEST, mode 0755, replacing DEST atomically.
///
/// For the init container of a migration Job. The runner image holds nothing but
/// kubemigrate (no shell, no `cp`), so kubemigrate copies itself into a volume that
/// the container running the migrations mounts too; that container runs the copy in
/// its own image (the one with the migration files, or the application's). The
/// executable is static, so it runs in any Linux image.
///
/// The copy is written to a temporary file in DEST's directory and renamed to DEST,
/// so DEST is never half-written. DEST's directory is created if missing.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: the init container of a Job, with an emptyDir mounted at /kubemigrate
  kubemigrate install-runner /kubemigrate/kubemigrate
and then, in the container that runs the migrations:
  /kubemigrate/kubemigrate sql migrate --dir /migrations

See docs/runner.md."
)]
pub struct Args {
    /// Path of the copy: a file path, not a directory (an existing file is replaced).
    #[arg(value_name = "DEST")]
    dest: PathBuf,
}

/// Runs the command.
pub fn run(args: Args, reporter: Reporter) -> CommandResult {
    let source = own_executable()?;
    let bytes = install(&source, &args.dest)?;
    reporter.line(&format!(
        "installed {} as {} ({bytes} bytes, mode 0755)",
        source.display(),
        args.dest.display()
    ));
    reporter.finish_bare("install-runner", Exit::Ok, None);
    Ok(Exit::Ok)
}

/// The path of the running executable: `/proc/self/exe`, else (no `/proc`, as in a
/// bare chroot) the path it was started by.
fn own_executable() -> Result<PathBuf, Failure> {
    let proc_error = match std::env::current_exe() {
        Ok(path) => return Ok(path),
        Err(e) => e,
    };
    match std::env::args_os().next().map(PathBuf::from) {
        Some(path) if path.parent().is_some_and(|d| !d.as_os_str().is_empty()) => Ok(path),
        _ => Err(Failure::new(
            Exit::Internal,
            anyhow!(
                "cannot find this executable: /proc/self/exe: {proc_error}; start kubemigrate by its path (e.g. /kubemigrate install-runner …)"
            ),
        )),
    }
}

/// Copies `source` to `dest` through a temporary file in `dest`'s directory.
/// Returns the number of bytes copied.
fn install(source: &Path, dest: &Path) -> Result<u64, Failure> {
    let text = dest.display();
    let names_a_directory = dest.as_os_str().as_encoded_bytes().ends_with(b"/")
        || dest.file_name().is_none()
        || dest.is_dir();
    if dest.as_os_str().is_empty() {
        return Err(Failure::new(Exit::Usage, anyhow!("DEST is empty")));
    }
    if names_a_directory {
        return Err(Failure::new(
            Exit::Usage,
            anyhow!(
                "{text} names a directory; give the path of the file to write, e.g. {}",
                Path::new(dest).join("kubemigrate").display()
            ),
        ));
    }
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        let exit = if dir.exists() && !dir.is_dir() {
            Exit::Usage
        } else {
            Exit::Internal
        };
        return Err(io_failure(
            exit,
            e,
            format!("cannot create directory {}", dir.display()),
        ));
    }
    let mut input = std::fs::File::open(source).map_err(|e| {
        io_failure(
            Exit::Internal,
            e,
            format!("cannot read {}", source.display()),
        )
    })?;
    let write_error = |e: io::Error| io_failure(Exit::Internal, e, format!("cannot write {text}"));
    let mut temp = tempfile::Builder::new()
        .prefix(".kubemigrate-install-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    let bytes = io::copy(&mut input, temp.as_file_mut()).map_err(write_error)?;
    temp.as_file()
        .set_permissions(Permissions::from_mode(0o755))
        .map_err(write_error)?;
    temp.as_file().sync_all().map_err(write_error)?;
    // On failure the temporary file is removed when `e.file` drops.
    temp.persist(dest).map_err(|e| write_error(e.error))?;
    Ok(bytes)
}

fn io_failure(exit: Exit, error: io::Error, context: String) -> Failure {
    Failure::new(exit, anyhow::Error::new(error).context(context))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn copies_with_mode_0755_creating_the_directory_and_replacing_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("source");
        std::fs::write(&source, b"#!binary").unwrap();
        let dest = tmp.path().join("a/b/kubemigrate");
        assert_eq!(install(&source, &dest).unwrap(), 8);
        assert_eq!(std::fs::read(&dest).unwrap(), b"#!binary");
        assert_eq!(std::fs::metadata(&dest).unwrap().mode() & 0o777, 0o755);

        std::fs::write(&source, b"newer").unwrap();
        install(&source, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"newer");
        // Nothing left behind but the copy.
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["kubemigrate"]);
    }

    #[test]
    fn a_directory_as_dest_is_a_usage_error() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("source");
        std::fs::write(&source, b"x").unwrap();
        for dest in [tmp.path().to_path_buf(), tmp.path().join("new/")] {
            let f = install(&source, &dest).unwrap_err();
            assert_eq!(f.exit, Exit::Usage, "{dest:?}");
            assert!(
                f.error.to_string().contains("names a directory"),
                "{:#}",
                f.error
            );
        }
        // A parent that is a file.
        let f = install(&source, &source.join("kubemigrate")).unwrap_err();
        assert_eq!(f.exit, Exit::Usage, "{:#}", f.error);
        assert_eq!(
            install(&source, Path::new("")).unwrap_err().exit,
            Exit::Usage
        );
    }

    #[test]
    fn an_unreadable_source_is_an_internal_error() {
        let tmp = tempfile::tempdir().unwrap();
        let f = install(&tmp.path().join("missing"), &tmp.path().join("dest")).unwrap_err();
        assert_eq!(f.exit, Exit::Internal);
        assert!(!tmp.path().join("dest").exists());
    }
}
