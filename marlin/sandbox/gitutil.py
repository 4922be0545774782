"""Running git safely: argument lists only, restricted transports, no prompts, bounded time.

Everything that reaches git from outside (a URL, a ref) is untrusted. Every call here goes
through `run_git`, which never uses a shell, disables hooks and fsmonitor, allows only the
https/ssh/git transports (plus local paths when the caller says so), kills git and its helpers
when a timeout passes, and turns failures into `GitError` carrying the end of git's stderr.

Mirror clones and fetches talk to servers the catalog does not control, so they also get a
low-speed limit, no redirects, the addresses the catalog checked (pinned for https), and a
message that names the problem but neither the server's paths nor what answered on which port.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import string
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from marlin.diffs.parse import unquote_path

DEFAULT_TIMEOUT = 120.0
NETWORK_TIMEOUT = 3600.0
# (bytes a second, seconds): a transfer slower than this for that long is stopped.
LOW_SPEED = (1000, 60)
_STDERR_TAIL = 2000
# ssh's own limits, when the operator has not set GIT_SSH_COMMAND: give up connecting after 30 s
# and on a server that stops answering keep-alives for a minute.
_SSH_COMMAND = (
    "ssh -o BatchMode=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4"
)

_PROTOCOL_CONFIG = (
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.ssh.allow=always",
    "protocol.git.allow=always",
)
# Hooks and fsmonitor are the ways a repository's own files could make git run a program.
_SAFETY_CONFIG = ("core.hooksPath=/dev/null", "core.fsmonitor=false")

# Variables that would point git at another repository, index or configuration than the one
# the caller named; a worker started from a git hook or a shell with them set must not leak them.
_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
)

_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_REF_FORBIDDEN_CHARS = set(" ~^:?*[\\")
_NEW_LINK_RE = re.compile(r"^(?:new file mode|new mode|index [0-9a-f]+\.\.[0-9a-f]+) 120000$")
_OLD_LINK_RE = re.compile(r"^(?:deleted file mode|old mode) 120000$")


@dataclass
class PatchFile:
    """What one file's part of a patch touches, read from its header lines (paths as given,
    with the a/ b/ prefix removed; absolute ones kept absolute so callers can refuse them)."""

    paths: list[str]
    new_path: str | None
    is_link: bool
    link_target: str | None
    binary_without_content: bool


class GitError(Exception):
    """A git command failed, timed out, or was given input it must not see. `stderr` keeps the
    end of git's own output for the operator's log; the message is what users may read."""

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    allow_local: bool = False,
    isolated: bool = False,
    stdin: bytes | None = None,
    config: Sequence[str] = (),
    stop_on_signal: bool = False,
) -> bytes:
    """Run `git <config> <args>` and return its stdout; raise GitError on failure or timeout.

    `isolated` ignores the system and user configuration: used for workspaces, whose contents an
    agent controls, so that a filter or diff driver configured for the host user cannot be
    triggered by a `.gitattributes` file the agent wrote. `config` adds `-c` items.
    `stop_on_signal` makes SIGTERM and SIGINT kill git's process group at once (see
    `_stopped_by_signals`).
    """
    argv = ["git"]
    items = list(_PROTOCOL_CONFIG) + list(_SAFETY_CONFIG) + list(config)
    if allow_local:
        items.append("protocol.file.allow=always")
    for item in items:
        argv += ["-c", item]
    argv += list(args)

    full_env = {k: v for k, v in os.environ.items() if not _is_location_var(k)}
    full_env["GIT_TERMINAL_PROMPT"] = "0"
    full_env.setdefault("GIT_SSH_COMMAND", _SSH_COMMAND)
    if isolated:
        full_env["GIT_CONFIG_NOSYSTEM"] = "1"
        full_env["GIT_CONFIG_GLOBAL"] = os.devnull
    full_env.update(env or {})

    name = _subcommand(args)
    # A new session lets a timeout kill git's helpers (git-remote-https, ssh) along with git.
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stopped: list[int] = []
    try:
        with _stopped_by_signals(process, stopped, enabled=stop_on_signal):
            stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        raise GitError(f"git {name} timed out after {timeout:g} s") from None
    except BaseException:
        _kill_group(process)
        process.communicate()
        raise
    if stopped:
        received = signal.Signals(stopped[0]).name
        raise GitError(f"git {name} was stopped: this process received {received}")
    if process.returncode != 0:
        tail = _tail(stderr)
        raise GitError(
            f"git {name} failed (exit {process.returncode}): {tail or 'no output'}", stderr=tail
        )
    return stdout


@contextmanager
def _stopped_by_signals(
    process: subprocess.Popen[bytes], stopped: list[int], *, enabled: bool
) -> Iterator[None]:
    """While git runs, SIGTERM and SIGINT first kill its whole process group, then do what they
    did before. A worker's graceful stop waits for the job at hand, and git-remote-https, in a
    session of its own, would keep that job (and the worker) alive for as long as a server
    stalls; an orphaned helper would outlive the worker. Signal handlers belong to the main
    thread, so elsewhere this does nothing (the caller's own timeout still holds)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.append(signum)
        _kill_group(process)
        before = previous[signal.Signals(signum)]
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    # A signal set from C (None) or ignored is left alone.
    installed = [sig for sig, before in previous.items() if before not in (None, signal.SIG_IGN)]
    for sig in installed:
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig in installed:
            signal.signal(sig, previous[sig])


def validate_ref(ref: str) -> str:
    """Return `ref` if it is a full commit sha or a name `git check-ref-format
    --allow-onelevel` accepts; raise GitError saying what is wrong otherwise."""
    if not isinstance(ref, str) or not ref:
        raise GitError("ref is empty; give a branch, a tag or a full commit sha")
    if _SHA_RE.match(ref.lower()):
        return ref.lower()
    problem = _ref_problem(ref)
    if problem:
        raise GitError(f"invalid ref {ref!r}: {problem}")
    return ref


def _ref_problem(ref: str) -> str | None:
    if ref.startswith("-"):
        return "it must not start with '-'"
    if len(ref) > 255:
        return "it is longer than 255 characters"
    for char in ref:
        if ord(char) < 0x20 or ord(char) == 0x7F or char.isspace():
            return "it contains whitespace or a control character"
        if char in _REF_FORBIDDEN_CHARS:
            return f"it contains {char!r}"
    if ".." in ref:
        return "it contains '..'"
    if "@{" in ref:
        return "it contains '@{'"
    if ref == "@":
        return "'@' alone is not a ref name"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "it has an empty path component"
    if ref.endswith("."):
        return "it ends with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return f"component {component!r} starts with '.'"
        if component.endswith(".lock"):
            return f"component {component!r} ends with '.lock'"
    return None


def resolve_commit(mirror: Path, ref: str) -> str:
    """The full sha of the commit that branch, tag or sha `ref` names in `mirror`."""
    ref = validate_ref(ref)
    try:
        out = run_git(
            [
                "--git-dir",
                str(mirror),
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                f"{ref}^{{commit}}",
            ],
            isolated=True,
        )
    except GitError:
        # Not the mirror's path: this message reaches the author's form.
        raise GitError(
            f"{ref!r} is not a branch, tag or commit in the mirror; fetch the mirror if it is new"
        ) from None
    return out.decode().strip()


def clone_mirror(
    url: str,
    dest: Path,
    *,
    allow_local: bool,
    timeout: float = NETWORK_TIMEOUT,
    low_speed: tuple[int, int] = LOW_SPEED,
    addresses: Sequence[str] = (),
) -> None:
    """Make `dest` a bare mirror of `url`; on failure nothing is left at `dest`. `addresses`
    are those the catalog checked for the URL's host: https connects to them and no others."""
    _check_url(url)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise GitError("the mirror's folder already exists and is not empty; fetch it instead")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Clone beside the destination and rename, so a half-finished clone is never mistaken for
    # a mirror by a concurrent worker.
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.cloning-", dir=dest.parent))
    try:
        _network_git(
            ["clone", "--mirror", "--quiet", "--", url, str(staging / "repo")],
            url=url,
            timeout=timeout,
            low_speed=low_speed,
            addresses=addresses,
            allow_local=allow_local,
        )
        if dest.exists():
            dest.rmdir()
        (staging / "repo").rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_mirror(
    dest: Path,
    *,
    url: str | None = None,
    allow_local: bool = False,
    timeout: float = NETWORK_TIMEOUT,
    low_speed: tuple[int, int] = LOW_SPEED,
    addresses: Sequence[str] = (),
) -> None:
    """Bring mirror `dest` up to date with its origin, pruning refs deleted there. With `url`,
    the origin is set to it first: the catalog checked that URL, not the one the mirror was
    cloned from."""
    if not (Path(dest) / "HEAD").is_file():
        raise GitError("the mirror's folder is not a bare mirror; clone it again")
    git_dir = ["--git-dir", str(dest)]
    if url is not None:
        _check_url(url)
        run_git([*git_dir, "config", "remote.origin.url", url])
    _network_git(
        [*git_dir, "fetch", "--prune", "--quiet", "origin"],
        url=url or "",
        timeout=timeout,
        low_speed=low_speed,
        addresses=addresses,
        allow_local=allow_local,
    )


def _check_url(url: str) -> None:
    if not isinstance(url, str) or not url.strip():
        raise GitError("repository URL is empty")
    if url.startswith("-"):
        raise GitError(f"repository URL {url!r} must not start with '-'")
    if any(ord(c) < 0x20 for c in url):
        raise GitError("repository URL contains a control character")


def _network_git(
    args: list[str],
    *,
    url: str,
    timeout: float,
    low_speed: tuple[int, int],
    addresses: Sequence[str],
    allow_local: bool,
) -> None:
    limit, seconds = low_speed
    config = [
        f"http.lowSpeedLimit={limit}",
        f"http.lowSpeedTime={seconds}",
        # A redirect could lead where the catalog's address check never looked.
        "http.followRedirects=false",
    ]
    pin = _curl_resolve(url, addresses)
    if pin:
        config.append(f"http.curloptResolve={pin}")
    try:
        run_git(
            args,
            timeout=timeout,
            allow_local=allow_local,
            config=config,
            stop_on_signal=True,
        )
    except GitError as exc:
        if not exc.stderr:  # timed out, stopped, or refused before git ran: already plain
            raise
        name = _subcommand(args)
        raise GitError(
            f"git {name} failed: {_network_problem(exc.stderr, low_speed)}", stderr=exc.stderr
        ) from None


def _curl_resolve(url: str, addresses: Sequence[str]) -> str:
    """`host:port:address,...` for curl, so that git connects to the addresses the catalog
    checked and not to whatever DNS answers a moment later (https only: ssh resolves alone)."""
    if not addresses or not url.lower().startswith("https://"):
        return ""
    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    listed = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
    return f"{parts.hostname}:{parts.port or 443}:{listed}"


_TRANSPORT_REFUSED_RE = re.compile(r"transport '[a-z0-9+.-]+' not allowed")
# What a failed clone or fetch tells the person who added the repository: the kind of problem,
# never git's own text (which names local paths, and tells a refused port from a silent one).
_NETWORK_PROBLEMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("operation too slow",), "the transfer was slower than {limit} bytes/s for {seconds} s"),
    (
        ("could not resolve host", "name or service not known", "name resolution"),
        "the host name could not be resolved",
    ),
    (
        ("returned error: 301", "returned error: 302", "returned error: 307", "redirect"),
        "the server answered with a redirect; add the repository by the URL it redirects to",
    ),
    (("host key verification failed",), "the server's SSH host key is not known to the worker"),
    (
        (
            "could not read username",
            "authentication failed",
            "permission denied",
            "error: 401",
            "error: 403",
        ),
        "the server asked for credentials (a private repository needs a credential helper or "
        "an SSH key for the worker)",
    ),
    (
        ("not found", "does not exist", "does not appear to be a git repository", "error: 404"),
        "there is no git repository at this URL",
    ),
)


