"""The SSH server's host key: generated once (ed25519), kept in the user's data folder with
mode 0600, reused on every later start, so students who checked its fingerprint once are
not asked again (and a changed key means something is wrong).

    $XDG_DATA_HOME/nnlab/ssh_host_ed25519_key     (default ~/.local/share/nnlab/...)

A key file that others can read is refused, as OpenSSH refuses it: whoever can read it can
pose as the server.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lab.errors import LabError

KEY_NAME = "ssh_host_ed25519_key"


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "nnlab" / KEY_NAME


def fingerprint(key) -> str:
    """OpenSSH's form, as `ssh` prints it on first connection: "SHA256:..."."""
    return key.get_fingerprint("sha256")


def load_or_create(path: Path | None = None):
    """The host key at `path` (default `default_path()`), made first if there is none.

    Raises LabError for a key others can read, a file that is not a key, or a folder
    that cannot be written."""
    import asyncssh

    path = Path(path) if path is not None else default_path()
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    try:
        _create(path)
    except FileExistsError:  # another server made it at the same moment: use theirs
        pass
    except OSError as exc:
        raise LabError(f"cannot write the SSH host key {path}: {exc.strerror or exc} "
                       "(pass --host-key FILE to keep it elsewhere)") from None
    try:
        return _load(path)
    except (FileNotFoundError, asyncssh.KeyImportError) as exc:  # pragma: no cover - raced away
        raise LabError(f"cannot read the SSH host key {path}: {exc}") from None


def _load(path: Path):
    import asyncssh

    try:
        st = path.stat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise LabError(f"cannot read the SSH host key {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise LabError(f"the SSH host key {path} is not a regular file")
    if st.st_mode & 0o077:
        raise LabError(f"the SSH host key {path} can be read by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                       f"anyone who reads it can pose as this server. Make it private: chmod 600 {path}")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise LabError(f"the SSH host key {path} belongs to another user (uid {st.st_uid})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LabError(f"cannot read the SSH host key {path}: {exc.strerror or exc}") from None
    try:
        return asyncssh.import_private_key(data)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise LabError(f"{path} is not a usable SSH private key ({exc}); "
                       "move it away and a new one is generated") from None


def _create(path: Path) -> None:
    """Write a new ed25519 key atomically: a private temporary file in the same folder,
    linked into place (never over a key that appeared meanwhile), mode 0600 from the start."""
    import asyncssh

    folder = path.parent
    made = not folder.exists()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if made:
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"nnlab host key {os.uname().nodename}")
    data = key.export_private_key("openssh")
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)  # FileExistsError when another server won the race
        try:
            public = path.with_name(path.name + ".pub")
            public.write_bytes(key.export_public_key("openssh"))
        except OSError:
            pass  # the public half is a convenience (ssh-keygen -lf), the fingerprint is printed anyway
    finally:
        tmp.unlink(missing_ok=True)
