package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

// TestFloorServers: each floor receiver answers SMTP and HTTP and keeps
// exactly what its name says (nothing; 32 bytes per message; the bytes).
func TestFloorServers(t *testing.T) {
	msgs := [][]byte{
		[]byte("Subject: one\r\n\r\nfirst body\r\n"),
		[]byte("Subject: two\r\n\r\nsecond body\r\n"),
	}
	post := []byte("Subject: three\r\n\r\nposted body\r\n")
	for _, receiver := range []string{"receive", "fsync", "durable"} {
		t.Run(receiver, func(t *testing.T) {
			spool := filepath.Join(t.TempDir(), "spool")
			f, err := newFloorServer(spool, receiver)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := gosmtp.Dial(f.smtpAddr)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if err := cl.SendMail("a@example.com", []string{"b@example.com"}, bytes.NewReader(m)); err != nil {
					t.Fatalf("SMTP: %v", err)
				}
			}
			_ = cl.Quit()
			resp, err := http.Post("http://"+f.httpAddr+"/", "message/rfc822", bytes.NewReader(post))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("HTTP status %d, want 201", resp.StatusCode)
			}
			f.close()
			got, err := os.ReadFile(spool)
			switch receiver {
			case "receive":
				if !os.IsNotExist(err) {
					t.Errorf("receive kept a spool (%d bytes, %v)", len(got), err)
				}
			case "fsync":
				if err != nil || len(got) != 3*32 {
					t.Errorf("fsync spool: %d bytes, %v; want 96", len(got), err)
				}
			case "durable":
				want := append(append(append([]byte{}, msgs[0]...), msgs[1]...), post...)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("durable spool = %q, %v; want %q", got, err, want)
				}
			}
		})
	}
}