def _network_problem(stderr: str, low_speed: tuple[int, int]) -> str:
    text = stderr.lower()
    refused = _TRANSPORT_REFUSED_RE.search(text)
    if refused:
        return refused.group(0)
    for needles, problem in _NETWORK_PROBLEMS:
        if any(needle in text for needle in needles):
            return problem.format(limit=low_speed[0], seconds=low_speed[1])
    return (
        "no git server answered at this URL (the connection was refused or dropped, the server "
        "did not answer, or it does not speak git over https or ssh)"
    )


def parse_patch_headers(patch: str) -> list[PatchFile]:
    """The files a unified or git diff touches, one PatchFile per `diff --git` section."""
    chunks: list[list[str]] = []
    for line in patch.split("\n"):
        if line.startswith("diff --git ") or not chunks:
            chunks.append([])
        chunks[-1].append(line)
    return [_parse_section(chunk) for chunk in chunks]


def _parse_section(lines: list[str]) -> PatchFile:
    # Only lines before the first hunk or binary payload are headers; inside hunks a line like
    # "--- x" can be content.
    paths: list[str] = []
    new_path = target = None
    is_link = new_link = binary_missing = False
    for index, line in enumerate(lines):
        if line.startswith("@@") or line == "GIT binary patch":
            if new_link and line.startswith("@@"):
                target = next((x[1:] for x in lines[index:] if x.startswith("+")), None)
            elif new_link:
                # `git diff --binary` may write a link's target as a binary literal; it must be
                # checked like any other target, so it is decoded here.
                target = _binary_link_target(lines[index + 1 :])
            break
        if line.startswith("diff --git "):
            paths += _diff_git_paths(line[len("diff --git ") :])
        elif line.startswith(("--- ", "+++ ")):
            name = _header_name(line[4:])
            if name is not None:
                paths.append(name)
                new_path = name if line.startswith("+++ ") else new_path
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            name = unquote_path(line.split(" ", 2)[2])
            paths.append(name)
            new_path = name if " to " in line[:10] else new_path
        elif _NEW_LINK_RE.match(line):
            is_link = new_link = True
        elif _OLD_LINK_RE.match(line):
            is_link = True
        elif line.startswith("Binary files ") and line.endswith(" differ"):
            binary_missing = True
    return PatchFile(paths, new_path, is_link, target, binary_missing)


