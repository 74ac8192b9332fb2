"""Text blocks out of a PDF, and their translation through the user's glossary.

`extract_blocks` reads what simple PDFs hold: pages in the order of the page
tree, each page's content streams (plain or ``FlateDecode``), and in them
each text object (``BT ... ET``) as one block, with its text-space origin as
coordinates. It does not read object streams, nor fonts whose encoding maps
glyph codes to other characters (``ToUnicode``): a PDF it finds no text in is
an `ExtractionError`, which fails the job with that message. A production
deployment swaps in a full PDF library here; the task does not change.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = ["Block", "ExtractionError", "extract_blocks", "translate_text"]

_OBJECT = re.compile(rb"(\d+)\s+\d+\s+obj\b(.*?)\bendobj", re.DOTALL)
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)
_REF = re.compile(rb"(\d+)\s+\d+\s+R")
_TOKEN = re.compile(
    rb"\((?:\\.|[^\\)])*\)|\[|\]|/[^\s/\[\]()<>]+|<[0-9A-Fa-f\s]*>|[^\s\[\]()<>/]+", re.DOTALL
)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


class ExtractionError(ValueError):
    """The file is not a PDF this extractor can read text from."""


@dataclass(frozen=True)
class Block:
    page_num: int
    block_num: int
    text: str
    coordinates: dict[str, float] | None


def extract_blocks(pdf: bytes) -> tuple[int, list[Block]]:
    """The page count and the text blocks of `pdf`, pages and blocks counted from 0."""
    if not pdf.startswith(b"%PDF-"):
        raise ExtractionError("the file is not a PDF")
    objects = {int(number): body for number, body in _OBJECT.findall(pdf)}
    pages = _pages(objects)
    if not pages:
        raise ExtractionError("the PDF has no pages this extractor can read")
    blocks: list[Block] = []
    for page_num, page in enumerate(pages):
        content = b"\n".join(_stream(objects.get(ref, b"")) for ref in _contents(page))
        for block_num, (text, origin) in enumerate(_text_objects(content)):
            blocks.append(Block(page_num, block_num, text, origin))
    if not blocks:
        raise ExtractionError("no text found in the PDF (scanned pages need OCR)")
    return len(pages), blocks


def _pages(objects: dict[int, bytes]) -> list[bytes]:
    """Page objects in page-tree order (object order if the tree is unreadable)."""
    roots = [
        body
        for body in objects.values()
        if re.search(rb"/Type\s*/Pages\b", body) and b"/Parent" not in body
    ]
    ordered: list[bytes] = []
    seen: set[int] = set()

    def walk(node: bytes) -> None:
        kids = re.search(rb"/Kids\s*\[(.*?)\]", node, re.DOTALL)
        for ref in _REF.findall(kids.group(1) if kids else b""):
            number = int(ref)
            if number in seen or number not in objects:
                continue
            seen.add(number)
            kid = objects[number]
            if re.search(rb"/Type\s*/Pages\b", kid):
                walk(kid)
            elif re.search(rb"/Type\s*/Page\b", kid):
                ordered.append(kid)

    for root in roots:
        walk(root)
    if ordered:
        return ordered
    return [body for body in objects.values() if re.search(rb"/Type\s*/Page\b", body)]


def _contents(page: bytes) -> list[int]:
    found = re.search(rb"/Contents\s*(\[.*?\]|\d+\s+\d+\s+R)", page, re.DOTALL)
    return [int(ref) for ref in _REF.findall(found.group(1))] if found else []


def _stream(body: bytes) -> bytes:
    found = _STREAM.search(body)
    if found is None:
        return b""
    data = found.group(1)
    if b"/FlateDecode" in body[: found.start()]:
        try:
            return zlib.decompress(data)
        except zlib.error as exc:
            raise ExtractionError(f"a content stream does not decompress: {exc}") from None
    return data


def _text_objects(content: bytes) -> list[tuple[str, dict[str, float] | None]]:
    """(text, origin) of each ``BT ... ET`` with text in it."""
    found: list[tuple[str, dict[str, float] | None]] = []
    operands: list[Any] = []
    array: list[bytes] | None = None
    parts: list[str] = []
    origin: dict[str, float] | None = None
    for token in _TOKEN.findall(content):
        if token == b"[":
            array = []
        elif token == b"]":
            operands.append(array or [])
            array = None
        elif token.startswith((b"(", b"<")):
            (operands if array is None else array).append(_string(token))
        elif array is not None:
            continue  # kerning numbers inside a TJ array
        elif token.startswith(b"/") or _is_number(token):
            operands.append(token)
        else:  # an operator: it consumes its operands
            if token == b"BT":
                parts, origin = [], None
            elif token == b"ET":
                text = " ".join(" ".join(parts).split())
                if text:
                    found.append((text, origin))
            elif token in (b"Td", b"TD", b"Tm") and origin is None and len(operands) >= 2:
                x, y = _number(operands[-2]), _number(operands[-1])
                if x is not None and y is not None:
                    origin = {"x": x, "y": y}
            elif token in (b"Tj", b"'", b'"') and operands:
                parts.append(_decode(operands[-1]))
            elif token == b"TJ" and operands and isinstance(operands[-1], list):
                parts.append("".join(_decode(piece) for piece in operands[-1]))
            elif token == b"T*":
                parts.append(" ")
            operands = []
    return found


def _is_number(token: bytes) -> bool:
    return re.fullmatch(rb"[+-]?(\d+\.?\d*|\.\d+)", token) is not None


def _number(token: Any) -> float | None:
    return float(token) if isinstance(token, bytes) and _is_number(token) else None


def _string(token: bytes) -> bytes:
    if token.startswith(b"<"):
        digits = re.sub(rb"\s", b"", token[1:-1])
        return bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())
    body, out, i = token[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i : i + 1]
        if char == b"\\" and i + 1 < len(body):
            following = body[i + 1 : i + 2]
            octal = re.match(rb"[0-7]{1,3}", body[i + 1 : i + 4])
            if octal:
                out.append(int(octal.group(), 8) & 0xFF)
                i += 1 + len(octal.group())
                continue
            out += _ESCAPES.get(following, following if following not in b"\r\n" else b"")
            i += 2
            continue
        out += char
        i += 1
    return bytes(out)


def _decode(value: Any) -> str:
    if not isinstance(value, bytes):
        return ""
    if value.startswith(b"\xfe\xff"):
        return value[2:].decode("utf-16-be", errors="replace")
    return value.decode("latin-1")


def translate_text(text: str, glossary: dict[str, str]) -> str:
    """`text` with each glossary term (whole words, any case) replaced by its translation.

    The stand-in for a translation service: it applies exactly the user's
    preferred terms, longest first, and leaves the rest as it is.
    """
    if not glossary:
        return text
    terms = sorted(glossary, key=len, reverse=True)
    lookup = {term.casefold(): glossary[term] for term in terms}
    pattern = re.compile(
        r"(?<!\w)(" + "|".join(re.escape(term) for term in terms) + r")(?!\w)", re.IGNORECASE
    )
    return pattern.sub(lambda match: lookup[match.group(1).casefold()], text)
