"""Tokens as readable text (byte-level pieces, one token's text) and a row's label (chapters 4, 6)."""

from __future__ import annotations

import codecs
import functools

from jaxtyping import Int
from torch import Tensor


def row_label(text: str) -> str:
    """ "zh" or "ar" when over 20% of the letters are Han or Arabic, "code" when it looks like code."""
    letters = [c for c in text if c.isalpha()]
    n = max(1, len(letters))
    if sum("\u4e00" <= c <= "\u9fff" for c in letters) > 0.2 * n:
        return "zh"
    if sum("\u0600" <= c <= "\u06ff" for c in letters) > 0.2 * n:
        return "ar"
    symbols = sum(c in "{}()[];=_<>#" for c in text)
    return "code" if symbols > 0.05 * max(1, len(text)) else "en"


@functools.cache
def _byte_decoder() -> dict[str, int]:
    # GPT-2's byte-level alphabet: printable bytes stand for themselves, the rest map to 256+.
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


# What a token id the tokenizer does not know shows as (a padded unembedding's unused rows).
UNUSED_TOKEN = "<unused>"


def token_pieces(tokenizer, ids: Int[Tensor, " n"] | list[int]) -> list[str]:
    """The text each token completes, so that byte-level tokens of one Han or Arabic character
    give the whole character to the token holding its last byte (and "" to the others)."""
    decoder = _byte_decoder()
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces = []
    for token in tokenizer.convert_ids_to_tokens([int(i) for i in ids]):
        if token is None:  # an id past the tokenizer: an unused row of a padded unembedding
            pieces.append(UNUSED_TOKEN)
            continue
        if all(c in decoder for c in token):
            raw = bytes(decoder[c] for c in token)
        else:
            raw = token.encode("utf-8")
        pieces.append(utf8.decode(raw))
    return pieces


def token_text(tokenizer, token_id: int) -> str:
    """One token as readable text; a partial UTF-8 character shows as its bytes, e.g. <e4 b8>."""
    text = token_pieces(tokenizer, [token_id])[0]
    if text and "\ufffd" not in text:
        return text
    raw = tokenizer.convert_ids_to_tokens([token_id])[0]
    if raw is None:
        return UNUSED_TOKEN
    decoder = _byte_decoder()
    return "<" + " ".join(f"{decoder.get(c, 63):02x}" for c in raw) + ">"
