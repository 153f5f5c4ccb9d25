package server

import (
	"context"
	"errors"
	"fmt"
	"html"
	"strings"
	"sync"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/extract"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/message"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/web"
)

// searcher adapts the index, catalog and store to web.Searcher.
type searcher struct {
	idx   index.Index
	arch  *archive.Archive
	texts *snippetCache
}

func newSearcher(idx index.Index, arch *archive.Archive) *searcher {
	return &searcher{idx: idx, arch: arch, texts: newSnippetCache(snippetCacheBytes, snippetCacheTTL)}
}

// queryError gives a *query.SyntaxError the position the API reports.
type queryError struct{ se *query.SyntaxError }

func (e queryError) Error() string { return e.se.Error() }
func (e queryError) Position() int { return e.se.Pos }

// Search implements web.Searcher: parse, scope to the caller's rights,
// run on the index, load listing metadata from the catalog and build
// highlighted snippets from the stored messages.
func (s *searcher) Search(ctx context.Context, req web.SearchRequest) (web.SearchResult, error) {
	start := time.Now()
	q, err := query.Parse(req.Query)
	if err != nil {
		var se *query.SyntaxError
		if errors.As(err, &se) {
			return web.SearchResult{}, queryError{se}
		}
		return web.SearchResult{}, err
	}
	opt := index.Options{Limit: req.Limit, Offset: req.Offset, CountTotal: true, CountLimit: req.CountLimit()}
	switch req.Sort {
	case "date":
		opt.Sort = index.SortDateAsc
	case "relevance":
		opt.Sort = index.SortRelevance
	default:
		opt.Sort = index.SortDateDesc
	}
	if req.User == nil {
		opt.Addresses = []string{}
	} else if !req.User.SeesAll() {
		opt.Addresses = append([]string{}, req.User.Addresses...)
	}
	res, err := s.idx.Search(ctx, q, opt)
	if err != nil {
		return web.SearchResult{}, fmt.Errorf("search: %w", err)
	}
	ids := make([]string, len(res.Hits))
	for i, h := range res.Hits {
		ids[i] = h.ID
	}
	ms, err := s.arch.Catalog().GetMany(ctx, ids)
	if err != nil {
		return web.SearchResult{}, err
	}
	out := web.SearchResult{Total: res.Total, TotalCapped: res.TotalCapped, Messages: make([]web.SearchHit, 0, len(ms))}
	for _, m := range ms {
		if req.User != nil {
			// Belt and braces: the index filter already scoped it (by the
			// same rule, so this only drops what changed meanwhile).
			ok, err := web.Visible(ctx, s.arch, req.User, m)
			if err != nil {
				return web.SearchResult{}, err
			}
			if !ok {
				continue
			}
		}
		out.Messages = append(out.Messages, web.SearchHit{
			ID: m.ID, Date: m.Date, From: m.From, To: nonNil(m.To), Cc: nonNil(m.Cc), Subject: m.Subject,
			Size: m.Size, Attachments: nonNilAtt(m.Attachments), Origin: nonNil(m.Origins),
		})
	}
	// Snippets need each message read, decompressed and parsed: build them
	// in parallel (a page is at most 1000 hits, usually 50).
	var wg sync.WaitGroup
	sem := make(chan struct{}, snippetWorkers)
	for i := range out.Messages {
		if req.NoSnippets {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out.Messages[i].Snippet = s.snippet(ctx, out.Messages[i].ID, q)
		}()
	}
	wg.Wait()
	out.TookMS = float64(time.Since(start).Microseconds()) / 1000
	return out, nil
}

// snippetWorkers bounds the goroutines building one page's snippets.
const snippetWorkers = 4

// snippetTextBytes caps the text parsed per hit for its snippet.
const snippetTextBytes = 64 << 10

// snippet builds an HTML-escaped excerpt of the message text with each hit
// wrapped in <mark>.
func (s *searcher) snippet(ctx context.Context, id string, q *query.Query) string {
	text, ok := s.texts.get(id)
	if !ok {
		raw, err := s.arch.Raw(ctx, id)
		if err != nil {
			return ""
		}
		p := message.Parse(raw, message.Options{MaxTextBytes: snippetTextBytes})
		text = p.Text
		if strings.TrimSpace(text) == "" && len(p.HTML) > 0 {
			text = extract.HTMLToText(p.HTML[0])
		}
		text = strings.Join(strings.Fields(text), " ")
		s.texts.put(id, text)
	}
	return index.Snippet(html.EscapeString(text), q, 240, [2]string{"<mark>", "</mark>"})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilAtt(a []catalog.Attachment) []catalog.Attachment {
	if a == nil {
		return []catalog.Attachment{}
	}
	return a
}

// feed adapts the catalog and store to index.Feed.
type feed struct{ arch *archive.Archive }

func (f feed) ChangesAfter(ctx context.Context, after int64, limit int) ([]index.Change, error) {
	ms, err := f.arch.Catalog().ChangedAfter(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]index.Change, len(ms))
	for i, m := range ms {
		out[i] = index.Change{
			MSeq: m.MSeq, Seq: m.Seq, ID: m.ID, Date: m.Date, Arrival: m.Arrival, Size: m.Size,
			Origins: m.Origins, MailFrom: m.MailFrom, RcptTo: m.RcptTo,
		}
	}
	return out, nil
}

func (f feed) Raw(ctx context.Context, id string) ([]byte, error) { return f.arch.Raw(ctx, id) }
