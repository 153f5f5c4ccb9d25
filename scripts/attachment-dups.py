#!/usr/bin/env python3
"""Estimates what single-instance storage of attachments could save.

Walks a directory of .eml files, hashes the decoded payload of every non-text
MIME part (attachments, inline images, anything not text/*), and prints how
many raw bytes those parts take (still transfer-encoded, as stored) and how
many of them are repeat copies of a part already seen: the most that storing
each attachment once could remove. Used for docs/benchmarks.md.

    scripts/attachment-dups.py ../shared/corpus/real
"""
import os, sys, email, hashlib, collections
from email import policy
root=sys.argv[1]
total=0; att_bytes=0; seen=collections.Counter(); sizes={}
n=0
for dp,dn,fn in os.walk(root):
    for f in fn:
        p=os.path.join(dp,f)
        b=open(p,'rb').read(); total+=len(b); n+=1
        try:
            m=email.message_from_bytes(b, policy=policy.compat32)
        except Exception:
            continue
        for part in m.walk():
            if part.is_multipart(): continue
            cd=(part.get('Content-Disposition') or '').lower()
            ct=part.get_content_type()
            if 'attachment' in cd or part.get_filename() or not ct.startswith('text/'):
                raw=part.get_payload(decode=False)
                if not isinstance(raw,str): continue
                enc=len(raw)
                d=part.get_payload(decode=True) or b''
                h=hashlib.sha256(d).hexdigest()
                seen[h]+=1; sizes[h]=enc; att_bytes+=enc
dup=sum(sizes[h]*(c-1) for h,c in seen.items() if c>1)
print(f"messages {n} raw {total/1e6:.1f} MB; non-text parts {att_bytes/1e6:.1f} MB ({100*att_bytes/total:.1f}%); distinct {len(seen)} of {sum(seen.values())}; bytes in repeat copies {dup/1e6:.1f} MB ({100*dup/total:.1f}% of raw)")