# What a symlink target that cannot be read from its binary payload (a delta, or garbage) is
# reported as: absolute, so it is refused like an absolute target, with the reason in the name.
UNREADABLE_LINK_TARGET = "/(a symlink target in a binary patch that cannot be decoded)"
_BINARY_LENGTH = {c: i + 1 for i, c in enumerate(string.ascii_uppercase)} | {
    c: i + 27 for i, c in enumerate(string.ascii_lowercase)
}


def _binary_link_target(lines: list[str]) -> str:
    """The new content of a `GIT binary patch` section's `literal N` block (a link's target),
    or UNREADABLE_LINK_TARGET. A `delta` needs the old content, which a new link has not got."""
    if not lines or not lines[0].startswith("literal "):
        return UNREADABLE_LINK_TARGET
    data = bytearray()
    for line in lines[1:]:
        line = line.rstrip("\r")
        if not line:
            break
        size = _BINARY_LENGTH.get(line[0])
        try:
            chunk = base64.b85decode(line[1:])
        except ValueError:
            return UNREADABLE_LINK_TARGET
        if size is None or size > len(chunk):
            return UNREADABLE_LINK_TARGET
        data += chunk[:size]
    try:
        raw = zlib.decompress(bytes(data))
    except zlib.error:
        return UNREADABLE_LINK_TARGET
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return UNREADABLE_LINK_TARGET


