"""The inside end of the egress bridge: a TCP listener on the sandbox's own 127.0.0.1 that hands
every connection to the host's egress proxy through a bind-mounted Unix socket.

It is not imported by Marlin: the bwrap backend binds this file into the sandbox and runs

    /usr/bin/python3 -I -S relay.py PORT SOCKET -- COMMAND...

The relay binds PORT first (so the command can never race it), forks, execs COMMAND in the child
and relays until that child exits, then exits with the child's status (128+N for a signal, like
bwrap). Standard library only, one thread and a selector: threads would count against the run's
process limit and reserve address space under RLIMIT_AS. PORT 0 (the local backend, where the
port is shared with the host) picks a free port and rewrites `127.0.0.1:0` in the command's
environment to it.
"""

import errno
import os
import selectors
import socket
import sys

CHUNK = 262144
# A side that stops reading leaves at most this much buffered before the other side is paused.
MAX_PENDING = 1 << 20
# Beyond this many open client connections new ones are closed at once: the proxy would refuse
# them anyway, and the relay must not run out of descriptors.
MAX_CLIENTS = 512


class Pipe:
    """One direction of one relayed connection."""

    def __init__(self, source: socket.socket, target: socket.socket) -> None:
        self.source = source
        self.target = target
        self.pending = b""
        self.eof = False
        self.peer: Pipe = self


Pipes = dict[socket.socket, Pipe]


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: relay.py PORT SOCKET -- COMMAND...\n")
        return 2
    port, path, command = int(argv[0]), argv[1], argv[3:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    if port == 0:
        actual = f"127.0.0.1:{listener.getsockname()[1]}"
        for key, value in list(os.environ.items()):
            if "127.0.0.1:0" in value:
                os.environ[key] = value.replace("127.0.0.1:0", actual)
    child = os.fork()
    if child == 0:
        listener.close()
        try:
            os.execvp(command[0], command)  # noqa: S606 (the sandboxed command itself)
        except OSError as exc:
            sys.stderr.write(f"{command[0]}: {exc.strerror}\n")
        os._exit(127)
    return serve(listener, path, child)


def serve(listener: socket.socket, path: str, child: int) -> int:
    selector = selectors.DefaultSelector()
    exit_fd = os.pidfd_open(child)
    selector.register(exit_fd, selectors.EVENT_READ, "exit")
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, "accept")
    pipes: Pipes = {}  # socket -> the Pipe reading from it (its peer writes to it)
    while True:
        for key, mask in selector.select():
            if key.data == "exit":
                _, status = os.waitpid(child, 0)
                if os.WIFSIGNALED(status):
                    return 128 + os.WTERMSIG(status)
                return os.waitstatus_to_exitcode(status)
            if key.data == "accept":
                accept(listener, path, selector, pipes)
                continue
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            reader = pipes.get(sock)
            if reader is None:
                continue  # closed earlier in this batch
            writer = reader.peer
            if mask & selectors.EVENT_WRITE:
                if flush(writer) is None:
                    close(reader, selector, pipes)
                    continue
                if writer.eof and not writer.pending:
                    shut(sock)
            if mask & selectors.EVENT_READ and not read(reader):
                close(reader, selector, pipes)
                continue
            if reader.eof and writer.eof and not reader.pending and not writer.pending:
                close(reader, selector, pipes)
                continue
            watch(selector, sock, pipes)
            watch(selector, reader.target, pipes)


def accept(
    listener: socket.socket, path: str, selector: selectors.BaseSelector, pipes: Pipes
) -> None:
    try:
        client, _ = listener.accept()
    except OSError:
        return
    if len(pipes) >= 2 * MAX_CLIENTS:
        client.close()
        return
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        # The host side is gone; the client sees a closed connection.
        upstream.close()
        client.close()
        return
    client.setblocking(False)
    upstream.setblocking(False)
    up, down = Pipe(client, upstream), Pipe(upstream, client)
    up.peer, down.peer = down, up
    pipes[client], pipes[upstream] = up, down
    selector.register(client, selectors.EVENT_READ)
    selector.register(upstream, selectors.EVENT_READ)


def read(pipe: Pipe) -> bool:
    """Read what `pipe`'s source has and pass it on; False when the connection is broken."""
    try:
        data = pipe.source.recv(CHUNK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    if not data:
        pipe.eof = True
        if not pipe.pending:
            shut(pipe.target)
        return True
    pipe.pending += data
    return flush(pipe) is not None


def watch(selector: selectors.BaseSelector, sock: socket.socket, pipes: Pipes) -> None:
    """Register `sock` for what its two directions need now (read, write, both or nothing)."""
    reader = pipes.get(sock)
    if reader is None:
        return
    events = 0
    if not reader.eof and len(reader.pending) < MAX_PENDING:
        events |= selectors.EVENT_READ
    if reader.peer.pending:
        events |= selectors.EVENT_WRITE
    try:
        current = selector.get_key(sock).events
    except KeyError:
        current = 0
    if events == current:
        return  # the common case: nothing to tell the kernel
    if not events:
        selector.unregister(sock)
    elif current:
        selector.modify(sock, events)
    else:
        selector.register(sock, events)


def flush(pipe: Pipe) -> int | None:
    """Write what `pipe` holds to its target; None when the target is gone."""
    while pipe.pending:
        try:
            sent = pipe.target.send(pipe.pending[:CHUNK])
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return None
        pipe.pending = pipe.pending[sent:]
    return 1


def shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def close(pipe: Pipe, selector: selectors.BaseSelector, pipes: Pipes) -> None:
    """Close both sockets of `pipe`'s connection."""
    for sock in (pipe.source, pipe.target):
        pipes.pop(sock, None)
        try:
            selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
