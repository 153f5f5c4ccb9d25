// Package ldaptest starts throwaway OpenLDAP servers (slapd, from Debian's
// slapd package) for tests of directory logins.
//
// A server lives in a temporary directory:
//
//	<dir>/slapd.conf   configuration (slapd.conf form, no cn=config)
//	<dir>/test.schema  sAMAccountName and proxyAddresses, as in Active Directory
//	<dir>/data         the mdb database
//	<dir>/slapd.log    server output (-d stats), shown when the test fails
//	<dir>/ca.pem       with TLS: the CA that signed the server's certificate
//
// It listens on 127.0.0.1 only (ldap://, which also offers StartTLS with
// TLS on, and ldaps://), holds the suffix dc=example,dc=org with
// ou=people and ou=groups, and runs the memberof overlay: adding a
// groupOfNames sets memberOf on its members, as Active Directory does.
// The root DN (RootDN, RootPassword) may do anything; any bound identity
// may read everything except passwords; anonymous clients may only bind.
// Entries are added and changed with LDIF through ldapmodify (Debian's
// ldap-utils), so a test reads like what an administrator would type.
//
// The server is stopped (SIGTERM) when the test ends, or earlier with
// Stop, and killed if the test binary dies. Without /usr/sbin/slapd or
// ldapmodify the test is skipped with the package names to install, or
// fails under MAILARC_INTEGRATION=1.
package ldaptest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/testcert"
)

// Binaries used (Debian packages slapd and ldap-utils).
const (
	SlapdBin      = "/usr/sbin/slapd"
	LDAPModifyBin = "/usr/bin/ldapmodify"
)

// The directory tree every server starts with.
const (
	Suffix       = "dc=example,dc=org"
	People       = "ou=people,dc=example,dc=org"
	Groups       = "ou=groups,dc=example,dc=org"
	RootDN       = "cn=admin,dc=example,dc=org"
	RootPassword = "root-secret"
)

// Options tune Start.
type Options struct {
	// TLS gives the server a certificate for 127.0.0.1 and localhost,
	// signed by a fresh CA (Server.CAFile): StartTLS on URL, and LDAPSURL.
	TLS bool
}

// Server is a running slapd.
type Server struct {
	Dir      string
	URL      string // ldap://127.0.0.1:PORT
	LDAPSURL string // ldaps://127.0.0.1:PORT, with Options.TLS
	CAFile   string // PEM CA certificate, with Options.TLS

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts a server for t, stopped when t ends.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	var missing []string
	for _, b := range []string{SlapdBin, LDAPModifyBin} {
		if _, err := os.Stat(b); err != nil {
			missing = append(missing, b)
		}
	}
	testutil.Require(t, len(missing) == 0, fmt.Sprintf("OpenLDAP %v not found (apt-get install slapd ldap-utils)", missing))
	s := &Server{Dir: t.TempDir()}
	if err := s.setup(opt); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = s.launch(opt)
		if err == nil || attempt == 5 || !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(s.Dir, "slapd.log")); err == nil {
				if len(log) > 8000 {
					log = log[len(log)-8000:]
				}
				t.Logf("ldaptest: end of slapd.log:\n%s", log)
			}
		}
		s.Stop(t)
	})
	s.Apply(t, fmt.Sprintf(`dn: %s
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: %s
objectClass: organizationalUnit
ou: people

dn: %s
objectClass: organizationalUnit
ou: groups
`, Suffix, People, Groups))
	return s
}

// testSchema adds Active Directory's account name and address list
// attributes to inetOrgPerson entries (objectClass mailarcTestADUser), in
// OpenLDAP's experimental OID arc.
const testSchema = `attributetype ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'sAMAccountName'
	EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.4203.666.11.99.2 NAME 'proxyAddresses'
	EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.4203.666.11.99.3 NAME 'mailarcTestADUser' AUXILIARY
	MAY ( sAMAccountName $ proxyAddresses ) )
`

