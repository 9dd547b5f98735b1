package testkit

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// LocalKMS is github.com/nsmithuk/local-kms, an AWS KMS emulator, running
// for one test with a store of its own.
type LocalKMS struct {
	// Endpoint is its URL, for the KMS client's endpoint override.
	Endpoint string
	// Region and Account are what it answers for.
	Region, Account string
}

var localKMSStarted = regexp.MustCompile(`Local KMS started on [^:]*:(\d+)`)

// MustLocalKMS starts the emulator the local stack built (LOCAL_KMS_BIN,
// written to .local/env by make up) on a free port, with an empty store in
// a temporary directory, and stops it when the test ends.
func MustLocalKMS(tb testing.TB) *LocalKMS {
	tb.Helper()
	k := &LocalKMS{Region: "eu-west-2", Account: "111122223333"}
	cmd := exec.Command(Env(tb, "LOCAL_KMS_BIN"))
	cmd.Env = append(os.Environ(), "PORT=0", "KMS_DATA_PATH="+tb.TempDir(),
		"KMS_SEED_PATH=", "KMS_REGION="+k.Region, "KMS_ACCOUNT_ID="+k.Account)
	logs, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start local-kms: %v", err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		// Read its log to the end, so it never blocks on a full pipe.
		lines := bufio.NewScanner(logs)
		for lines.Scan() {
			if m := localKMSStarted.FindStringSubmatch(lines.Text()); m != nil {
				select {
				case port <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case p := <-port:
		k.Endpoint = "http://127.0.0.1:" + p
	case <-time.After(15 * time.Second):
		tb.Fatal("local-kms did not say which port it listens on within 15s")
	}
	return k
}
