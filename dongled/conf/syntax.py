"""How Asterisk's main/config.c reads one line: line endings, blanks, comments.

Apart from the include tree (parser.py) because it is the byte-level half of the mirror of
config.c: each step here is a pure function of one line's bytes, checked step for step
against what Asterisk keeps of it.
"""

from __future__ import annotations

from dongled.core.errors import ConfError

BLANKS = bytes(range(1, 33))  # ast_strip() drops every byte below 33
BOM = b"\xef\xbb\xbf"
MAX_LINE = 8191  # config.c reads into char[8192]; a longer line is skipped whole
MAX_NESTED_COMMENTS = 128
DASH, BSLASH = ord("-"), ord("\\")


def decode(raw: bytes) -> str:
    """Bytes as text; a byte that is not UTF-8 is kept (surrogateescape), not lost."""
    return raw.decode("utf-8", "surrogateescape")


def split_lines(data: bytes) -> tuple[bytes, ...]:
    """Lines with their own endings; only a final line may lack one."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return tuple(lines)


def line_body(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\n") else line


def line_end(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return b"\r\n"
    return b"\n" if line.endswith(b"\n") else b""


def strip_blanks(text: bytes, offs: list[int]) -> tuple[bytes, list[int]]:
    lead = len(text) - len(text.lstrip(BLANKS))
    kept = text.strip(BLANKS)
    return kept, offs[lead : lead + len(kept)]


def uncomment(
    body: bytes, start: int, depth: int, path: str, lineno: int
) -> tuple[bytes | None, list[int], int]:
    """Asterisk's comment stripping for one line, step for step.

    Returns the text the parser goes on to read (None: the line is inside a block
    comment), the offset in `body` of each byte of it, and the new block-comment depth.
    The buffer is edited as config.c edits its C string, NUL bytes included, so escapes
    and inline block comments end up exactly where Asterisk puts them.
    """
    mem = bytearray(body[start:]) + b"\0"
    pos = [*range(start, len(body)), len(body)]
    new = 0
    proc: int | None = None if depth else 0
    while True:
        c = mem.find(b";", new, mem.index(0, new))
        if c < 0:
            break
        if c > new and mem[c - 1] == BSLASH:  # "\;" is a literal ';'
            del mem[c - 1]
            del pos[c - 1]
            new = c
        elif mem[c + 1] == DASH and mem[c + 2] == DASH and mem[c + 3] != DASH:  # ";--"
            if depth >= MAX_NESTED_COMMENTS:
                # Asterisk loops forever on this line.
                raise ConfError(path, lineno, "block comments nested more than 128 deep")
            mem[c] = 0
            new = c + 3
            depth += 1
        elif c >= new + 2 and mem[c - 1] == DASH and mem[c - 2] == DASH:  # "--;"
            depth -= 1
            if depth < 0:
                raise ConfError(
                    path,
                    lineno,
                    "'--;' closes a block comment that was never opened; Asterisk would "
                    "ignore the rest of the file",
                )
            new = c + 1
            if depth == 0:
                if proc is None:
                    proc = new
                else:  # join what follows the comment to what preceded it
                    end = mem.index(0, proc)
                    del mem[end:new]
                    del pos[end:new]
                    new = end
        elif depth == 0:  # plain ';' comment: the rest of the line is ignored
            mem[c] = 0
            new = c
        else:
            new = c + 1
    if proc is None:
        return None, [], depth
    end = mem.index(0, proc)
    return bytes(mem[proc:end]), pos[proc:end], depth