// setup writes the configuration, schema, password file and certificates.
func (s *Server) setup(opt Options) error {
	if err := os.Mkdir(filepath.Join(s.Dir, "data"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "test.schema"), []byte(testSchema), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "root.pw"), []byte(RootPassword), 0o600); err != nil {
		return err
	}
	var tlsConf string
	if opt.TLS {
		certs, err := testcert.Write(s.Dir, "ldaptest CA", "127.0.0.1", "localhost")
		if err != nil {
			return fmt.Errorf("certificates: %w", err)
		}
		s.CAFile = certs.CA
		tlsConf = fmt.Sprintf("TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n",
			certs.CA, certs.Cert, certs.Key)
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include %[1]s/test.schema
pidfile %[1]s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
%[2]s
database mdb
suffix "%[3]s"
rootdn "%[4]s"
rootpw %[5]s
directory %[1]s/data
maxsize 10485760
overlay memberof
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
`, s.Dir, tlsConf, Suffix, RootDN, RootPassword)
	return os.WriteFile(filepath.Join(s.Dir, "slapd.conf"), []byte(conf), 0o600)
}

var errPortTaken = errors.New("port taken")

// launch starts slapd on fresh ports and waits until the root DN can bind.
func (s *Server) launch(opt Options) error {
	port, err := testutil.FreePort()
	if err != nil {
		return err
	}
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(port)
	urls := s.URL + "/"
	if opt.TLS {
		sport, err := testutil.FreePort()
		if err != nil {
			return err
		}
		s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(sport)
		urls += " " + s.LDAPSURL + "/"
	}
	logPath := filepath.Join(s.Dir, "slapd.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("slapd log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	// -d keeps slapd in the foreground (256: one line per operation).
	cmd := exec.Command(SlapdBin, "-f", filepath.Join(s.Dir, "slapd.conf"), "-h", urls, "-d", "256")
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no server outlives a crashed test binary
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ping()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			if bytes.Contains(log, []byte("Address already in use")) {
				return fmt.Errorf("slapd on port %d: %w", port, errPortTaken)
			}
			return fmt.Errorf("slapd exited during startup: %s\n%s", cmd.ProcessState, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("slapd not answering after 30s: %w\n%s", err, log)
		}
	}
}

// ping binds as the root DN.
func (s *Server) ping() error {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(5 * time.Second)
	return c.Bind(RootDN, RootPassword)
}

// Apply runs LDIF against the server as the root DN (ldapmodify -a:
// records without a changetype are added), failing t on any error.
func (s *Server) Apply(t testing.TB, ldif string) {
	t.Helper()
	cmd := exec.Command(LDAPModifyBin, "-a", "-x", "-H", s.URL, "-D", RootDN, "-y", filepath.Join(s.Dir, "root.pw"))
	cmd.Stdin = strings.NewReader(ldif)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ldaptest: ldapmodify: %v\n%s\nLDIF:\n%s", err, out, ldif)
	}
}

// Stop stops the server now (a directory that went away); later calls do
// nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("ldaptest: signal slapd: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Errorf("ldaptest: slapd ignored SIGTERM for 20s; killed")
	}
}

// User returns the LDIF of an inetOrgPerson under People with uid,
// password and mail addresses (the first as mail, all as proxyAddresses
// in Exchange's form: "SMTP:" for the first, "smtp:" for the others).
func User(uid, password string, mails ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: uid=%s,%s\nobjectClass: inetOrgPerson\nobjectClass: mailarcTestADUser\nuid: %s\ncn: %s\nsn: %s\nsAMAccountName: %s\nuserPassword: %s\n",
		uid, People, uid, uid, uid, uid, password)
	for i, m := range mails {
		if i == 0 {
			fmt.Fprintf(&b, "mail: %s\nproxyAddresses: SMTP:%s\n", m, m)
		} else {
			fmt.Fprintf(&b, "proxyAddresses: smtp:%s\n", m)
		}
	}
	return b.String()
}

// UserDN is the DN of User(uid, ...).
func UserDN(uid string) string { return "uid=" + uid + "," + People }

// Group returns the LDIF of a groupOfNames under Groups with the given
// member DNs (the memberof overlay then sets their memberOf).
func Group(cn string, members ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: cn=%s,%s\nobjectClass: groupOfNames\ncn: %s\n", cn, Groups, cn)
	for _, m := range members {
		fmt.Fprintf(&b, "member: %s\n", m)
	}
	return b.String()
}

// GroupDN is the DN of Group(cn, ...).
func GroupDN(cn string) string { return "cn=" + cn + "," + Groups }
