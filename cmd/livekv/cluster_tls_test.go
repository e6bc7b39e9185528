package main_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writeTestPKI writes to dir a CA's certificate (ca.pem) and a node
// certificate it signed for 127.0.0.1, for server and client
// authentication, with its key (node.pem, node-key.pem).
func writeTestPKI(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	write := func(name, typ string, b []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("node.pem", "CERTIFICATE", der)
	write("node-key.pem", "EC PRIVATE KEY", keyDER)
}

// tlsFlags are the --raft-tls-* flags for the files writeTestPKI wrote
// to dir.
func tlsFlags(dir string) []string {
	return []string{"--raft-tls-cert", filepath.Join(dir, "node.pem"), "--raft-tls-key", filepath.Join(dir, "node-key.pem"),
		"--raft-tls-ca", filepath.Join(dir, "ca.pem")}
}

// TestServe_ClusterOverTLS: nodes started with --raft-tls-* form a
// cluster, replicate and forward over mutual TLS, and livekv cluster
// operates it with the same flags; without them, or with another CA's
// certificate, it gets nothing. The flags go together, in cluster mode.
func TestServe_ClusterOverTLS(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	pki, other := filepath.Join(dir, "pki"), filepath.Join(dir, "other")
	writeTestPKI(t, pki)
	writeTestPKI(t, other)
	var raft, peers []string
	for i := range 3 {
		raft = append(raft, freeAddr(t))
		peers = append(peers, fmt.Sprintf("n%d=%s", i, raft[i]))
	}
	var srvs []*server
	for i := range 3 {
		args := append([]string{"serve", "--data", filepath.Join(dir, fmt.Sprint(i)), "--addr", "127.0.0.1:0",
			"--api-key", "k", "--node", fmt.Sprintf("n%d", i), "--raft", raft[i], "--peers", strings.Join(peers, ","),
			"--raft-profile", "lan"}, tlsFlags(pki)...)
		srvs = append(srvs, runServe(t, bin, args...))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, err := writeAt(srvs[0].base, "hello", "tls")
		if err == nil && code == 200 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no write accepted: %d %s %v", code, body, err)
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range srvs[1:] {
		code, body, err := readAt(s.base, "hello", "linearizable")
		require.NoError(t, err)
		require.Equal(t, 200, code, body)
		require.Equal(t, "tls", body)
	}

	out, err := exec.Command(bin, append([]string{"cluster", "status", "--raft", raft[1]}, tlsFlags(pki)...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var st struct {
		Servers []any `json:"servers"`
	}
	require.NoError(t, json.Unmarshal(out, &st), "%s", out)
	require.Len(t, st.Servers, 3)
	for name, args := range map[string][]string{
		"no TLS":     {"cluster", "status", "--raft", raft[1], "--timeout", "3s"},
		"another CA": append([]string{"cluster", "status", "--raft", raft[1], "--timeout", "3s"}, tlsFlags(other)...),
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit) && exit.ExitCode() == 1, "%s: %v %s", name, err, out)
	}
	for _, s := range srvs {
		s.stop(t)
	}

	// Usage errors, exit 2: the flags go together, in cluster mode.
	for _, args := range [][]string{
		{"serve", "--data", filepath.Join(dir, "x"), "--raft-tls-ca", filepath.Join(pki, "ca.pem")},
		append([]string{"serve", "--data", filepath.Join(dir, "x")}, tlsFlags(pki)...),
		{"serve", "--data", filepath.Join(dir, "x"), "--raft", raft[0], "--peers", "n0=" + raft[0], "--raft-tls-cert", filepath.Join(pki, "node.pem")},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit) && exit.ExitCode() == 2, "%v: %v %s", args, err, out)
		require.Contains(t, string(out), "--raft-tls-cert, --raft-tls-key and --raft-tls-ca")
	}
	require.NoDirExists(t, filepath.Join(dir, "x"))
	// A CA file with no certificate: exit 1, no folder left.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "empty.pem"), []byte("nothing"), 0o600))
	out, err = exec.Command(bin, "serve", "--data", filepath.Join(dir, "x"), "--raft", raft[0], "--peers", "n0="+raft[0],
		"--raft-tls-cert", filepath.Join(pki, "node.pem"), "--raft-tls-key", filepath.Join(pki, "node-key.pem"),
		"--raft-tls-ca", filepath.Join(dir, "empty.pem")).CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit) && exit.ExitCode() == 1, "%v %s", err, out)
	require.Contains(t, string(out), "holds no PEM certificate")
	require.NoDirExists(t, filepath.Join(dir, "x"))
}

