package message

import (
	"bytes"
	"strings"
)

// JournalEnvelope is the envelope of an Exchange / Microsoft 365 journal
// report ([MS-OXJRNL]). Addresses are lowercased.
type JournalEnvelope struct {
	Sender     string
	OnBehalfOf string
	// To, Cc and Bcc hold the addresses of the report's To:, Cc: and Bcc:
	// lines, including the members a distribution list was expanded to and
	// the addresses mail was forwarded to on those lines.
	To, Cc, Bcc []string
	// Recipients is every envelope recipient (To, Cc, Bcc and Recipient
	// lines, expanded and forwarded addresses included), without duplicates.
	Recipients []string
	MessageID  string // without angle brackets
	Subject    string
}

// maxJournalRecipients caps the recipients read from one report.
const maxJournalRecipients = 100000

// IsJournalReport reports whether raw carries the header of a journal report:
// X-MS-Journal-Report, or Content-Identifier: ExJournalReport.
func IsJournalReport(raw []byte) bool {
	fields, _, _ := splitHeader(raw, true)
	return isJournalHeader(fields)
}

func isJournalHeader(fields []rawField) bool {
	for _, f := range fields {
		if strings.EqualFold(f.key, "X-MS-Journal-Report") {
			return true
		}
		if strings.EqualFold(f.key, "Content-Identifier") && strings.EqualFold(unfold(f.value), "ExJournalReport") {
			return true
		}
	}
	return false
}

// mayBeJournal reports whether raw's header could hold a field that
// isJournalHeader looks for, reading only the field names, without
// splitHeader's allocations (a tenth of ingest's parsing otherwise, for the
// many messages that are not reports). false is certain: it looks at every
// line before the first empty one, where splitHeader stops, and a name that
// strings.EqualFold matches to X-MS-Journal-Report or Content-Identifier is
// 18 to 20 bytes long (the only case folds of their letters outside ASCII
// are of 's', two bytes). FuzzMayBeJournal checks it against splitHeader
// and isJournalHeader.
func mayBeJournal(raw []byte) bool {
	for pos := 0; pos < len(raw); {
		line, next := nextLine(raw, pos)
		if len(line) == 0 {
			return false
		}
		if c := bytes.IndexByte(line, ':'); c > 0 {
			k := bytes.TrimRight(line[:c], " \t")
			if len(k) >= 18 && len(k) <= 20 &&
				(strings.EqualFold(string(k), "X-MS-Journal-Report") || strings.EqualFold(string(k), "Content-Identifier")) {
				return true
			}
		}
		pos = next
	}
	return false
}

// UnwrapJournal recognises an envelope journal report. If raw is one, it
// returns the attached original message's bytes exactly as they appear in
// the report (decoded from the part's Content-Transfer-Encoding; a copy, not
// sharing memory with raw), the envelope read from the report body (its first
// text/plain part) and ok=true. Otherwise (not a report, or a report without
// an attached message) ok is false and the caller keeps raw as it is.
func UnwrapJournal(raw []byte) (original []byte, env JournalEnvelope, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			original, env, ok = nil, JournalEnvelope{}, false
		}
	}()
	if !mayBeJournal(raw) {
		return nil, JournalEnvelope{}, false
	}
	fields, body, _ := splitHeader(raw, true)
	if !isJournalHeader(fields) {
		return nil, JournalEnvelope{}, false
	}
	w := journalWalker{}
	w.walk(fields, body, 0)
	if !w.haveOrig {
		return nil, JournalEnvelope{}, false
	}
	if w.haveText {
		env = parseJournalBody(w.text)
	}
	return w.orig, env, true
}

// journalWalker finds the first text/plain leaf and the first message/rfc822
// leaf of a report, without descending into the original message.
type journalWalker struct {
	parts              int
	text               string
	orig               []byte
	haveText, haveOrig bool
}

