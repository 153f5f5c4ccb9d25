package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"mime"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// runAmplify implements `mailarc-bench amplify -n N -o DIR`.
func runAmplify(corpus string, args []string) error {
	fs := flag.NewFlagSet("amplify", flag.ContinueOnError)
	n := fs.Int("n", 100000, "number of messages to write")
	out := fs.String("o", "", "output maildir (created; must not exist or be empty)")
	seed := fs.Uint64("seed", 1, "random seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("amplify: -o DIR is required")
	}
	files, size, err := corpusFiles(corpus)
	if err != nil {
		return err
	}
	start := time.Now()
	written, err := amplify(files, *n, *out, *seed)
	if err != nil {
		return err
	}
	fmt.Printf("amplified %s (%d files, %.1f MB) to %s: %d messages, %.1f MB in %.1f s\n",
		corpus, len(files), float64(size)/1e6, *out, *n, float64(written)/1e6, time.Since(start).Seconds())
	return nil
}

// corpusFiles lists the .eml files under dir in a stable order.
func corpusFiles(dir string) ([]string, int64, error) {
	var files []string
	var total int64
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(p, ".eml") {
			return err
		}
		fi, err := d.Info()
		if err != nil || fi.Size() == 0 {
			return err
		}
		files = append(files, p)
		total += fi.Size()
		return nil
	})
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("no .eml files under %s", dir)
	}
	return files, total, err
}

// amplify writes n messages derived from files into the maildir out (cur/
// holds them; new/ and tmp/ are created empty). Message i is a copy of
// files[i % len(files)]; copy 0 is the real message unchanged, copy k > 0
// gets a new Message-ID, its Date moved k*97 days (plus a random part of a
// day) later, and, when its first text/plain part is not base64, a unique
// token line at the top of that part and up to three words with two inner
// letters swapped (typo-like, so the vocabulary keeps a long tail of rare
// words). No MIME part is re-encoded; sizes change by a few dozen bytes.
func amplify(files []string, n int, out string, seed uint64) (int64, error) {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(out, sub), 0o755); err != nil {
			return 0, fmt.Errorf("amplify: %w", err)
		}
	}
	r := rand.New(rand.NewPCG(seed, 42))
	var written int64
	var cache []byte
	cached := -1
	for i := 0; i < n; i++ {
		src := i % len(files)
		if src != cached {
			b, err := os.ReadFile(files[src])
			if err != nil {
				return written, fmt.Errorf("amplify: %w", err)
			}
			cache, cached = b, src
		}
		msg := cache
		if k := i / len(files); k > 0 {
			msg = mutate(cache, k, i, r)
		}
		name := filepath.Join(out, "cur", fmt.Sprintf("%d.M%dP1.amplified:2,S", 1600000000+i, i))
		if err := os.WriteFile(name, msg, 0o644); err != nil {
			return written, fmt.Errorf("amplify: %w", err)
		}
		written += int64(len(msg))
	}
	return written, nil
}

// ampToken is the unique word of amplified copy i; query word selection
// skips words with this prefix.
func ampToken(i int) string { return fmt.Sprintf("ampx%07d", i) }

// mutate returns copy k (> 0) of raw as described at amplify.
func mutate(raw []byte, k, i int, r *rand.Rand) []byte {
	hdrEnd, bodyStart := headerEnd(raw)
	nl := "\n"
	if bytes.Contains(raw[:hdrEnd], []byte("\r\n")) {
		nl = "\r\n"
	}
	var out bytes.Buffer
	out.Grow(len(raw) + 64)
	// Rewrite Message-ID and Date; keep every other header byte for byte.
	hdr := raw[:hdrEnd]
	sawID := false
	for len(hdr) > 0 {
		line := hdr
		if j := bytes.IndexByte(hdr, '\n'); j >= 0 {
			line = hdr[:j+1]
		}
		// Include continuation lines.
		end := len(line)
		for end < len(hdr) && (hdr[end] == ' ' || hdr[end] == '\t') {
			j := bytes.IndexByte(hdr[end:], '\n')
			if j < 0 {
				end = len(hdr)
				break
			}
			end += j + 1
		}
		field := hdr[:end]
		hdr = hdr[end:]
		name, value, ok := bytes.Cut(field, []byte(":"))
		lname := strings.ToLower(strings.TrimSpace(string(name)))
		switch {
		case ok && lname == "message-id" && !sawID:
			sawID = true
			v := strings.TrimSpace(string(value))
			v = strings.TrimPrefix(v, "<")
			fmt.Fprintf(&out, "%s: <a%d.%s%s", name, k, v, nl)
			continue
		case ok && lname == "date":
			if t, err := mail.ParseDate(strings.TrimSpace(string(value))); err == nil {
				t = t.Add(time.Duration(k)*97*24*time.Hour + time.Duration(r.IntN(86400))*time.Second)
				fmt.Fprintf(&out, "%s: %s%s", name, t.Format(time.RFC1123Z), nl)
				continue
			}
		}
		out.Write(field)
	}
	if !sawID {
		fmt.Fprintf(&out, "Message-ID: <%s@amplified.invalid>%s", ampToken(i), nl)
	}
	body := raw[hdrEnd:]
	start, end, ok := firstPlain(raw, 0, 0)
	if !ok || start < bodyStart {
		out.Write(body)
		return out.Bytes()
	}
	// Copy up to the text part, insert the token line, then the part with
	// a few words altered, then the rest.
	out.Write(raw[hdrEnd:start])
	out.WriteString(ampToken(i))
	out.WriteString(nl)
	part := append([]byte(nil), raw[start:end]...)
	for w := 0; w < 3 && len(part) > 0; w++ {
		swapWord(part, r.IntN(len(part)))
	}
	out.Write(part)
	out.Write(raw[end:])
	return out.Bytes()
}

