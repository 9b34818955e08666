"""Writing a file so that nothing a user had is lost: a unique temporary name, then a rename."""
import os
import tempfile
from pathlib import Path


def atomic_write(path, write):
    """Call `write(f)` on a binary file under a unique temporary name in `path`'s directory, flush it to disk and
    rename it to `path`, readable as any file the user creates (mode 0o666 less the umask, not mkstemp's 0o600).
    On any error the temporary file is removed, `path` is left as it was, and the error
    propagates (an OSError for a full disk or an unwritable directory)."""
    path = Path(path)
    umask = os.umask(0)
    os.umask(umask)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def writable_path(name, path):
    """`path` (a str or os.PathLike) as a Path a file can be written at: its folder exists and it is no folder; a
    TypeError or ValueError that starts with `name` (the function asking) otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name}: path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a directory; give the path of the file to write")
    if not path.parent.is_dir():
        raise ValueError(f"{name}: the directory {str(path.parent)!r} of {str(path)!r} does not exist")
    return path