func (w *journalWalker) walk(fields []rawField, body []byte, depth int) {
	w.parts++
	if w.parts > DefaultMaxParts || w.haveOrig && w.haveText {
		return
	}
	typ, params := "text/plain", map[string]string(nil)
	if v, ok := getRaw(fields, "Content-Type"); ok {
		if t, prm := parseMediaHeader(unfold(v)); validMediaType(t) {
			typ, params = t, prm
		}
	}
	cte := cteIdentity
	if v, ok := getRaw(fields, "Content-Transfer-Encoding"); ok {
		if cte = transferEncoding(unfold(v)); cte == cteUnknown {
			cte = cteIdentity
		}
	}
	switch {
	case strings.HasPrefix(typ, "multipart/"):
		if depth >= DefaultMaxDepth {
			return
		}
		if cte != cteIdentity {
			body, _, _ = decodeBody(body, cte, true)
		}
		boundary := params["boundary"]
		if boundary == "" {
			boundary = sniffBoundary(body)
		}
		if boundary == "" {
			return
		}
		parts, _ := splitMultipart(body, boundary, DefaultMaxParts)
		for _, pb := range parts {
			pf, pbody, _ := splitHeader(pb, false)
			w.walk(pf, pbody, depth+1)
		}
	case typ == "message/rfc822" || typ == "message/global":
		if !w.haveOrig {
			data, _, _ := decodeBody(body, cte, true)
			if cte == cteIdentity {
				data = bytes.Clone(data)
			}
			if data == nil {
				data = []byte{}
			}
			w.orig, w.haveOrig = data, true
		}
	case typ == "text/plain":
		if !w.haveText {
			data, _, _ := decodeBody(body, cte, true)
			w.text, _ = decodeCharset(data, params["charset"])
			w.haveText = true
		}
	}
}

// parseJournalBody reads the envelope lines of a report body.
func parseJournalBody(text string) JournalEnvelope {
	var env JournalEnvelope
	seen := map[string]bool{}
	addRecipient := func(list *[]string, addr string) {
		if addr == "" || len(env.Recipients) >= maxJournalRecipients {
			return
		}
		*list = append(*list, addr)
		if !seen[addr] {
			seen[addr] = true
			env.Recipients = append(env.Recipients, addr)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		key, val := strings.ToLower(strings.TrimSpace(line[:colon])), strings.TrimSpace(line[colon+1:])
		switch key {
		case "sender", "from":
			if env.Sender == "" {
				env.Sender = journalAddr(val)
			}
		case "on-behalf-of":
			if env.OnBehalfOf == "" {
				env.OnBehalfOf = journalAddr(val)
			}
		case "subject":
			if env.Subject == "" {
				env.Subject = cleanText(decodeWords(val))
			}
		case "message-id":
			if env.MessageID == "" {
				if ids := msgIDs(val); len(ids) > 0 {
					env.MessageID = ids[0]
				}
			}
		case "to", "cc", "bcc", "recipient":
			var list *[]string
			var scratch []string
			switch key {
			case "to":
				list = &env.To
			case "cc":
				list = &env.Cc
			case "bcc":
				list = &env.Bcc
			default:
				list = &scratch
			}
			// "addr[, Expanded: addr][, Forwarded: addr]..."
			for i, seg := range strings.Split(val, ",") {
				seg = strings.TrimSpace(seg)
				if i > 0 {
					c := strings.IndexByte(seg, ':')
					if c < 0 {
						continue // a flag such as "Bcc" or "Original"
					}
					seg = strings.TrimSpace(seg[c+1:])
				}
				addRecipient(list, journalAddr(seg))
			}
		}
	}
	return env
}

// journalAddr extracts and lowercases the address of one envelope entry:
// "a@x", "<a@x>" or "Name <a@x>".
func journalAddr(s string) string {
	s = strings.TrimSpace(s)
	if lt := strings.IndexByte(s, '<'); lt >= 0 {
		s = s[lt+1:]
		if gt := strings.IndexByte(s, '>'); gt >= 0 {
			s = s[:gt]
		}
	}
	return strings.ToLower(cleanText(strings.TrimSpace(s)))
}