// swapWord finds the first ASCII word of 6-14 letters at or after off and
// swaps two of its inner letters.
func swapWord(b []byte, off int) {
	isL := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	for i := off; i < len(b); {
		if !isL(b[i]) || (i > 0 && isL(b[i-1])) {
			i++
			continue
		}
		j := i
		for j < len(b) && isL(b[j]) {
			j++
		}
		if n := j - i; n >= 6 && n <= 14 && (j == len(b) || b[j] == ' ' || b[j] == '\n' || b[j] == '.' || b[j] == ',') {
			m := i + n/2
			if b[m] != b[m+1] {
				b[m], b[m+1] = b[m+1], b[m]
				return
			}
		}
		i = j
	}
}

// headerEnd returns the end of the header block (after its last line) and
// the start of the body (after the blank line).
func headerEnd(b []byte) (int, int) {
	if bytes.HasPrefix(b, []byte("\n")) {
		return 0, 1
	}
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return 0, 2
	}
	i := bytes.Index(b, []byte("\n\n"))
	j := bytes.Index(b, []byte("\n\r\n"))
	switch {
	case i < 0 && j < 0:
		return len(b), len(b)
	case j >= 0 && (i < 0 || j < i):
		return j + 1, j + 3
	default:
		return i + 1, i + 2
	}
}

// firstPlain finds the body of the first text/plain entity (in the entity
// starting at off and ending at lim, 0 = end) whose transfer encoding is not
// base64. Offsets are absolute.
func firstPlain(raw []byte, off, depth int) (int, int, bool) {
	ent := raw[off:]
	hEnd, bStart := headerEnd(ent)
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(ent[:hEnd:hEnd], '\n')))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return 0, 0, false
	}
	ct := h.Get("Content-Type")
	media, params, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		media = "text/plain"
	}
	switch {
	case media == "text/plain":
		cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
		if cte == "base64" || strings.EqualFold(h.Get("Content-Disposition"), "attachment") {
			return 0, 0, false
		}
		return off + bStart, off + len(ent), true
	case strings.HasPrefix(media, "multipart/") && params["boundary"] != "" && depth < 5:
		delim := []byte("\n--" + params["boundary"])
		body := ent[bStart:]
		pos := 0
		if !bytes.HasPrefix(body, delim[1:]) {
			p := bytes.Index(body, delim)
			if p < 0 {
				return 0, 0, false
			}
			pos = p + 1
		}
		for {
			// body[pos:] starts with "--boundary".
			lineEnd := bytes.IndexByte(body[pos:], '\n')
			if lineEnd < 0 || bytes.HasPrefix(body[pos+len(delim)-1:], []byte("--")) {
				return 0, 0, false
			}
			partStart := pos + lineEnd + 1
			next := bytes.Index(body[partStart:], delim)
			if next < 0 {
				return 0, 0, false
			}
			partEnd := partStart + next
			if partEnd > partStart && body[partEnd-1] == '\r' {
				partEnd--
			}
			sub := raw[:off+bStart+partEnd]
			if s, e, ok := firstPlain(sub, off+bStart+partStart, depth+1); ok {
				return s, e, true
			}
			pos = partStart + next + 1
		}
	}
	return 0, 0, false
}