// TestServe_TLSCertificateMustNameTheRaftHost: the other nodes dial the
// host of --raft and verify that the node's certificate names it; a
// certificate that does not, or that --raft-tls-ca did not sign, would
// leave the cluster without a leader and the node's log silent, so serve
// refuses it at the start, saying why (exit 1, no folder made).
func TestServe_TLSCertificateMustNameTheRaftHost(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	pki, other := filepath.Join(dir, "pki"), filepath.Join(dir, "other")
	writeTestPKI(t, pki) // for 127.0.0.1
	writeTestPKI(t, other)
	_, port, err := net.SplitHostPort(freeAddr(t))
	require.NoError(t, err)
	raft := "localhost:" + port
	for want, flags := range map[string][]string{
		"does not name localhost":     tlsFlags(pki),
		"signed by unknown authority": append(tlsFlags(pki)[:4], "--raft-tls-ca", filepath.Join(other, "ca.pem")),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, bin, append([]string{"serve", "--data", filepath.Join(dir, "x"), "--addr", "127.0.0.1:0",
			"--raft", raft, "--peers", "n0=" + raft, "--node", "n0"}, flags...)...).CombinedOutput()
		cancel()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit) && exit.ExitCode() == 1, "%s: %v %s", want, err, out)
		require.Contains(t, string(out), want)
		require.NoDirExists(t, filepath.Join(dir, "x"))
	}
}

// TestServe_TLSEncryptedKeyIsNamed: a --raft-tls-key that is encrypted
// (PKCS #8 or the legacy Proc-Type header) cannot be read without its
// passphrase, which serve does not ask for: it says the key is
// encrypted, rather than that it cannot be parsed (exit 1).
func TestServe_TLSEncryptedKeyIsNamed(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	pki := filepath.Join(dir, "pki")
	writeTestPKI(t, pki)
	raft := freeAddr(t)
	for name, b := range map[string]*pem.Block{
		"pkcs8":  {Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}},
		"legacy": {Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: make([]byte, 16)},
	} {
		key := filepath.Join(dir, name+".pem")
		require.NoError(t, os.WriteFile(key, pem.EncodeToMemory(b), 0o600))
		out, err := exec.Command(bin, "serve", "--data", filepath.Join(dir, "x"), "--raft", raft, "--peers", "n0="+raft, "--node", "n0",
			"--raft-tls-cert", filepath.Join(pki, "node.pem"), "--raft-tls-key", key, "--raft-tls-ca", filepath.Join(pki, "ca.pem")).CombinedOutput()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit) && exit.ExitCode() == 1, "%s: %v %s", name, err, out)
		require.Contains(t, string(out), "is encrypted", name)
		require.NoDirExists(t, filepath.Join(dir, "x"))
	}
}

// TestCluster_TLSMismatchSaysWhy: livekv cluster run without the
// --raft-tls-* flags against a node that speaks TLS, or with them against
// one that does not, is hung up on; with a certificate another CA signed
// it is refused. Each error says which flags to look at, rather than
// only EOF or a reset.
func TestCluster_TLSMismatchSaysWhy(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	pki, other := filepath.Join(dir, "pki"), filepath.Join(dir, "other")
	writeTestPKI(t, pki)
	writeTestPKI(t, other)
	raft := freeAddr(t)
	s := runServe(t, bin, append([]string{"serve", "--data", filepath.Join(dir, "n0"), "--addr", "127.0.0.1:0", "--api-key", "k",
		"--node", "n0", "--raft", raft, "--peers", "n0=" + raft, "--raft-profile", "lan"}, tlsFlags(pki)...)...)
	defer s.stop(t)
	// A node without TLS reads the handshake's first byte as a service
	// it does not know, and hangs up.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 1))
			c.Close()
		}
	}()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no TLS to a TLS node": {[]string{"--raft", raft}, "give --raft-tls-cert"},
		"TLS to a node without": {append([]string{"--raft", plain.Addr().String()}, tlsFlags(pki)...),
			"leave out the --raft-tls-* flags"},
		"another CA's certificate": {append(append([]string{"--raft", raft}, tlsFlags(other)[:4]...), "--raft-tls-ca", filepath.Join(pki, "ca.pem")),
			"refused --raft-tls-cert"},
	} {
		out, err := exec.Command(bin, append([]string{"cluster", "status", "--timeout", "5s"}, tc.args...)...).CombinedOutput()
		var exit *exec.ExitError
		require.True(t, errors.As(err, &exit) && exit.ExitCode() == 1, "%s: %v %s", name, err, out)
		require.Contains(t, string(out), tc.want, name)
	}
}

// TestCluster_TLSFlagsGoTogether: livekv cluster given some of the
// --raft-tls-* flags, not all three, is a usage error (exit 2), as serve.
func TestCluster_TLSFlagsGoTogether(t *testing.T) {
	bin := build(t)
	pki := filepath.Join(t.TempDir(), "pki")
	writeTestPKI(t, pki)
	out, err := exec.Command(bin, "cluster", "status", "--raft", freeAddr(t), "--raft-tls-ca", filepath.Join(pki, "ca.pem")).CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit) && exit.ExitCode() == 2, "%v %s", err, out)
	require.Contains(t, string(out), "--raft-tls-cert, --raft-tls-key and --raft-tls-ca go together")
}
