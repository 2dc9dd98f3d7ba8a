"""Keys for the status console: decoding what a terminal sends (pure), and a terminal
in cbreak mode read without blocking, restored on exit (also on Ctrl-C)."""

from __future__ import annotations

import os
import sys

#: Escape sequences of the keys the console knows (xterm and VT100 forms).
SEQUENCES = {
    "\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left",
    "\x1bOA": "up", "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left",
    "\x1b[5~": "pgup", "\x1b[6~": "pgdn", "\x1b[H": "home", "\x1b[F": "end", "\x1b[1~": "home",
    "\x1b[4~": "end", "\x1b[Z": "shift-tab",
}
SINGLE = {"\t": "tab", "\r": "enter", "\n": "enter", "\x03": "ctrl-c", " ": "pgdn"}


def decode_keys(data: str) -> list[str]:
    """The keys in ``data`` as names; plain characters stand for themselves.

    >>> decode_keys("\\t\\x1b[Bq")
    ['tab', 'down', 'q']
    >>> decode_keys("\\x1b")
    ['escape']
    """
    keys, i = [], 0
    while i < len(data):
        if data[i] == "\x1b":
            for seq, name in SEQUENCES.items():
                if data.startswith(seq, i):
                    keys.append(name)
                    i += len(seq)
                    break
            else:   # a lone escape, or a sequence the console does not know: skip it whole
                j = i + 1
                if j < len(data) and data[j] in "[O":
                    j += 1
                    while j < len(data) and not data[j].isalpha() and data[j] != "~":
                        j += 1
                    j += 1
                keys.append("escape" if j == i + 1 else "unknown")
                i = j
            continue
        keys.append(SINGLE.get(data[i], data[i]))
        i += 1
    return keys


class KeyReader:
    """``with KeyReader() as keys: keys.read()`` -> the keys pressed since the last read,
    without blocking. The terminal goes to cbreak mode (no echo, keys one by one, Ctrl-C
    still interrupts) and back to how it was on exit. Without a terminal on stdin it reads
    nothing (``interactive`` is False)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdin
        self.interactive = False
        self._saved = None

    def __enter__(self) -> "KeyReader":
        try:
            self._fd = self.stream.fileno()
            self.interactive = os.isatty(self._fd)
        except (AttributeError, OSError, ValueError):
            self.interactive = False
        if self.interactive:
            import termios
            import tty

            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def read(self) -> list[str]:
        if not self.interactive:
            return []
        import select

        data = b""
        while select.select([self._fd], [], [], 0)[0]:
            chunk = os.read(self._fd, 1024)
            if not chunk:
                break
            data += chunk
        return decode_keys(data.decode("utf-8", "replace"))
