#!/usr/bin/env python3
"""Estimates what single-instance storage of attachments could save.

Walks a directory of .eml files, hashes the decoded payload of every non-text
MIME part (attachments, inline images, anything not text/*), and prints how
many raw bytes those parts take (still transfer-encoded, as stored) and how
many of them are repeat copies of a part already seen: the most that storing
each attachment once could remove. A message Python cannot parse counts in
the raw total only. Used for docs/benchmarks.md.

    scripts/attachment-dups.py ../shared/corpus/real
"""
import collections
import email
import hashlib
import os
import sys
from email import policy


def non_text_parts(msg):
    """Yields (encoded size, SHA-256 of decoded payload) of each non-text leaf part."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = (part.get("Content-Disposition") or "").lower()
        is_text = part.get_content_type().startswith("text/")
        if "attachment" not in disposition and not part.get_filename() and is_text:
            continue
        encoded = part.get_payload(decode=False)
        if not isinstance(encoded, str):
            continue
        decoded = part.get_payload(decode=True) or b""
        yield len(encoded), hashlib.sha256(decoded).hexdigest()


def main(root):
    messages = raw_bytes = part_bytes = 0
    copies = collections.Counter()  # payload hash -> number of parts
    size = {}  # payload hash -> encoded size
    for dirpath, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as f:
                raw = f.read()
            messages += 1
            raw_bytes += len(raw)
            try:
                msg = email.message_from_bytes(raw, policy=policy.compat32)
                parts = list(non_text_parts(msg))
            except Exception:  # malformed beyond the email package: raw total only
                continue
            for encoded_size, digest in parts:
                copies[digest] += 1
                size[digest] = encoded_size
                part_bytes += encoded_size
    repeats = sum(size[d] * (n - 1) for d, n in copies.items() if n > 1)
    print(
        f"messages {messages} raw {raw_bytes / 1e6:.1f} MB; "
        f"non-text parts {part_bytes / 1e6:.1f} MB ({100 * part_bytes / raw_bytes:.1f}%); "
        f"distinct {len(copies)} of {sum(copies.values())}; "
        f"bytes in repeat copies {repeats / 1e6:.1f} MB ({100 * repeats / raw_bytes:.1f}% of raw)"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: attachment-dups.py DIR")
    main(sys.argv[1])
