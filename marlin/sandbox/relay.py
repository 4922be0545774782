"""The inside end of the egress bridge: a TCP listener on the sandbox's own 127.0.0.1 that hands
every connection to the host's egress proxy through a bind-mounted Unix socket.

It is not imported by Marlin: the bwrap backend binds this file into the sandbox and runs

    /usr/bin/python3 -I -S relay.py PORT SOCKET -- COMMAND...

The relay binds PORT first (so the command can never race it), forks, execs COMMAND in the child
and relays until that child exits, then exits with the child's status (128+N for a signal, like
bwrap). One thread and epoll: threads would count against the run's process limit and reserve
address space under RLIMIT_AS. It imports only C modules (`_socket`, `select`) and `os`, because
it starts with every run in proxy mode: `socket` and `selectors` would pull in `enum` and
`collections` and cost tens of milliseconds on a loaded machine. PORT 0 (the local backend, where
the port is shared with the host) picks a free port and rewrites `127.0.0.1:0` in the command's
environment to it.
"""

import _socket
import os
import select
import sys

CHUNK = 262144
# A side that stops reading leaves at most this much buffered before the other side is paused.
MAX_PENDING = 1 << 20
# Beyond this many open client connections new ones are closed at once: the proxy would refuse
# them anyway, and the relay must not run out of descriptors.
MAX_CLIENTS = 512
READ = select.EPOLLIN
WRITE = select.EPOLLOUT


class Pipe:
    """One direction of one relayed connection."""

    def __init__(self, source: _socket.socket, target: _socket.socket) -> None:
        self.source = source
        self.target = target
        self.pending = b""
        self.eof = False
        self.peer: Pipe = self


class Relay:
    def __init__(self, listener: _socket.socket, path: str) -> None:
        self.listener = listener
        self.path = path
        self.poll = select.epoll()
        self.pipes: dict[int, Pipe] = {}  # fd -> the Pipe reading from it (its peer writes to it)
        self.wanted: dict[int, int] = {}  # fd -> the events it is registered for

    def serve(self, child: int) -> int:
        exit_fd = os.pidfd_open(child)
        self.poll.register(exit_fd, READ)
        self.listener.setblocking(False)
        self.poll.register(self.listener.fileno(), READ)
        while True:
            for fd, events in self.poll.poll():
                if fd == exit_fd:
                    _, status = os.waitpid(child, 0)
                    if os.WIFSIGNALED(status):
                        return 128 + os.WTERMSIG(status)
                    return os.waitstatus_to_exitcode(status)
                if fd == self.listener.fileno():
                    self.accept()
                else:
                    self.pump(fd, events)

    def accept(self) -> None:
        try:
            fd, _ = self.listener._accept()  # type: ignore[attr-defined] # (what socket.accept wraps)
        except OSError:
            return
        client = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
        if len(self.pipes) >= 2 * MAX_CLIENTS:
            client.close()
            return
        upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            upstream.connect(self.path)
        except OSError:
            # The host side is gone; the client sees a closed connection.
            upstream.close()
            client.close()
            return
        client.setblocking(False)
        upstream.setblocking(False)
        up, down = Pipe(client, upstream), Pipe(upstream, client)
        up.peer, down.peer = down, up
        self.pipes[client.fileno()], self.pipes[upstream.fileno()] = up, down
        self.watch(client)
        self.watch(upstream)

    def pump(self, fd: int, events: int) -> None:
        reader = self.pipes.get(fd)
        if reader is None:
            return  # closed earlier in this batch
        writer = reader.peer
        if events & WRITE or events & select.EPOLLERR:
            if not flush(writer):
                self.close(reader)
                return
            if writer.eof and not writer.pending:
                shut(reader.source)
        if events & (READ | select.EPOLLHUP | select.EPOLLERR) and not reader.eof:
            if not read(reader):
                self.close(reader)
                return
        if reader.eof and writer.eof and not reader.pending and not writer.pending:
            self.close(reader)
            return
        self.watch(reader.source)
        self.watch(reader.target)

    def watch(self, sock: _socket.socket) -> None:
        """Register `sock` for what its two directions need now (read, write, both or nothing),
        telling the kernel only when that changes."""
        fd = sock.fileno()
        reader = self.pipes.get(fd)
        if reader is None:
            return
        events = 0
        if not reader.eof and len(reader.pending) < MAX_PENDING:
            events |= READ
        if reader.peer.pending:
            events |= WRITE
        current = self.wanted.get(fd, 0)
        if events == current:
            return
        if not events:
            self.poll.unregister(fd)
            del self.wanted[fd]
        elif current:
            self.poll.modify(fd, events)
            self.wanted[fd] = events
        else:
            self.poll.register(fd, events)
            self.wanted[fd] = events

    def close(self, pipe: Pipe) -> None:
        """Close both sockets of `pipe`'s connection."""
        for sock in (pipe.source, pipe.target):
            fd = sock.fileno()
            if fd < 0:
                continue
            self.pipes.pop(fd, None)
            if self.wanted.pop(fd, None) is not None:
                self.poll.unregister(fd)
            sock.close()


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
    return flush(pipe)


def flush(pipe: Pipe) -> bool:
    """Write what `pipe` holds to its target, as far as it takes it; False when it is gone."""
    while pipe.pending:
        try:
            sent = pipe.target.send(pipe.pending[:CHUNK])
        except BlockingIOError:
            return True
        except OSError:
            return False
        pipe.pending = pipe.pending[sent:]
    return True


def shut(sock: _socket.socket) -> None:
    try:
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: relay.py PORT SOCKET -- COMMAND...\n")
        return 2
    port, path, command = int(argv[0]), argv[1], argv[3:]
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
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
    return Relay(listener, path).serve(child)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
