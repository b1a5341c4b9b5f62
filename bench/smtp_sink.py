"""A fast SMTP sink for the benchmarks: accepts every message, keeps only counts and times.

aiosmtpd (what the end-to-end tests use) parses and keeps each message; under load that
parsing, not the sender, would be what is measured. This sink speaks just enough SMTP for
smtplib and lettre (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), answers every command at
once and, for each message, notes when its final "." arrived (time.monotonic, the same clock
the driver reads) and the first benchmark token (`hb-<digits>`) in it.

A control port answers one-line commands: `COUNT` (messages so far), `DUMP` (JSON: count
and the first arrival time of each token), `RESET`.

With `--quickack` the sink asks the kernel to acknowledge every segment at once
(TCP_QUICKACK after each read) instead of delaying the ACK by up to 40 ms. Real mail servers
do not do this; the benchmark uses it to show what a client that sets TCP_NODELAY would see,
since a client that writes twice before reading a reply (lettre 0.11 ends DATA that way)
otherwise waits for the delayed ACK on every message.

Usage: `python smtp_sink.py [--quickack]`; prints `ready SMTP_PORT CONTROL_PORT` once both
listen.
"""

import asyncio
import json
import re
import socket
import sys
import time

TOKEN = re.compile(rb"hb-(\d+)")
END_OF_DATA = b"\r\n.\r\n"


class Stats:
    """What the sink has received."""

    def __init__(self):
        self.count = 0
        self.arrivals = {}

    def received(self, data, at):
        self.count += 1
        found = TOKEN.search(data)
        if found:
            self.arrivals.setdefault(found.group(1).decode(), at)


class Smtp(asyncio.Protocol):
    """One SMTP session: command lines until DATA, then bytes until the end-of-data line."""

    def __init__(self, stats, quickack):
        self.stats = stats
        self.quickack = quickack
        self.buffer = b""
        self.in_data = False

    def connection_made(self, transport):
        self.transport = transport
        self.socket = transport.get_extra_info("socket")
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data):
        if self.quickack:
            # Linux clears the flag again on its own, so it is set after every read.
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        self.buffer += data
        while self.buffer:
            if self.in_data and not self._take_data():
                return
            if not self.in_data and not self._take_command():
                return

    def _take_data(self):
        # The end marker may follow the DATA reply directly when the body is empty.
        end = self.buffer.find(END_OF_DATA)
        if end < 0:
            return False
        self.stats.received(self.buffer[:end], time.monotonic())
        self.buffer = self.buffer[end + len(END_OF_DATA):]
        self.in_data = False
        self.transport.write(b"250 OK queued\r\n")
        return True

    def _take_command(self):
        end = self.buffer.find(b"\r\n")
        if end < 0:
            return False
        line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
        verb = line[:4].upper()
        if verb == b"EHLO":
            self.transport.write(b"250-sink\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
        elif verb == b"DATA":
            self.in_data = True
            # Let a body that starts with the end marker itself be found.
            self.buffer = b"\r\n" + self.buffer
            self.transport.write(b"354 go ahead\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
        else:
            self.transport.write(b"250 OK\r\n")
        return True


async def control(stats, reader, writer):
    command = (await reader.readline()).strip().upper()
    if command == b"COUNT":
        writer.write(f"{stats.count}\n".encode())
    elif command == b"DUMP":
        writer.write(json.dumps({"count": stats.count, "arrivals": stats.arrivals}).encode())
    elif command == b"RESET":
        stats.count = 0
        stats.arrivals = {}
        writer.write(b"ok\n")
    await writer.drain()
    writer.close()


async def main():
    stats = Stats()
    quickack = "--quickack" in sys.argv[1:]
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(lambda: Smtp(stats, quickack), "127.0.0.1", 0,
                                    backlog=1024)
    ctl = await asyncio.start_server(lambda r, w: control(stats, r, w), "127.0.0.1", 0)
    smtp_port = smtp.sockets[0].getsockname()[1]
    ctl_port = ctl.sockets[0].getsockname()[1]
    print(f"ready {smtp_port} {ctl_port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