def _header_name(raw: str) -> str | None:
    name = unquote_path(raw.split("\t", 1)[0].rstrip("\r"))
    if name == "/dev/null":
        return None
    if name.startswith("/"):
        return name  # reported as absolute rather than silently stripped
    return name.split("/", 1)[1] if "/" in name else name


def _diff_git_paths(rest: str) -> list[str]:
    if '"' in rest:
        names = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', rest)
    else:
        # Unquoted "a/X b/X": the two names are equal unless it is a rename, and a rename has
        # its own "rename from/to" lines, so only the equal split is needed.
        half = (len(rest) - 1) // 2
        names = [rest[:half], rest[half + 1 :]] if rest[:half][2:] == rest[half + 1 :][2:] else []
    result = []
    for name in names:
        name = unquote_path(name)
        result.append(name.split("/", 1)[1] if "/" in name and not name.startswith("/") else name)
    return result


def _is_location_var(name: str) -> bool:
    return name in _LOCATION_VARS or name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))


def _subcommand(args: Sequence[str]) -> str:
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--git-dir", "--work-tree", "-C", "-c"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return "command"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(stderr: bytes) -> str:
    text = stderr.decode("utf-8", errors="replace").strip()
    return text if len(text) <= _STDERR_TAIL else "..." + text[-_STDERR_TAIL:]
