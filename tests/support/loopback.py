"""Simulated SSH hosts on loopback: real ``sshd`` daemons, one per 127.0.1.N (test tier 1).

Why real daemons: the connection layer's job is what OpenSSH, sudo and the kernel actually
do (host-key negotiation, auth failures, sudo reading its password from stdin, atomic
renames, ``direct-tcpip`` channels), so a fake server would only test our assumptions.
Facts this module is built on: tests/support/README.md ("Tier 1").

What it owns:

* ``ensure_test_user()`` -- the unprivileged login user ``redmedic-login`` (shell ``/bin/sh``, so
  no slow ``.bashrc``; home ``/var/lib/redmedic-test/login-home``), a random password, and the
  sudoers drop-in ``/etc/sudoers.d/redmedic-test-login`` letting it run anything *with* that
  password. That is a root login, so it only works while someone uses it: each process
  takes a *lease* (a file named by its PID and start time, under a file lock); the first
  lease unlocks the account with a fresh random password, the last one released locks and
  expires it and removes the drop-in. Leases are released by ``release_test_user()``, at
  exit and on SIGTERM/SIGHUP; a lease whose process died (SIGKILL) counts as released the
  next time anyone takes or releases one. The password is never in the repository, never
  printed: concurrent processes share it through a root-only file removed with the last
  lease.
* ``ensure_other_user()`` -- a second local account ``redmedic-t2`` (no login), to become.
* ``nopasswd_user()`` -- a third one, ``redmedic-t3``, that the login user may become without
  a password (its own sudoers drop-in, removed when the context ends).
* ``shared_sudo_cache()`` -- sudo keeps one credential cache for all of the login user's
  processes while the context lasts (a drop-in of its own).
* ``SshSession`` -- per test session: a client ed25519 key pair, an ``authorized_keys`` file
  for it (in a per-session directory sshd can read as the user), and ``start_sshd()`` to
  start any number of daemons, each with its own host key, address and log file, stopped by
  PID when the session closes (also when a test failed).

Nothing here touches root's own ``~/.ssh`` or the system sshd: every daemon runs from its
own config file (``sshd -D -f``), and the system host keys are never read.

Addresses: each daemon gets the first free 127.0.1.N (N from a per-process offset, so two
pytest runs rarely even try the same one); a taken address makes sshd exit with "Address
already in use" and the next one is tried. Every wait is bounded.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

#: Not the older fixtures' `redmedic-t` (fixed password): a run of those beside this one
#: would reset this account's password, and locking it would break theirs.
TEST_USER = "redmedic-login"
STATE_DIR = Path("/var/lib/redmedic-test")
HOME_DIR = STATE_DIR / "login-home"
SUDOERS_FILE = Path("/etc/sudoers.d/redmedic-test-login")
#: One file per process using TEST_USER (see ensure_test_user).
LEASE_DIR = STATE_DIR / "leases"
#: TEST_USER's current random password, root-only, shared by the processes holding a lease.
PASSWORD_FILE = STATE_DIR / ".login-password"
SSHD = "/usr/sbin/sshd"
DEFAULT_PORT = 2222
#: Bounds for a busy 2-core machine (several test runs at once); a daemon that starts
#: answers in milliseconds, these only stop a hung one.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0
_ADDRESS_SLOTS = 16 * 253
_ADDRESS_ATTEMPTS = 1000  # a bind test each: cheap, and other runs may hold many addresses

_SUDOERS_TEXT = f"""\
# Written by redmedic's test fixtures (tests/support/loopback.py): the tier-1 login user
# may become root with its password, like a typical admin account.
Defaults:{TEST_USER} !mail_badpass
{TEST_USER} ALL=(ALL:ALL) ALL
"""


class LoopbackError(RuntimeError):
    """A simulated host could not be set up; the message carries the reason (and log tail)."""


def missing_prerequisites() -> list[str]:
    """Why tier-1 hosts cannot run here (empty when they can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("must run as root (creates a user, starts sshd)")
    for tool in (SSHD, "ssh-keygen", "sudo", "useradd", "chpasswd", "visudo", "redis-server"):
        if shutil.which(tool) is None:
            missing.append(f"{tool} not found (run tests/support/install-test-deps.sh)")
    return missing


# -- the login user ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginUser:
    """The unprivileged login user every simulated host shares."""

    name: str
    password: str = field(repr=False)
    home: Path
    uid: int
    gid: int


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _run(argv: list[str], *, stdin: bytes | None = None, timeout: float = 30.0) -> str:
    result = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise LoopbackError(
            f"{argv[0]} failed ({result.returncode}): {result.stderr.decode(errors='replace')}"
        )
    return result.stdout.decode(errors="replace")


def _process_lease_name(pid: int) -> str | None:
    """`PID-STARTTIME` of a running process (None when it is gone): a reused PID differs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return f"{pid}-{stat.rsplit(')', 1)[1].split()[19]}"


def live_leases() -> list[str]:
    """The leases on TEST_USER whose processes still run; stale ones are removed."""
    live = []
    for lease in sorted(LEASE_DIR.glob("*-*")):
        if _process_lease_name(int(lease.name.split("-", 1)[0])) == lease.name:
            live.append(lease.name)
        else:
            lease.unlink(missing_ok=True)
    return live


#: This process's lease and the password it was given (kept so that a re-lease by the same
#: process, e.g. after a test released it, gives back the password its fixtures hold).
_held: dict[str, str] = {}


def _lock_account() -> None:
    """No login works: password locked, account expired, sudoers drop-in gone."""
    SUDOERS_FILE.unlink(missing_ok=True)
    PASSWORD_FILE.unlink(missing_ok=True)
    with contextlib.suppress(KeyError):
        pwd.getpwnam(TEST_USER)
        _run(["usermod", "--lock", "--expiredate", "1", TEST_USER])


def _unlock_account(password: str) -> None:
    """Give TEST_USER `password` (on chpasswd's stdin, never argv) and its sudoers rule."""
    _run(["chpasswd"], stdin=f"{TEST_USER}:{password}\n".encode())
    _run(["usermod", "--expiredate", "", TEST_USER])
    _install_sudoers(SUDOERS_FILE, _SUDOERS_TEXT)


def _install_sudoers(path: Path, text: str) -> None:
    """Make the sudoers drop-in `path` hold `text`, checked by visudo before it counts."""
    if path.exists() and path.read_text() == text:
        return
    draft = path.with_name(f".{path.name}.draft")  # sudo skips names with a dot
    draft.write_text(text)
    os.chmod(draft, 0o440)
    try:
        _run(["visudo", "-cf", str(draft)])
        os.replace(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def _shared_password() -> str:
    """The password of the live leases, or a new one (this process's old one) if none."""
    if live_leases() and PASSWORD_FILE.exists():
        return PASSWORD_FILE.read_text()
    password = _held.get("password") or "rdm-" + secrets.token_urlsafe(18)
    fd = os.open(PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password)
    return password


def _release_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds finally blocks, then atexit releases


def _release_at_exit() -> None:
    """Release at exit, and turn SIGTERM/SIGHUP into an exit (their default skips atexit)."""
    atexit.register(release_test_user)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, _release_on_signal)


def ensure_test_user() -> LoginUser:
    """Create (or repair) TEST_USER and take this process's lease on it; idempotent.

    While any lease is held the account has the leases' shared random password and its
    sudoers rule; `release_test_user()` (also run at exit) locks it when the last goes.
    """
    STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(STATE_DIR, 0o755)
    with _locked(STATE_DIR / ".setup.lock"):
        try:
            entry = pwd.getpwnam(TEST_USER)
        except KeyError:
            _run(
                ["useradd", "--system", "--create-home", "--home-dir", str(HOME_DIR),
                 "--shell", "/bin/sh", "--user-group", TEST_USER]
            )  # fmt: skip
            entry = pwd.getpwnam(TEST_USER)
        if entry.pw_shell != "/bin/sh" or entry.pw_dir != str(HOME_DIR):
            _run(["usermod", "--shell", "/bin/sh", "--home", str(HOME_DIR), TEST_USER])
            entry = pwd.getpwnam(TEST_USER)
        HOME_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chown(HOME_DIR, entry.pw_uid, entry.pw_gid)
        lease = _process_lease_name(os.getpid())
        assert lease is not None
        password = _shared_password()
        _unlock_account(password)
        LEASE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        (LEASE_DIR / lease).touch()
        if not _held:
            _release_at_exit()
        _held.update(lease=lease, password=password)
    return LoginUser(TEST_USER, password, HOME_DIR, entry.pw_uid, entry.pw_gid)


def release_test_user() -> None:
    """Give up this process's lease; the last lease locks TEST_USER. Safe to call twice."""
    lease = _held.pop("lease", None)
    if lease is None:
        return
    with _locked(STATE_DIR / ".setup.lock"):
        (LEASE_DIR / lease).unlink(missing_ok=True)
        if not live_leases():
            _lock_account()


OTHER_USER = "redmedic-t2"
OTHER_HOME = STATE_DIR / "other-home"
NOPASSWD_USER = "redmedic-t3"
NOPASSWD_HOME = STATE_DIR / "nopasswd-home"
NOPASSWD_SUDOERS = Path("/etc/sudoers.d/redmedic-test-nopasswd")
_NOPASSWD_TEXT = f"""\
# Written by redmedic's test fixtures (tests/support/loopback.py, nopasswd_user): the
# tier-1 login user may become {NOPASSWD_USER} without a password, while a test needs it.
{TEST_USER} ALL=({NOPASSWD_USER}) NOPASSWD: ALL
"""


def ensure_other_user() -> LoginUser:
    """Create (or repair) OTHER_USER: a second local account that cannot log in, the
    `ansible_become_user` of become tests (TEST_USER's sudoers rule lets it become anyone).

    Its home is private (0700) so a file there can only be read as that user or root.
    """
    return _service_account(OTHER_USER, OTHER_HOME)


@contextlib.contextmanager
def nopasswd_user() -> Iterator[LoginUser]:
    """NOPASSWD_USER, a third account that cannot log in, which TEST_USER may become
    without a password (sudo NOPASSWD) while the context lasts.

    Its rule is a drop-in of its own, removed on exit: other runs' fixtures rewrite
    SUDOERS_FILE as their version has it, and become tests elsewhere expect a password.
    """
    user = _service_account(NOPASSWD_USER, NOPASSWD_HOME)
    _install_sudoers(NOPASSWD_SUDOERS, _NOPASSWD_TEXT)
    try:
        yield user
    finally:
        NOPASSWD_SUDOERS.unlink(missing_ok=True)


SHARED_CACHE_SUDOERS = Path("/etc/sudoers.d/redmedic-test-shared-cache")
_SHARED_CACHE_TEXT = f"""\
# Written by redmedic's test fixtures (tests/support/loopback.py, shared_sudo_cache): one
# sudo credential cache for all of the login user's processes, while a test needs it.
Defaults:{TEST_USER} timestamp_type=global
"""


@contextlib.contextmanager
def shared_sudo_cache() -> Iterator[None]:
    """While the context lasts, sudo keeps ONE credential cache for all of TEST_USER's
    processes (`timestamp_type=global`; sudo's default keys it to a terminal, or without
    one to the parent process): what one process left, any other could use.

    The user's caches are removed on entry and exit (`sudo -K`), and the drop-in on exit.
    """
    _install_sudoers(SHARED_CACHE_SUDOERS, _SHARED_CACHE_TEXT)
    try:
        as_test_user("sudo -K")
        yield
    finally:
        SHARED_CACHE_SUDOERS.unlink(missing_ok=True)
        as_test_user("sudo -K")


def as_test_user(command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` on this machine as TEST_USER, outside any SSH session."""
    return subprocess.run(
        ["su", "-s", "/bin/sh", TEST_USER, "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _service_account(name: str, home: Path) -> LoginUser:
    """Create (or repair) the no-login account `name` with the private home `home`."""
    with _locked(STATE_DIR / ".setup.lock"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            _run(
                ["useradd", "--system", "--home-dir", str(home),
                 "--shell", "/usr/sbin/nologin", "--user-group", name]
            )  # fmt: skip
            entry = pwd.getpwnam(name)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        os.chmod(home, 0o700)
    return LoginUser(name, "", home, entry.pw_uid, entry.pw_gid)


# -- keys ----------------------------------------------------------------------------------


def generate_key(path: Path, kind: str = "ed25519") -> str:
    """Write a new unencrypted key pair at `path` (+ .pub); return the public "type b64" part."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "redmedic-test", "-f", str(path)])
    public = path.with_name(path.name + ".pub").read_text().split()
    return f"{public[0]} {public[1]}"


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    """A known_hosts line as `ssh-keyscan` would print it (no trailing newline)."""
    label = address if port == 22 else f"[{address}]:{port}"
    return f"{label} {public_key}"


# -- sshd ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshdHost:
    """One running simulated host: where it listens and the public host key it presents."""

    name: str
    address: str
    port: int
    pid: int
    host_key: str  # "ssh-ed25519 AAAA..."
    workdir: Path

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    def log_text(self) -> str:
        """sshd's log so far, for assertion messages."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def known_hosts_line(self) -> str:
        return known_hosts_line(self.address, self.port, self.host_key)


def _sshd_config(
    workdir: Path, address: str, port: int, authorized_keys: Path, extra: str = ""
) -> str:
    return f"""\
# Simulated host for redmedic's tests (tests/support/loopback.py).
{extra}
ListenAddress {address}:{port}
HostKey {workdir / "host_key"}
PidFile none
UsePAM no
AuthorizedKeysFile {authorized_keys}
StrictModes yes
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {TEST_USER}
AllowTcpForwarding yes
X11Forwarding no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 200:30:400
MaxSessions 200
MaxAuthTries 10
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""


def _address_bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _banner(address: str, port: int) -> bool:
    try:
        # sshd re-executes itself before its banner: under load that takes a while, and
        # giving up early would only start the same wait over on a new connection.
        with socket.create_connection((address, port), timeout=5.0) as sock:
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _stop_pid(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, bounded wait, then SIGKILL: never leave a daemon behind."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


class SshSession:
    """Everything one test session's simulated hosts share; a context manager.

    `client_key` is the private key authorised for TEST_USER on every daemon started here.
    """

    def __init__(self, root: Path, user: LoginUser) -> None:
        self.root = root
        self.user = user
        self.client_key = root / "client_ed25519"
        self._processes: list[subprocess.Popen[bytes]] = []
        self._shared: Path | None = None
        self._next_slot = os.getpid() % _ADDRESS_SLOTS
        self._count = 0

    def __enter__(self) -> SshSession:
        self.root.mkdir(parents=True, exist_ok=True)
        public = generate_key(self.client_key)
        # sshd reads authorized_keys as the login user, so it lives under /var/lib (not in
        # pytest's root-only temp dir); one directory per session keeps parallel runs apart.
        sessions = STATE_DIR / "sessions"
        sessions.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._shared = Path(tempfile.mkdtemp(prefix="s-", dir=sessions))
        os.chmod(self._shared, 0o755)
        keys = self.authorized_keys
        keys.write_text(public + "\n")
        os.chmod(keys, 0o644)
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def authorized_keys(self) -> Path:
        assert self._shared is not None, "use SshSession as a context manager"
        return self._shared / "authorized_keys"

    def close(self) -> None:
        """Stop every daemon started here (by PID) and remove the shared directory."""
        for process in self._processes:
            _stop_pid(process)
        self._processes.clear()
        if self._shared is not None:
            shutil.rmtree(self._shared, ignore_errors=True)
            self._shared = None

    def start_sshd(
        self,
        *,
        port: int = DEFAULT_PORT,
        name: str | None = None,
        extra_config: str = "",
        max_user_processes: int | None = None,
    ) -> SshdHost:
        """Start one more simulated host with a fresh host key on a free 127.0.1.N:port.

        `extra_config` lines come first, so they win over the defaults below them (sshd
        keeps the first value of an option), e.g. `AllowTcpForwarding no`.
        `max_user_processes` is the daemon's RLIMIT_NPROC (`ulimit -u`), which its
        sessions inherit: root's forks ignore it, the login user's count all of that
        user's processes (1 makes every command's fork fail: sshd refuses the exec).
        """
        limit = []
        if max_user_processes is not None:
            limit = ["prlimit", f"--nproc={max_user_processes}:{max_user_processes}", "--"]
        self._count += 1
        name = name or f"sim{self._count}"
        workdir = self.root / name
        workdir.mkdir(parents=True, exist_ok=True)
        host_key = generate_key(workdir / "host_key")
        for _ in range(_ADDRESS_ATTEMPTS):
            address = self._next_address()
            if not _address_bindable(address, port):
                continue
            config = workdir / "sshd_config"
            config.write_text(
                _sshd_config(workdir, address, port, self.authorized_keys, extra_config)
            )
            log = workdir / "sshd.log"
            log.unlink(missing_ok=True)
            process = subprocess.Popen(
                [*limit, SSHD, "-D", "-f", str(config), "-E", str(log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._processes.append(process)
            host = SshdHost(name, address, port, process.pid, host_key, workdir)
            if self._wait_ready(process, host):
                return host
        raise LoopbackError(f"no free loopback address for sshd after {_ADDRESS_ATTEMPTS} tries")

    def _next_address(self) -> str:
        """127.0.1.2 … 127.0.16.254: room for benchmarks of hundreds of hosts beside tests."""
        slot = self._next_slot
        self._next_slot = (slot + 1) % _ADDRESS_SLOTS
        return f"127.0.{1 + slot // 253}.{2 + slot % 253}"

    def _wait_ready(self, process: subprocess.Popen[bytes], host: SshdHost) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = host.log_text()
                if "Address already in use" in log:
                    return False
                raise LoopbackError(f"sshd exited with {process.returncode}:\n{log[-2000:]}")
            if _banner(host.address, host.port):
                return True
            time.sleep(0.02)
        _stop_pid(process)
        raise LoopbackError(f"sshd did not answer within {START_TIMEOUT_S}s:\n{host.log_text()}")


def free_loopback_port(address: str = "127.0.0.1") -> int:
    """A port nobody listens on at `address` right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port
