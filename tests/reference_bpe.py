# Independent reference for twist::tokenizer::Gpt2Tokenizer: GPT-2's byte-pair
# encoder written directly from its published algorithm (the byte alphabet,
# pair ranks from vocab.bpe, the `regex` split pattern, the merge loop).
#
#   /usr/bin/python3 tests/reference_bpe.py DIR FILE...
#
# DIR holds encoder.json and vocab.bpe; each FILE is one UTF-8 document.
# Prints one JSON list of token ids per FILE, one per line, in order. Needs
# Debian's python3-regex (the `regex` module, not `re`: \p{L} and \p{N}).
import json
import sys

import regex

PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def byte_alphabet():
    """Byte -> character: printable Latin-1 as itself, the rest from U+0100."""
    printable = [b for b in range(256)
                 if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


def merge_word(symbols, ranks):
    """Merges the lowest-ranked adjacent pair (every occurrence, left to right)
    until no adjacent pair has a rank."""
    while len(symbols) > 1:
        candidates = {(a, b) for a, b in zip(symbols, symbols[1:])}
        best = min(candidates, key=lambda p: ranks.get(p, float("inf")))
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                merged.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def main():
    folder, paths = sys.argv[1], sys.argv[2:]
    with open(f"{folder}/encoder.json", encoding="utf-8") as f:
        vocab = json.load(f)
    with open(f"{folder}/vocab.bpe", encoding="utf-8") as f:
        lines = f.read().split("\n")[1:]
    ranks = {tuple(line.split()): rank
             for rank, line in enumerate(l for l in lines if l)}
    alphabet = byte_alphabet()
    cache = {}
    for path in paths:
        with open(path, "rb") as f:  # Bytes: no newline translation.
            text = f.read().decode("utf-8")
        ids = []
        for piece in PATTERN.findall(text):
            if piece not in cache:
                word = [alphabet[b] for b in piece.encode("utf-8")]
                cache[piece] = [vocab[s] for s in merge_word(word, ranks)]
            ids.extend(cache[piece])
        print(json.dumps(ids))


if __name__ == "__main__":
    main()
